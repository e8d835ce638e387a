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
