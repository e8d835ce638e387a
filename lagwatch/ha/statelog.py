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

Every value is signed (ha.signing) and carries its writer (replica, incarnation,
generation); ``ShardState`` takes payloads whose signature the replica verified. Even so a
payload's shape is checked before it is used, and one that is not what a replica writes
is counted and skipped, never its neighbours. Deleting writes a signed deletion (an
incident resolved with nothing left to send; a silence ``{"deleted":true}``) and then a
tombstone for compaction: a tombstone of a record still held is refused, since anyone can
write one. A value signed more than ``MAX_SKEW_MS`` before the latest one of its key is a
replay and refused. Status parts are bounded in size, each and in total, and kept only for
the configured clusters.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
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
DELETED = b'{"deleted":true}'  # a silence's signed deletion
MAX_SKEW_MS = 30_000  # how far replicas' clocks may disagree: anything older is a replay
MAX_TIMES = 200_000  # keys whose latest signing time is remembered (replays of older ones)
MAX_PART = 8 << 20  # bytes of one compressed status part (Kafka's default limit is 1 MB)
MAX_PARTS = 256 << 20  # bytes of every status part kept, compressed


class RecordError(ValueError):
    """A state-topic value that is not what a replica writes."""


def claim_value(claim: Claim) -> bytes:
    """The value of a ``claim`` record (naming the claimant's group member id)."""
    return json.dumps({**_writer(claim), "member": claim.member}).encode()


def _writer(claim: Claim) -> dict[str, Any]:
    return {"v": VERSION, "replica": claim.replica, "incarnation": claim.incarnation,
            "generation": claim.generation}


def finished(handed: Handed) -> bool:
    """Whether an incident is resolved with nothing left to send: its record is then a
    deletion, followed by a tombstone."""
    return handed.incident is None and not handed.pending


def incident_record(claim: Claim, incident_id: str, handed: Handed) -> tuple[bytes, bytes]:
    """The key and value of an incident's record."""
    key = (INCIDENT + incident_id).encode()
    return key, json.dumps({
        **_writer(claim),
        "incident": None if handed.incident is None else dump_incident(handed.incident),
        "pending": [list(p) for p in handed.pending],
        "receipts": dict(handed.receipts)}, separators=(",", ":")).encode()


def _claim(doc: Any) -> Claim:
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise RecordError("not a version 1 record")
    replica, incarnation = doc.get("replica"), doc.get("incarnation")
    generation, member = doc.get("generation"), doc.get("member")
    if not isinstance(replica, str) or not isinstance(incarnation, str) or type(
            generation) is not int:
        raise RecordError("no replica, incarnation and generation")
    return Claim(replica, incarnation, generation,
                 member if isinstance(member, str) else None)


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
    except RecursionError:
        raise RecordError("JSON nested too deeply") from None


def status_record(claim: Claim, cluster: str, compressed: bytes) -> tuple[bytes, bytes]:
    """The key and value of a shard's part of a cluster's status document."""
    return (STATUS + cluster).encode(), json.dumps(_writer(claim)).encode() + b"\n" + compressed


def silence_record(silence_id: str, silence: SilenceConfig | None) -> tuple[bytes, bytes]:
    """The key and value of a silence's record (silence None: its deletion)."""
    return ((SILENCE + silence_id).encode(),
            DELETED if silence is None else silence.model_dump_json().encode())


class ShardState:
    """What this replica has read of the state topic (thread-safe: the membership thread
    applies records; the alerter and the API read). ``clusters``: the configured ones,
    whose status parts are kept (None: any)."""

    def __init__(self, clusters: frozenset[str] | None = None) -> None:
        self.claims = Claims()
        self.clusters = clusters
        self._entries: dict[int, dict[str, Handed]] = {}
        self._silences: dict[str, SilenceConfig] = {}
        self._status: dict[tuple[int, str], bytes] = {}  # (shard, cluster) -> compressed
        self._status_bytes = 0  # their total length
        self._times: OrderedDict[tuple[int, bytes], int] = OrderedDict()  # latest at_ms
        self._lock = threading.Lock()
        self.discarded = 0  # writes of a former owner
        self.unreadable = 0  # values no replica writes

    def apply(self, shard: int, key: bytes | None, value: bytes | None,
              at_ms: int | None = None) -> str | None:
        """Take one record of a shard (``value``: the verified payload, or None for a
        tombstone; ``at_ms``: when it was signed); return why it was skipped, if it was."""
        if value is None:
            return self._tombstone(shard, key or b"")
        if at_ms is not None and key is not None:
            stale = self._replayed(shard, key, at_ms)
            if stale is not None:
                return stale
        if key is not None and key.startswith(SILENCE.encode()):
            return self._silence(key, value)
        if key is not None and key.startswith(STATUS.encode()):
            return self._status_part(shard, key, value)
        try:
            incident_id, claim, handed = decode(key, value)
        except RecordError as exc:
            return self._unreadable(str(exc))
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
            if handed is None or finished(handed):
                entries.pop(incident_id, None)
            else:
                entries[incident_id] = handed
        return None

    def _unreadable(self, why: str) -> str:
        with self._lock:
            self.unreadable += 1
        return why

    def _replayed(self, shard: int, key: bytes, at_ms: int) -> str | None:
        """Why a value signed at ``at_ms`` is refused (older than its key's latest by more
        than the clocks may disagree: a replay), or None, remembering its time."""
        with self._lock:
            latest = self._times.get((shard, key))
            if latest is not None and at_ms < latest - MAX_SKEW_MS:
                self.unreadable += 1
                return (f"signed {(latest - at_ms) / 1000:.0f}s before the latest value of "
                        "its key: a replay (or the replicas' clocks are that far apart)")
            self._times[shard, key] = max(at_ms, latest or at_ms)
            self._times.move_to_end((shard, key))
            if len(self._times) > MAX_TIMES:
                self._times.popitem(last=False)
        return None

    def _tombstone(self, shard: int, key: bytes) -> str | None:
        """A tombstone only lets compaction drop a record already deleted by a signed
        value; one of a record still held is refused (anyone can write a tombstone)."""
        name = key.decode("utf-8", "replace")
        with self._lock:
            held = (name[len(SILENCE):] in self._silences if name.startswith(SILENCE)
                    else (shard, name[len(STATUS):]) in self._status
                    if name.startswith(STATUS)
                    else name[len(INCIDENT):] in self._entries.get(shard, {})
                    if name.startswith(INCIDENT) else key == CLAIM)
        if held:
            return self._unreadable(f"a tombstone of {name[:80]!r}, which is not deleted")
        return None

    def _silence(self, key: bytes, value: bytes) -> str | None:
        silence_id = key[len(SILENCE):].decode("utf-8", "replace")
        if value == DELETED:
            with self._lock:
                self._silences.pop(silence_id, None)
            return None
        try:
            silence = SilenceConfig.model_validate_json(value)
        except ValidationError as exc:
            return self._unreadable(f"silence {silence_id[:80]!r} is not valid "
                                    f"({exc.error_count()} errors)")
        with self._lock:
            self._silences[silence_id] = silence
        return None

    def claimants(self) -> dict[int, str | None]:
        """Each claimed shard's latest claimant, by its group member id."""
        with self._lock:
            return {s: c.member for s, c in self.claims.latest.items()}

    def claimed_by(self, shard: int, writer: Claim) -> bool:
        """Whether the shard's latest claim is ``writer``'s (a replica in one run)."""
        with self._lock:
            latest = self.claims.latest.get(shard)
            return latest is not None and latest.same_writer(writer)

    def forget(self, shard: int) -> None:
        """Drop what was read of a shard (to be read again from its start)."""
        with self._lock:
            self._entries.pop(shard, None)
            self.claims.latest.pop(shard, None)
            for key in [k for k in self._times if k[0] == shard]:
                del self._times[key]

    def _status_part(self, shard: int, key: bytes, value: bytes) -> str | None:
        cluster = key[len(STATUS):].decode("utf-8", "replace")
        if self.clusters is not None and cluster not in self.clusters:
            return self._unreadable(f"status of {cluster[:80]!r}, which is not a "
                                    "configured cluster")
        head, _, compressed = value.partition(b"\n")
        try:
            writer = _claim(_json(head))
        except RecordError as exc:
            return self._unreadable(f"status of {cluster[:80]!r}: {exc}")
        if len(compressed) > MAX_PART:
            return self._unreadable(f"status of {cluster[:80]!r} is {len(compressed):,} "
                                    f"bytes, over {MAX_PART:,}")
        with self._lock:
            if not self.claims.admit(shard, writer):
                self.discarded += 1
                return (f"a write of {writer.replica} (generation {writer.generation}), "
                        "which no longer owns the shard")
            kept = self._status_bytes - len(self._status.get((shard, cluster), b""))
            if kept + len(compressed) > MAX_PARTS:
                self.unreadable += 1
                return (f"status of {cluster[:80]!r}: the parts kept would pass "
                        f"{MAX_PARTS:,} bytes")
            self._status[shard, cluster] = compressed
            self._status_bytes = kept + len(compressed)
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
