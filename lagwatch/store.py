"""Persist recent polls and detection memory in SQLite, so a restart keeps its windows.

Each successful poll is stored as one compressed row of the offsets history needs; on
start the rows inside the window are replayed. A missing, unreadable or corrupt file is
logged and replaced, never fatal; a failed write is logged and the daemon goes on.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from lagwatch.detect.rules import Memory
from lagwatch.model import GroupSnapshot, LogOffsets, Snapshot

log = logging.getLogger(__name__)
FILE_NAME = "lagwatch.sqlite"
_LEVEL = 1  # zlib: a quarter of the default level's CPU for a third more bytes
_SCHEMA = """
CREATE TABLE IF NOT EXISTS polls (cluster TEXT NOT NULL, taken_at REAL NOT NULL,
                                  data BLOB NOT NULL, PRIMARY KEY (cluster, taken_at));
CREATE TABLE IF NOT EXISTS memory (cluster TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


def damage(db: sqlite3.Connection) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong anywhere in an open file (None: nothing)."""
    found = [row[0] for row in db.execute("PRAGMA quick_check").fetchall() if row[0] != "ok"]
    if not found:
        return None
    return "; ".join(found[:2]) + (f" and {len(found) - 2} more" if len(found) > 2 else "")


class StateFile:
    """One SQLite file shared by every cluster's poller (calls are serialised)."""

    def __init__(self, state_dir: str) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.failing: str | None = None  # the last write's error, while writes fail
        self.write_errors = 0
        self.moved_aside: Path | None = None  # where a damaged file went at start
        try:
            self._db = self._open()
        except (sqlite3.DatabaseError, OSError) as exc:
            log.warning("state file %s is unusable (%s); history will not survive a restart",
                        self.path, exc)
            self.failing = str(exc)

    def _open(self) -> sqlite3.Connection:
        """Open the file, checked whole (``PRAGMA quick_check``): a damaged one is moved
        aside (``moved_aside``, for the outbox to take what it can from) and started
        afresh. A file that cannot be opened or written (a read-only directory) raises: it
        is unusable, not damaged, and stays where it is."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size == 0:
            log.warning("state file %s is empty: the history, incidents and silences it "
                        "held are gone; starting afresh", self.path)
        try:
            db = self._connect()
            problem = damage(db)
            if problem is None:
                return db
            db.close()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # not a database, or its header is damaged
            problem = str(exc)
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):  # its write-ahead log goes with it
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                part.rename(aside.with_name(aside.name + suffix))
        log.warning("state file %s is damaged (%s); moved it to %s and starting afresh, "
                    "with what can still be read of its incidents, notifications and "
                    "silences", self.path, problem, aside)
        self.moved_aside = aside
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        """Open the file in WAL mode with lagwatch's tables."""
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        db.execute("SELECT count(*) FROM polls").fetchone()
        return db

    def save(self, snapshot: Snapshot, memory: Memory, keep_after: float) -> None:
        """Store one poll and the memory after it; drop polls older than keep_after."""
        if self._db is None:
            return
        row = zlib.compress(json.dumps(_encode(snapshot), separators=(",", ":")).encode(),
                            _LEVEL)
        state = json.dumps(_encode_memory(memory)).encode()
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.execute("INSERT OR REPLACE INTO polls VALUES (?, ?, ?)",
                                 (snapshot.cluster, snapshot.taken_at, row))
                self._db.execute("DELETE FROM polls WHERE cluster = ? AND taken_at < ?",
                                 (snapshot.cluster, keep_after))
                self._db.execute("INSERT OR REPLACE INTO memory VALUES (?, ?)",
                                 (snapshot.cluster, state))
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self.write_errors += 1
            if self.failing is None:
                log.error("cannot write state file %s: %s; history will not survive a "
                          "restart until it can", self.path, exc)
            self.failing = str(exc)
            return
        if self.failing is not None:
            log.info("state file %s is writable again", self.path)
            self.failing = None

    def _rollback(self) -> None:
        assert self._db is not None
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback after a failed write also failed", exc_info=True)

    def load(self, cluster: str, since: float) -> tuple[list[Snapshot], Memory]:
        """Return a cluster's stored polls newer than since, oldest first, and its memory."""
        if self._db is None:
            return [], Memory()
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT data FROM polls WHERE cluster = ? AND taken_at >= ? "
                    "ORDER BY taken_at", (cluster, since)).fetchall()
                state = self._db.execute("SELECT data FROM memory WHERE cluster = ?",
                                         (cluster,)).fetchone()
            snapshots = [_decode(cluster, json.loads(zlib.decompress(r[0]))) for r in rows]
            memory = _decode_memory(json.loads(state[0])) if state else Memory()
        except (sqlite3.Error, zlib.error, ValueError, KeyError, TypeError) as exc:
            log.warning("state for cluster %s in %s is unreadable (%s); starting afresh",
                        cluster, self.path, exc)
            return [], Memory()
        return snapshots, memory

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None


def _encode(snapshot: Snapshot) -> dict[str, Any]:
    """One poll as JSON: each group's committed offsets by topic, as flat partition and
    offset pairs (a topic's name once per group, not once per partition)."""
    groups: dict[str, dict[str, list[int]]] = {}
    for gid, g in snapshot.groups.items():
        by_topic: dict[str, list[int]] = {}
        for (t, p), c in g.committed.items():
            pairs = by_topic.get(t)
            if pairs is None:
                pairs = by_topic[t] = []
            pairs += (p, c)
        groups[gid] = by_topic
    return {"t": snapshot.taken_at,
            "o": [[t, p, o.log_start, o.log_end, o.last_stable]
                  for (t, p), o in snapshot.offsets.items()],
            "c": groups}


def _committed(data: dict[str, Any]) -> dict[str, dict[tuple[str, int], int]]:
    if "g" in data:  # written before offsets were kept by topic: [topic, partition, offset]
        return {gid: {(t, int(p)): int(c) for t, p, c in rows}
                for gid, rows in data["g"].items()}
    return {gid: {(t, int(pairs[k])): int(pairs[k + 1]) for t, pairs in by_topic.items()
                  for k in range(0, len(pairs), 2)}
            for gid, by_topic in data["c"].items()}


def _decode(cluster: str, data: dict[str, Any]) -> Snapshot:
    return Snapshot(
        cluster, float(data["t"]), 0.0, up=True,
        # state files before the last stable offset was read hold four values
        offsets={(o[0], int(o[1])): LogOffsets(int(o[2]), int(o[3]),
                                               None if len(o) < 5 or o[4] is None else int(o[4]))
                 for o in data["o"]},
        groups={gid: GroupSnapshot(gid, "Unknown", committed=committed)
                for gid, committed in _committed(data).items()})


def _encode_memory(memory: Memory) -> dict[str, Any]:
    return {"lagging": sorted(memory.lagging),
            "loss_counted_to": [[*k, v] for k, v in memory.loss_counted_to.items()],
            "lost_total": [[*k, v] for k, v in memory.lost_total.items()]}


def _decode_memory(data: dict[str, Any]) -> Memory:
    return Memory(
        # (group, topic); older state files hold (group, topic, partition): the same topics
        lagging={(str(key[0]), str(key[1])) for key in data["lagging"]},
        loss_counted_to={(g, t, int(p)): int(v) for g, t, p, v in data["loss_counted_to"]},
        lost_total={(g, t): int(v) for g, t, v in data["lost_total"]})
