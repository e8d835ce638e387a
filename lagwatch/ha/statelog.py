"""The state topic's records, and what a replica makes of a shard's records (pure).

Each shard is one partition of the compacted state topic. Its records, keyed so that
compaction keeps the latest of each:

- ``claim``: a replica took the shard over. The new owner writes it, then reads the
  partition up to it before acting: everything written before is known to it, and what a
  former owner writes after is discarded (``Claims``).
- ``incident:<id>``: an incident's state as its owner last wrote it: the incident (or
  null once resolved), the notifications of it not yet delivered, and what receivers
  answered to its trigger. A resolved incident with nothing left to deliver is a
  tombstone, which compaction removes.
- ``silence:<id>`` (in shard 0, from any replica): a silence made through the API, as the
  API took it; deleting it writes a tombstone.
- ``status:<cluster>``: after each poll, the owner's part of the cluster's status document
  (the shard's groups, and the cluster's own fields in the cluster's shard): a line of
  JSON naming the writer, then the part as zlib-compressed JSON, which only a reader that
  serves ``/api/v1/status`` decompresses, when asked.

A replica reads the shards it holds (to take them over) and, apart, every shard (the
fleet's incidents and silences), each into a ShardState of its own.

Every value carries its writer (replica, incarnation, generation). Anyone the cluster lets
write the topic can write to it (restrict it with ACLs: README), so a value's shape is
checked before it is used; one that is not what a replica writes is counted and skipped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.incidents import Incident, dump_incident, load_incident
from lagwatch.alerting.sharing import Handed
from lagwatch.ha.ownership import Claim, Claims

VERSION = 1
CLAIM = b"claim"
INCIDENT = "incident:"
SILENCE = "silence:"
SILENCES_SHARD = 0
STATUS = "status:"


class RecordError(ValueError):
    """A state-topic value that is not what a replica writes."""


def claim_value(claim: Claim) -> bytes:
    """The value of a ``claim`` record."""
    return json.dumps(_writer(claim)).encode()


def _writer(claim: Claim) -> dict[str, Any]:
    return {"v": VERSION, "replica": claim.replica, "incarnation": claim.incarnation,
            "generation": claim.generation}


def incident_record(claim: Claim, incident_id: str, handed: Handed
                    ) -> tuple[bytes, bytes | None]:
    """The key and value of an incident's record (value None: a tombstone)."""
    key = (INCIDENT + incident_id).encode()
    if handed.incident is None and not handed.pending:
        return key, None
    return key, json.dumps({
        **_writer(claim),
        "incident": None if handed.incident is None else dump_incident(handed.incident),
        "pending": [list(p) for p in handed.pending],
        "receipts": dict(handed.receipts)}, separators=(",", ":")).encode()


def _claim(doc: Any) -> Claim:
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise RecordError("not a version 1 record")
    replica, incarnation = doc.get("replica"), doc.get("incarnation")
    generation = doc.get("generation")
    if not isinstance(replica, str) or not isinstance(incarnation, str) or type(
            generation) is not int:
        raise RecordError("no replica, incarnation and generation")
    return Claim(replica, incarnation, generation)


def _handed(doc: dict[str, Any]) -> Handed:
    pending, receipts = doc.get("pending"), doc.get("receipts")
    if not isinstance(pending, list) or not all(
            isinstance(p, list) and len(p) == 3 and all(isinstance(x, str) for x in p)
            for p in pending):
        raise RecordError("pending is not a list of [receiver, action, message]")
    if not isinstance(receipts, dict) or not all(isinstance(r, dict)
                                                 for r in receipts.values()):
        raise RecordError("receipts is not an object of objects")
    row = doc.get("incident")
    try:
        incident = None if row is None else load_incident(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"unreadable incident ({type(exc).__name__}: {exc})") from None
    return Handed(incident, tuple((a, b, c) for a, b, c in pending), receipts)


def decode(key: bytes | None, value: bytes | None) -> tuple[str | None, Claim | None,
                                                               Handed | None]:
    """Read one record: (incident id or None for a claim, the writer's claim or None for a
    tombstone, the incident's state or None). Raises RecordError for anything else."""
    if key == CLAIM:
        if value is None:
            raise RecordError("a claim without a value")
        return None, _claim(_json(value)), None
    name = (key or b"").decode("utf-8", "replace")
    if not name.startswith(INCIDENT) or len(name) == len(INCIDENT):
        raise RecordError(f"unknown key {name[:80]!r}")
    if value is None:
        return name[len(INCIDENT):], None, None
    doc = _json(value)
    return name[len(INCIDENT):], _claim(doc), _handed(doc)


def _json(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, ValueError):
        raise RecordError("not JSON") from None


def status_record(claim: Claim, cluster: str, compressed: bytes) -> tuple[bytes, bytes]:
    """The key and value of a shard's part of a cluster's status document."""
    return (STATUS + cluster).encode(), json.dumps(_writer(claim)).encode() + b"\n" + compressed


def silence_record(silence_id: str, silence: SilenceConfig | None
                   ) -> tuple[bytes, bytes | None]:
    """The key and value of a silence's record (None: deleted)."""
    return ((SILENCE + silence_id).encode(),
            None if silence is None else silence.model_dump_json().encode())


class ShardState:
    """What this replica has read of the state topic (thread-safe: the membership thread
    applies records; the alerter and the API read)."""

    def __init__(self) -> None:
        self.claims = Claims()
        self._entries: dict[int, dict[str, Handed]] = {}
        self._silences: dict[str, SilenceConfig] = {}
        self._status: dict[tuple[int, str], bytes] = {}  # (shard, cluster) -> compressed
        self._lock = threading.Lock()
        self.discarded = 0  # writes of a former owner
        self.unreadable = 0  # values no replica writes

    def apply(self, shard: int, key: bytes | None, value: bytes | None) -> str | None:
        """Take one record of a shard; return why it was skipped, if it was."""
        if key is not None and key.startswith(SILENCE.encode()):
            return self._silence(key, value)
        if key is not None and key.startswith(STATUS.encode()):
            return self._status_part(shard, key, value)
        try:
            incident_id, claim, handed = decode(key, value)
        except RecordError as exc:
            with self._lock:
                self.unreadable += 1
            return str(exc)
        with self._lock:
            if incident_id is None:  # a claim record
                assert claim is not None
                self.claims.claimed(shard, claim)
                return None
            if claim is not None and not self.claims.admit(shard, claim):
                self.discarded += 1
                return (f"a write of {claim.replica} (generation {claim.generation}), "
                        "which no longer owns the shard")
            entries = self._entries.setdefault(shard, {})
            if handed is None:
                entries.pop(incident_id, None)
            else:
                entries[incident_id] = handed
        return None

    def _silence(self, key: bytes, value: bytes | None) -> str | None:
        silence_id = key[len(SILENCE):].decode("utf-8", "replace")
        if value is None:
            with self._lock:
                self._silences.pop(silence_id, None)
            return None
        try:
            silence = SilenceConfig.model_validate_json(value)
        except ValidationError as exc:
            with self._lock:
                self.unreadable += 1
            return f"silence {silence_id[:80]!r} is not valid ({exc.error_count()} errors)"
        with self._lock:
            self._silences[silence_id] = silence
        return None

    def forget(self, shard: int) -> None:
        """Drop what was read of a shard (to be read again from its start)."""
        with self._lock:
            self._entries.pop(shard, None)
            self.claims.latest.pop(shard, None)

    def _status_part(self, shard: int, key: bytes, value: bytes | None) -> str | None:
        cluster = key[len(STATUS):].decode("utf-8", "replace")
        head, _, compressed = (value or b"").partition(b"\n")
        try:
            writer = _claim(_json(head))
        except RecordError as exc:
            with self._lock:
                self.unreadable += 1
            return f"status of {cluster[:80]!r}: {exc}"
        with self._lock:
            if not self.claims.admit(shard, writer):
                self.discarded += 1
                return (f"a write of {writer.replica} (generation {writer.generation}), "
                        "which no longer owns the shard")
            self._status[shard, cluster] = compressed
        return None

    def status_parts(self) -> dict[tuple[int, str], bytes]:
        """Each shard's latest part of each cluster's status document, compressed."""
        with self._lock:
            return dict(self._status)

    def handed(self, shard: int) -> Mapping[str, Handed]:
        """The shard's incidents as its records say, by id."""
        with self._lock:
            return dict(self._entries.get(shard, {}))

    def incidents(self) -> list[Incident]:
        """Every shard's open incidents."""
        with self._lock:
            return [h.incident for entries in self._entries.values()
                    for h in entries.values() if h.incident is not None]

    def silences(self) -> dict[str, SilenceConfig]:
        """The silences made through any replica's API, by id."""
        with self._lock:
            return dict(self._silences)
