"""How to add an optional extra, phrased for the way this copy of tradebot was installed."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from . import DIST_NAME


def installed_with_pipx(prefix: str | None = None) -> bool:
    """pipx keeps one venv per app under .../pipx/venvs/<name> and writes pipx_metadata.json into it."""
    root = Path(prefix or sys.prefix)
    if (root / "pipx_metadata.json").is_file():
        return True
    return root.parent.name == "venvs" and "pipx" in str(root.parent.parent).lower()


def installed_from_directory(direct_url: str | None = None) -> tuple[Path, bool] | None:
    """(checkout, editable) when pip installed us from a local directory (PEP 610 direct_url.json) that
    still exists: then `pip install '<name>[extra]'` would look on the package index instead."""
    if direct_url is None:
        try:
            from importlib.metadata import PackageNotFoundError, distribution

            direct_url = distribution(DIST_NAME).read_text("direct_url.json")
        except (PackageNotFoundError, OSError):
            return None
    try:
        info = json.loads(direct_url or "null")
        url = urlparse(info["url"])
        editable = bool(info.get("dir_info", {}).get("editable"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if url.scheme != "file" or "dir_info" not in info:
        return None
    path = Path(unquote(url.path))
    return (path, editable) if path.is_dir() else None


def extra_hint(extra: str, package: str, prefix: str | None = None, direct_url: str | None = None) -> str:
    """The command that installs `package` (the `extra` of our distribution) next to this tradebot."""
    if installed_with_pipx(prefix):
        return f"pipx inject {DIST_NAME} {package}"
    local = installed_from_directory(direct_url)
    if local is not None:
        path, editable = local
        cmd = f"pip install {'-e ' if editable else ''}{shlex.quote(f'{path}[{extra}]')}"
    else:
        cmd = f"pip install '{DIST_NAME}[{extra}]'"
    pip = shutil.which("pip")
    here = os.path.dirname(sys.executable)
    if sys.prefix != sys.base_prefix and (pip is None or os.path.dirname(pip) != here):
        # a virtualenv that is not activated: a bare `pip` would install somewhere else
        cmd = f"{sys.executable} -m {cmd}"
    return cmd
