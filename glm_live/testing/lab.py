"""JupyterLab and headless Chromium for browser tests and benchmarks.

- :func:`write_notebook`: a notebook of code cells, with the kernelspec JupyterLab needs to
  start a kernel without asking.
- :func:`jupyter_lab`: JupyterLab on a free loopback port, no token, its config, runtime and
  workspace files in a folder of the caller's, ``window.jupyterapp`` exposed (its commands).
- :func:`launch_chromium`: Debian's ``chromium`` driven by Playwright (no browser download).

Used by ``tests/test_browser.py``, ``tests/test_token_to_pixel.py`` and
``benchmarks/token_to_pixel.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

__all__ = ["CHROMIUM_ARGS", "jupyter_lab", "launch_chromium", "write_notebook"]

#: Headless Chromium with nothing in the background that could reach the network or add load.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def write_notebook(path: Path, cells: list[str]) -> None:
    """Write a notebook of ``cells`` (code) to ``path``, for the ``python3`` kernel."""
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": None,
                        "id": f"c{i}",
                        "metadata": {},
                        "outputs": [],
                        "source": source,
                    }
                    for i, source in enumerate(cells)
                ],
                "metadata": {
                    "kernelspec": {
                        "display_name": "Python 3",
                        "language": "python",
                        "name": "python3",
                    },
                    "language_info": {"name": "python"},
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )


@contextlib.contextmanager
def jupyter_lab(root: Path, state: Path, timeout: float = 90.0) -> Iterator[str]:
    """Run JupyterLab serving ``root`` (its state under ``state``); yields its base URL.

    Raises:
        RuntimeError: It did not answer within ``timeout`` seconds.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: commands (the theme)
            f"--LabApp.workspaces_dir={state / 'workspaces'}",
            "--allow-root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/api/status").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                msg = f"JupyterLab did not answer within {timeout:.0f} s"
                raise RuntimeError(msg)
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, through Playwright (no browser download).

    Raises:
        RuntimeError: ``chromium`` is not on the PATH.
    """
    chromium = shutil.which("chromium")
    if not chromium:
        msg = "chromium is not installed (Debian's package: apt-get install chromium)"
        raise RuntimeError(msg)
    return playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
