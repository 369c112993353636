"""What every benchmark result records about how it was produced: the commit (and whether the work
tree had uncommitted changes), the exact command, the full configuration (every argument, defaults
included) and the machine. Results written without it cannot be compared like for like."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _script() -> str:
    script = Path(sys.argv[0]).resolve()
    return str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)


def stamp(args: argparse.Namespace | dict[str, Any]) -> dict[str, Any]:
    """The provenance block of one benchmark run."""
    config = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join(["python", _script(), *sys.argv[1:]]),
        "config": json.loads(json.dumps(config, default=str)),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write(path: Path, result: dict[str, Any], args: argparse.Namespace | dict[str, Any]) -> Path:
    """``result`` plus its provenance, written to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "provenance": stamp(args)}, indent=2) + "\n")
    return path
