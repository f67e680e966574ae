"""Running a snippet of Python in a new interpreter, to see which modules it really loads."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, *, django: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -c code`` from the repository root with a bare environment (and Django's settings)."""
    env = {"PATH": "/usr/bin:/bin"}
    if django:
        env["DJANGO_SETTINGS_MODULE"] = "instagender.settings"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )
