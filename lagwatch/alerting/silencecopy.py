"""The silences made through the API (without ``ha``), kept in two files.

The silences live in the state file (``lagwatch.sqlite``) and, after every change, in
``silences.json`` too, written whole to a new file that then replaces the old one (a crash
leaves the old or the new, never half of one). Each copy says how many changes it holds
(``changes``), so at start the newer readable copy wins and the other is brought level:
a silence survives any single damaged or lost file, and a deleted one is never brought
back by a stale copy. (Both files lost at once lose the silences: lagwatch then pages.)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.outbox import Outbox
from lagwatch.configtypes import describe

log = logging.getLogger(__name__)

MAX_BYTES = 16 << 20  # a copy larger than this is not read (it is not one lagwatch wrote)


class SilenceCopy:
    """``silences.json``: ``{"version": 1, "changes": N, "silences": {id: body}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, dict[str, str]] | None:
        """(changes, id -> JSON body), or None when there is no readable copy (a damaged
        one is logged)."""
        try:
            with self.path.open("rb") as file:
                raw = file.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read %s (%s); the silences come from the state file",
                        self.path, exc.strerror)
            return None
        try:
            if len(raw) > MAX_BYTES:
                raise ValueError(f"over {MAX_BYTES:,} bytes")
            copy = _checked(json.loads(raw))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            log.warning("%s is damaged (%s); the silences come from the state file, and "
                        "the copy is written again", self.path, str(exc)[:200])
            return None
        return copy

    def write(self, changes: int, silences: dict[str, str]) -> bool:
        """Replace the copy; say whether it was written (a failure is logged: the state
        file still has the silences)."""
        text = json.dumps({"version": 1, "changes": changes, "silences": silences},
                          indent=1, sort_keys=True)
        partial = self.path.with_name(self.path.name + ".new")
        try:
            with partial.open("w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            partial.replace(self.path)
        except OSError as exc:
            log.warning("cannot write %s (%s); the silences are in the state file only",
                        self.path, exc.strerror or exc)
            return False
        return True


def _checked(doc: Any) -> tuple[int, dict[str, str]]:
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ValueError("not a version 1 silence copy")
    changes, silences = doc.get("changes"), doc.get("silences")
    if type(changes) is not int or changes < 0:
        raise ValueError("no count of changes")
    if not isinstance(silences, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in silences.items()):
        raise ValueError("silences is not an object of JSON bodies")
    return changes, silences


class ApiSilences:
    """The API's silences: in memory for the alerter, in the state file, and copied to
    ``copy`` (None: no copy, as with ``persist: false``)."""

    def __init__(self, outbox: Outbox, copy: SilenceCopy | None) -> None:
        self.outbox, self.copy = outbox, copy
        self._lock = threading.Lock()
        self.changes, bodies = outbox.silence_changes(), outbox.silences()
        copied = copy.read() if copy is not None else None
        if copy is not None and copied is not None and copied[0] > self.changes:
            log.warning("the state file holds %d changes of the silences, %s %d: the "
                        "silences come from %s", self.changes, copy.path.name, copied[0],
                        copy.path)
            self.changes, bodies = copied
            outbox.replace_silences(bodies, self.changes)
        self._silences: dict[str, SilenceConfig] = {}
        self._bodies: dict[str, str] = {}
        for silence_id, body in bodies.items():
            try:
                self._silences[silence_id] = SilenceConfig.model_validate_json(body)
                self._bodies[silence_id] = body
            except ValidationError as exc:  # a pattern RE2 refuses, from before it was used
                log.warning("dropped silence %s kept in %s: %s", silence_id,
                            outbox.path or "memory", describe(exc))
                self.changes += 1
                outbox.drop_silence(silence_id, self.changes)
        if copied != (self.changes, self._bodies):
            self._copy()

    def all(self) -> dict[str, SilenceConfig]:
        """Every API silence, by id."""
        with self._lock:
            return dict(self._silences)

    def add(self, silence_id: str, silence: SilenceConfig) -> None:
        """Keep a new silence in both files."""
        body = silence.model_dump_json()
        with self._lock:
            self.changes += 1
            self.outbox.save_silence(silence_id, body, self.changes)
            self._silences[silence_id], self._bodies[silence_id] = silence, body
            self._copy()

    def drop(self, silence_id: str) -> bool:
        """Delete a silence from both files; say whether it existed."""
        with self._lock:
            if silence_id not in self._silences:
                return False
            self.changes += 1
            self.outbox.drop_silence(silence_id, self.changes)
            del self._silences[silence_id], self._bodies[silence_id]
            self._copy()
        return True

    def _copy(self) -> None:
        if self.copy is not None:
            self.copy.write(self.changes, self._bodies)
