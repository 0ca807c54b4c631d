"""The vendored candle files: small, documented with the right checksums, and where the fake looks."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def test_every_file_is_documented_with_its_checksum_and_small():
    readme = (DATA / "README.md").read_text()
    files = sorted(DATA.glob("*.csv.gz"))
    assert files and sum(f.stat().st_size for f in files) < 3 * 1024 * 1024
    for f in files:
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        assert f"| `{f.name}` | `{digest}` |" in readme, f.name
        assert f.read_bytes()[4:8] == b"\0\0\0\0", f"{f.name}: gzip with an mtime (use gzip -n)"


def _fake_data_dir(**env) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    code = "from tests.fakes.exchange_data import DATA_DIR; print(DATA_DIR)"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True,
                         text=True, timeout=60, check=True)
    return res.stdout.strip()


def test_the_fake_reads_the_repository_data_not_the_products_data_dir(tmp_path):
    assert Path(_fake_data_dir(TRADEBOT_DATA_DIR=str(tmp_path))) == DATA  # the product's variable: ignored
    assert Path(_fake_data_dir(TRADEBOT_FAKE_DATA_DIR=str(tmp_path))) == tmp_path
