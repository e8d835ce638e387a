"""Shared fixtures: a real Kafka broker for the session, and helpers to drive it."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
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


# No test may use the default state directory: every daemon a test starts names its own
# state_dir. The session points the default ($LAGWATCH_STATE_DIR, inherited by the daemons
# the tests start as processes) at a directory of its own that must stay empty, so the
# check looks only at what the tests could touch: another lagwatch on the machine, writing
# /var/lib/lagwatch, never fails the run.
DEFAULT_STATE_DIR = Path(tempfile.mkdtemp(prefix="lagwatch-default-state-")) / "state"
os.environ["LAGWATCH_STATE_DIR"] = str(DEFAULT_STATE_DIR)


@pytest.fixture(scope="session", autouse=True)
def default_state_dir_untouched() -> Iterator[None]:
    """Fail the session if any test wrote to the default state directory."""
    yield
    written = sorted(str(p) for p in DEFAULT_STATE_DIR.rglob("*")) if (
        DEFAULT_STATE_DIR.exists()) else []
    assert not written, ("a test used the default state_dir (set state_dir or "
                         f"--state-dir): {', '.join(written[:10])}")
    shutil.rmtree(DEFAULT_STATE_DIR.parent, ignore_errors=True)


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
