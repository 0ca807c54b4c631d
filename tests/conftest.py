"""Shared pytest setup. Area fixtures live in tests/fixtures_*.py and load as plugins."""

import importlib.util

_PLUGINS = ["tests.fixtures_db", "tests.fixtures_cli", "tests.fixtures_exchange", "tests.fixtures_engine", "tests.fixtures_telegram",
            "tests.fixtures_run"]
pytest_plugins = [p for p in _PLUGINS if importlib.util.find_spec(p) is not None]
