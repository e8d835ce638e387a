"""An older lagwatch, from a git revision, run beside the current one in the same bench.

``checkout`` extracts the revision's ``lagwatch`` package with ``git archive``; ``run``
starts ``lagwatch run`` from it (or from the current tree) in its own process. The older
package goes ahead of the installed one on ``PYTHONPATH``; both use this virtualenv's
dependencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def checkout(revision: str, into: Path) -> Path:
    """The lagwatch package as of a git revision, extracted into ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "lagwatch"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"bench: git archive {revision} failed: "
                         f"{archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run(home: Path, config: dict[str, Any], package: Path | None = None
        ) -> subprocess.Popen[bytes]:
    """Start ``lagwatch run`` with ``config`` in ``home`` (its log: home/lagwatch.log);
    from ``package`` (a checkout) when given, else the current tree."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "lagwatch.yaml"
    path.write_text(json.dumps(config))
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = str(package)
    return subprocess.Popen(  # the working directory keeps the current tree off sys.path
        [sys.executable, "-m", "lagwatch", "run", "-c", str(path)], cwd=home, env=env,
        stdout=(home / "lagwatch.log").open("wb"), stderr=subprocess.STDOUT)
