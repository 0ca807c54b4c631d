# One container: the bot, its SQLite database, key and logs on the /data volume.
FROM python:3.11-slim

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

# First start: `docker run -it -v tradebot:/data IMAGE tradebot init` (or set TRADEBOT_TELEGRAM_TOKEN
# and TRADEBOT_SECRET_KEY in the environment and skip init).
CMD ["tradebot", "run"]
