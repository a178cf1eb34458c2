"""The Node project under ``tests/node``: installed on demand, its scripts run as subprocesses.

``tests/node`` stands alone: its ``package.json`` pins every dependency to an exact version,
``package-lock.json`` pins the rest, and ``node_modules/`` is git-ignored. :func:`install`
runs ``npm ci`` there when ``node_modules`` is missing or was installed from another
``package.json``/``package-lock.json`` (a stamp file in ``node_modules`` holds the hash of the
two), so a checkout that changes a pin reinstalls by itself. It needs ``node`` and ``npm`` on
the PATH (``.ci/run`` installs Debian's ``nodejs npm`` when they are missing) and the npm
registry, or npm's cache, on the first run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The Node project's folder.
FOLDER = Path(__file__).parent / "node"
#: Seconds ``npm ci`` may take before the set-up gives up (a cold cache downloads ~15 packages).
INSTALL_TIMEOUT_S = 300.0
_STAMP = ".glm_live-installed"


class NodeMissing(RuntimeError):
    """``node`` or ``npm`` is not on the PATH, or ``npm`` failed to install the project."""


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = folder / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def install(folder: Path = FOLDER, timeout: float = INSTALL_TIMEOUT_S) -> Path:
    """Make ``folder/node_modules`` match the project's lock file; return ``folder``.

    Runs ``npm ci`` (``npm install`` when there is no lock file yet) only when needed.

    Raises:
        NodeMissing: ``node``/``npm`` not installed, npm failed, or it took over ``timeout``.
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        msg = (
            f"{' and '.join(missing)} not found on the PATH: the AG-UI client tests run the "
            "official TypeScript client under Node 18 or newer (Debian: apt-get install nodejs "
            "npm; .ci/run does this)"
        )
        raise NodeMissing(msg)
    stamp = folder / "node_modules" / _STAMP
    wanted = _fingerprint(folder)
    if stamp.exists() and stamp.read_text() == wanted:
        return folder
    locked = (folder / "package-lock.json").exists()
    argv = ["npm", "ci" if locked else "install", "--no-audit", "--no-fund"]
    what = f"{' '.join(argv)} in {folder}"
    try:
        done = subprocess.run(
            argv, cwd=folder, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"{what} took over {timeout:.0f} s (is the npm registry reachable?)"
        raise NodeMissing(msg) from exc
    if done.returncode != 0:
        msg = f"{what} failed ({done.returncode}):\n{done.stderr[-3000:] or done.stdout[-3000:]}"
        raise NodeMissing(msg)
    # After npm ci: `npm install` may have written the lock file just now.
    stamp.write_text(_fingerprint(folder))
    return folder


@dataclass
class Outcome:
    """What ``agui_run.mjs`` printed: its JSON lines sorted by kind, and its exit status."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["kind"] == kind]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events that passed the client's verification, in order."""
        return [line["event"] for line in self.of("event")]

    def events_of(self, run: int) -> list[dict[str, Any]]:
        """The events of the script's ``run``-th run (1, then 2 with ``then``)."""
        return [line["event"] for line in self.of("event") if line.get("run") == run]

    @property
    def results(self) -> list[dict[str, Any]]:
        """The client's view after each run, in order."""
        return self.of("result")

    @property
    def result(self) -> dict[str, Any]:
        """The client's view after the last run."""
        return self.results[-1]

    def __str__(self) -> str:
        """Everything but the events, for assertion messages."""
        rest = [line for line in self.lines if line["kind"] != "event"]
        return (
            f"exit {self.returncode}, {len(self.events)} events; "
            f"{json.dumps(rest)[:3000]}; stderr: {self.stderr[-2000:]}"
        )


def command(config: dict[str, Any], folder: Path = FOLDER) -> list[str]:
    """The command line running ``agui_run.mjs`` with ``config`` (see the script's header)."""
    return ["node", str(folder / "agui_run.mjs"), json.dumps(config)]


def outcome(returncode: int, stdout: str, stderr: str) -> Outcome:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return Outcome(returncode, lines, stderr)


def run(config: dict[str, Any], timeout: float = 60.0, folder: Path = FOLDER) -> Outcome:
    """Run ``agui_run.mjs`` to its end (blocking: for runtimes on their own thread)."""
    done = subprocess.run(
        command(config, folder), capture_output=True, text=True, timeout=timeout, check=False
    )
    return outcome(done.returncode, done.stdout, done.stderr)


def bundle(entry: str, outfile: Path, folder: Path = FOLDER, timeout: float = 60.0) -> Path:
    """``folder/entry`` and everything it imports, as one ES module for a browser (esbuild)."""
    argv = [
        str(folder / "node_modules" / ".bin" / "esbuild"),
        str(folder / entry),
        "--bundle",
        "--format=esm",
        "--platform=browser",
        "--target=es2022",
        "--log-level=warning",
        f"--outfile={outfile}",
    ]
    done = subprocess.run(
        argv, cwd=folder, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        msg = f"esbuild {entry} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        raise NodeMissing(msg)
    return outfile
