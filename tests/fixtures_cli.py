"""CLI fixtures: run the `tradebot` command as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

TRADEBOT = [sys.executable, "-m", "tradebot"]


def tb(*args, env_extra=None, cwd=None, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    env.update(env_extra or {})
    return subprocess.run([*TRADEBOT, *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd,
                          input=stdin)


@pytest.fixture
def initialized(tmp_path):
    """A `tradebot init --non-interactive` config and data directory."""
    data = tmp_path / "D"
    cfg = tmp_path / "config.toml"
    res = tb("--config", str(cfg), "init", "--non-interactive", "--telegram-token", "123:abc", "--admin-id", "1",
             "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    return cfg, data
