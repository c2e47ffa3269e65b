"""Drive the `ladder` command as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def ladder(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "modelladder", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
