"""Shared fixtures: a real Kafka broker for the session, and helpers to drive it."""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# HYPOTHESIS_PROFILE=thorough runs ten times the examples of the default profile.
settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from kafka_local import LocalKafka  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--skip-multibroker", action="store_true",
                     help="skip tests that start a 3-broker cluster (CI runs them)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--skip-multibroker"):
        return
    skip = pytest.mark.skip(reason="3-broker tests skipped with --skip-multibroker")
    for item in items:
        if "multibroker" in item.keywords:
            item.add_marker(skip)


# The machine's own lagwatch state: no test may read or write it (every daemon a test starts
# has a temporary state_dir). The tool caches in ~/.cache/lagwatch (the broker's jars, the
# helm binary) are the one exception: built once, by the first run that needs them.
MACHINE_STATE = (Path("/var/lib/lagwatch"), Path.home() / ".cache" / "lagwatch")
TOOL_CACHES = ("kafka-", ".kafka-", "helm-", ".helm-")


def machine_state() -> dict[str, tuple[int, int]]:
    """Every file under MACHINE_STATE but the tool caches: path -> (size, mtime in ns)."""
    found = {}
    for root in MACHINE_STATE:
        for path in root.rglob("*") if root.is_dir() else ():
            relative = path.relative_to(root).parts
            if relative and relative[0].startswith(TOOL_CACHES):
                continue
            if path.is_file():
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session", autouse=True)
def machine_state_untouched() -> Iterator[None]:
    """Fail the session if any test changed the machine's lagwatch state."""
    before = machine_state()
    yield
    after = machine_state()
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, (f"the tests changed the machine's lagwatch state: "
                         f"{', '.join(changed[:10])}")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A running broker: $LAGWATCH_TEST_BOOTSTRAP if set, else a local one for the session."""
    given = os.environ.get("LAGWATCH_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    with LocalKafka() as broker:
        yield broker.bootstrap


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a name maker whose names no other test (or earlier run) uses."""
    run = uuid.uuid4().hex[:6]
    counter = itertools.count()
    return lambda prefix: f"{prefix}-{run}-{next(counter)}"
