"""Our own distribution name (`tradebot` on PyPI is an unrelated project) and install hints that fit how
the program was installed (pipx or pip)."""

import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import tradebot
from tests.fixtures_cli import tb
from tradebot.install_hints import extra_hint, installed_with_pipx

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def test_distribution_name_and_version_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == tradebot.DIST_NAME == "tradebot-telegram"
    assert project["scripts"] == {"tradebot": "tradebot.cli:main"}  # the command keeps its name
    # installed under the new name, the version is the package's
    assert importlib.metadata.version("tradebot-telegram") == tradebot.__version__
    res = tb("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"tradebot, version {tradebot.__version__}"


@pytest.mark.parametrize("layout", ["metadata", "venvs"])
def test_pipx_install_gets_a_pipx_inject_hint(tmp_path, layout):
    if layout == "metadata":  # pipx writes this file into every venv it manages
        prefix = tmp_path / "anywhere" / "tradebot-telegram"
        prefix.mkdir(parents=True)
        (prefix / "pipx_metadata.json").write_text("{}")
    else:  # ~/.local/pipx/venvs/<name> (or ~/.local/share/pipx/venvs/<name>)
        prefix = tmp_path / ".local" / "pipx" / "venvs" / "tradebot-telegram"
    assert installed_with_pipx(str(prefix))
    assert extra_hint("plot", "matplotlib", str(prefix)) == "pipx inject tradebot-telegram matplotlib"


def test_pip_install_gets_a_pip_hint_with_our_name(tmp_path):
    prefix = tmp_path / "venv"
    prefix.mkdir()
    assert not installed_with_pipx(str(prefix))
    hint = extra_hint("plot", "matplotlib", str(prefix), direct_url="")  # from the package index
    assert hint.endswith("pip install 'tradebot-telegram[plot]'")
    assert "'tradebot[plot]'" not in hint  # that would install the unrelated PyPI project


def test_pip_install_from_a_checkout_points_at_the_checkout(tmp_path):
    checkout = tmp_path / "my tradebot"
    checkout.mkdir()
    url = checkout.as_uri()
    hint = extra_hint("plot", "matplotlib", str(tmp_path), direct_url=f'{{"url": "{url}", "dir_info": {{}}}}')
    assert hint.endswith(f"pip install '{checkout}[plot]'")
    hint = extra_hint("plot", "matplotlib", str(tmp_path),
                      direct_url=f'{{"url": "{url}", "dir_info": {{"editable": true}}}}')
    assert hint.endswith(f"pip install -e '{checkout}[plot]'")
    gone = (tmp_path / "deleted").as_uri()  # the checkout was removed since: back to the index name
    hint = extra_hint("plot", "matplotlib", str(tmp_path), direct_url=f'{{"url": "{gone}", "dir_info": {{}}}}')
    assert hint.endswith("pip install 'tradebot-telegram[plot]'")


def test_plot_without_matplotlib_names_the_right_command(tmp_path, monkeypatch):
    from tradebot.backtest.cli import backtest_command

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    args = ["--symbol", "BTC/USDT", "--data", str(DATA / "binance-spot-BTCUSDT-1h-2022-01.csv.gz"),
            "--plot", str(tmp_path / "p.png")]
    r = CliRunner().invoke(backtest_command, args, catch_exceptions=False)
    assert r.exit_code == 1 and "--plot needs matplotlib:" in r.output
    assert "Backtest" not in r.output  # refused before the run, not after it
    assert r.output.strip().endswith(extra_hint("plot", "matplotlib")) and "[plot]'" in r.output
    assert "'tradebot[plot]'" not in r.output
    pipx_prefix = tmp_path / "pipx" / "venvs" / "tradebot-telegram"
    pipx_prefix.mkdir(parents=True)
    (pipx_prefix / "pipx_metadata.json").write_text("{}")
    monkeypatch.setattr(sys, "prefix", str(pipx_prefix))
    r = CliRunner().invoke(backtest_command, args, catch_exceptions=False)
    assert r.exit_code == 1 and "--plot needs matplotlib: pipx inject tradebot-telegram matplotlib" in r.output
    assert not (tmp_path / "p.png").exists()
