"""API silences survive any single damaged or lost file: the state file and its copy."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.config import AlertingConfig
from lagwatch.alerting.outbox import Outbox
from lagwatch.alerting.silencecopy import SilenceCopy
from lagwatch.store import StateFile

NOW = 1_800_000_000.0  # 2027-01-15
ENDS = "2027-02-01T00:00:00Z"


def opened(state_dir: Path) -> tuple[Alerter, StateFile]:
    """The alerter of a daemon starting on ``state_dir``, as the daemon makes it."""
    store = StateFile(str(state_dir))
    outbox = Outbox(store.path, salvage=store.moved_aside)
    return Alerter(AlertingConfig(), outbox, silence_copy=SilenceCopy(
        state_dir / "silences.json")), store


def closed(alerter: Alerter, store: StateFile) -> None:
    store.close()
    alerter.outbox.close()


@pytest.fixture
def two_silences_then_one(tmp_path: Path) -> tuple[Path, str]:
    """A state dir whose API made two silences and deleted the first; the kept one's id."""
    alerter, store = opened(tmp_path)
    first = alerter.add_silence({"match": {"group": "billing"}, "ends": ENDS}, NOW)
    kept = alerter.add_silence({"match": {"group": "orders"}, "ends": ENDS}, NOW)
    shutil.copy(tmp_path / "silences.json", tmp_path / "before-delete.json")
    assert alerter.drop_silence(first)
    closed(alerter, store)
    return tmp_path, kept


def kept_ids(state_dir: Path) -> tuple[list[str], dict[str, object]]:
    """The silences a restart finds, and what its copy then says."""
    alerter, store = opened(state_dir)
    ids = [i for i, _ in alerter.silences()]
    closed(alerter, store)
    return ids, json.loads((state_dir / "silences.json").read_text())


def overwrite(path: Path) -> None:
    path.write_bytes(b"\x13" * path.stat().st_size)


@pytest.mark.parametrize("damage", [
    lambda d: (d / "lagwatch.sqlite").unlink(),
    lambda d: overwrite(d / "lagwatch.sqlite"),
])
def test_the_silences_survive_a_lost_or_damaged_state_file(
        two_silences_then_one: tuple[Path, str], damage: Callable[[Path], None],
        caplog: pytest.LogCaptureFixture) -> None:
    state_dir, kept = two_silences_then_one
    damage(state_dir)
    ids, copy = kept_ids(state_dir)
    assert ids == [kept]
    assert copy["changes"] == 3 and list(copy["silences"]) == [kept]  # type: ignore[call-overload]
    assert ("the state file holds 0 changes of the silences, silences.json 3: the silences "
            f"come from {state_dir / 'silences.json'}") in caplog.messages
    # and the state file has them again: the next restart finds them without the copy
    (state_dir / "silences.json").unlink()
    assert kept_ids(state_dir)[0] == [kept]


@pytest.mark.parametrize("damage", [
    lambda d: (d / "silences.json").write_text("{\"version\": 1, \"chan"),
    lambda d: (d / "silences.json").write_bytes(b"\xff" * 100),
    lambda d: (d / "silences.json").unlink(),
])
def test_a_lost_or_damaged_copy_is_written_again_from_the_state_file(
        two_silences_then_one: tuple[Path, str], damage: Callable[[Path], None]) -> None:
    state_dir, kept = two_silences_then_one
    damage(state_dir)
    ids, copy = kept_ids(state_dir)
    assert ids == [kept]
    assert copy["changes"] == 3 and list(copy["silences"]) == [kept]  # type: ignore[call-overload]


def test_a_stale_copy_never_brings_a_deleted_silence_back(
        two_silences_then_one: tuple[Path, str]) -> None:
    state_dir, kept = two_silences_then_one
    shutil.copy(state_dir / "before-delete.json", state_dir / "silences.json")
    assert kept_ids(state_dir)[0] == [kept]


def test_a_damaged_copy_is_named_in_the_log(
        two_silences_then_one: tuple[Path, str], caplog: pytest.LogCaptureFixture) -> None:
    state_dir, _ = two_silences_then_one
    (state_dir / "silences.json").write_text("[]")
    with caplog.at_level(logging.WARNING):
        kept_ids(state_dir)
    assert (f"{state_dir / 'silences.json'} is damaged (not a version 1 silence copy); the "
            "silences come from the state file, and the copy is written again"
            ) in caplog.messages
