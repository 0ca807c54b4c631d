# One container: the bot, its SQLite database, key and logs on the /data volume.
# Base image pinned by digest (a tag can be re-pushed, a digest cannot); the tag beside it says what it is.
# To update: docker pull python:3.11-slim-bookworm, then copy the new "Digest:" line here.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRADEBOT_DATA_DIR=/data TRADEBOT_CONFIG=/data/config.toml

WORKDIR /src
COPY pyproject.toml README.md schema.sql config.example.toml ./
COPY tradebot ./tradebot
RUN pip install --no-cache-dir . && rm -rf /src \
    && useradd --create-home --uid 10001 tradebot \
    && mkdir -p /data && chown tradebot:tradebot /data

USER tradebot
WORKDIR /data
VOLUME ["/data"]

# Healthy while `tradebot run` holds the database and renews its lease (`tradebot status`, exit 0/1).
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 CMD ["tradebot", "status"]

# First start: `docker run -it -v tradebot:/data IMAGE tradebot init` (or set TRADEBOT_TELEGRAM_TOKEN
# and TRADEBOT_SECRET_KEY in the environment and skip init).
CMD ["tradebot", "run"]
