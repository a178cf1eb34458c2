"""Binder's environment, built from ``binder/`` alone in a fresh virtual environment, runs the
quick-start notebook: what a presenter gets on Binder with no key and no network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_binder_environment_runs_the_quickstart(tmp_path: Path) -> None:
    venv = tmp_path / "binder-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            str(ROOT / "binder" / "requirements.txt"),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    # postBuild runs from the repository root (a copy, so nothing here is touched).
    repo = tmp_path / "repo"
    shutil.copytree(
        ROOT,
        repo,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".*_cache"),
    )
    subprocess.run(["bash", "binder/postBuild"], check=True, env=env, cwd=repo)
    executed = tmp_path / "quickstart-run.ipynb"
    subprocess.run(
        [
            str(bin_dir / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=120",
            "--output",
            str(executed),
            str(repo / "notebooks" / "01-quickstart.ipynb"),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    text = executed.read_text()
    assert "Measured here: first byte after" in text
    assert "glm-4.6-sim" in text
