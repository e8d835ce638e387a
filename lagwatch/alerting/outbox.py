"""The outbox: notifications waiting for delivery, and the incident book, in SQLite.

It lives in the state file (``state_dir/lagwatch.sqlite``, beside the poll history), or in
memory with ``persist: false``. The book and the notifications it produced are written in
one transaction, so a crash never keeps one without the other: after a restart pending
rows are sent, and an incident already told is not told again.

With ``ha``, each row names the shard of its incident; when the shard moves to another
replica, its undelivered rows are marked ``handed``: the new owner sends them, from the
state topic.

A row is marked sent only after its receiver accepted it. Rows of one receiver go out in
order: only the oldest pending row of a receiver is ever tried.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
KEEP_DONE_S = 7 * 86400.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, incident TEXT NOT NULL,
    action TEXT NOT NULL, message TEXT NOT NULL, created_at REAL NOT NULL,
    next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending', error TEXT, shard INTEGER);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (receiver, state, id);
CREATE TABLE IF NOT EXISTS receipts (receiver TEXT NOT NULL, incident TEXT NOT NULL,
                                     ref TEXT NOT NULL, PRIMARY KEY (receiver, incident));
CREATE TABLE IF NOT EXISTS incidents (id INTEGER PRIMARY KEY CHECK (id = 1),
                                      book TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One notification for one receiver."""

    id: int
    receiver: str
    incident: str
    action: str
    message: str
    created_at: float
    next_at: float
    attempts: int
    shard: int | None = None

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt at this notification, by any replica, after any
        restart or takeover (the row's id is not: a takeover queues it afresh), and
        different for any other: the incident, then a digest of the receiver, the action
        and the message (whose ``at`` tells two alike notifications apart)."""
        digest = hashlib.sha256("\0".join((self.receiver, self.action, self.message))
                                .encode()).hexdigest()[:16]
        return f"{self.incident}#{digest}"


class Outbox:
    """Thread-safe: the poll threads add, the delivery workers take."""

    def __init__(self, path: Path | None, salvage: Path | None = None) -> None:
        """Open the outbox in ``path`` (None: in memory); ``salvage`` is a damaged state
        file moved aside at start, whose incidents, receipts, silences and pending
        notifications are carried over as far as they can be read."""
        self._lock = threading.Lock()
        failing: str | None = None
        try:
            self._db = self._open(path)
        except (sqlite3.DatabaseError, OSError) as exc:
            log.warning("state file %s is unusable for the outbox (%s); notifications are "
                        "kept in memory and a restart loses what is pending", path, exc)
            path, failing = None, str(exc)
            self._db = self._open(None)
        self.path = path
        self.failing: str | None = failing  # why the file was given up for memory, if it was
        if salvage is not None:
            self._carry_over(salvage)

    def _carry_over(self, damaged: Path) -> None:
        try:
            source = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            log.warning("nothing could be read of %s (%s)", damaged, exc)
            return
        try:
            with self._lock:
                kept = _salvage(source, self._db)
        finally:
            source.close()
        log.warning("from %s, carried over %s", damaged, kept)

    @staticmethod
    def _open(path: Path | None) -> sqlite3.Connection:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None,
                             timeout=10.0)
        if path is not None:
            db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        if "shard" not in {c[1] for c in db.execute("PRAGMA table_info(outbox)")}:
            db.execute("ALTER TABLE outbox ADD COLUMN shard INTEGER")  # before ha
        return db

    # the poll side ------------------------------------------------------------------------
    def record(self, book: list[dict[str, Any]],
               rows: Iterable[tuple[str, str, str, str, int | None]], now: float) -> None:
        """Save the incident book and add (receiver, incident, action, message, shard)
        rows (shard None without ha)."""
        rows = list(rows)

        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO incidents (id, book) VALUES (1, ?)",
                       (json.dumps(book),))
            db.executemany(
                "INSERT INTO outbox (receiver, incident, action, message, shard, created_at, "
                "next_at) VALUES (?, ?, ?, ?, ?, ?, ?)", [(*row, now, now) for row in rows])
            db.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < ?",
                       (now - KEEP_DONE_S,))
        self._write(work)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a write in a transaction; if the file refuses it (a full disk, a read-only
        file, a damaged page), carry on in memory with what the file held, and say so."""
        try:
            with self._transaction() as db:
                return work(db)
        except sqlite3.DatabaseError as exc:
            if self.path is None or not _file_trouble(exc):
                raise
            self._degrade(exc)
        with self._transaction() as db:
            return work(db)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run a query; a file that fails it (a damaged page) is given up for memory."""
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if self.path is None or not _file_trouble(exc):
                raise
            self._degrade(exc)
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _degrade(self, exc: sqlite3.Error) -> None:
        with self._lock:
            if self.path is None:  # another thread got there first
                return
            memory = sqlite3.connect(":memory:", check_same_thread=False,
                                     isolation_level=None)
            try:  # a backup copies damaged pages too: the copy must check out
                self._db.backup(memory)
                if memory.execute("PRAGMA quick_check").fetchone() != ("ok",):
                    raise sqlite3.DatabaseError("the copy is damaged")
                kept = "everything it held"
            except sqlite3.DatabaseError:  # damaged: take what can still be read
                memory.close()
                memory = self._open(None)
                kept = _salvage(self._db, memory)
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            log.error("cannot use %s (%s); notifications are kept in memory from now on "
                      "(with %s), and a restart loses what is pending", self.path, exc, kept)
            self._db, self.path, self.failing = memory, None, str(exc)

    def book(self) -> list[dict[str, Any]]:
        """Return the saved incident book (empty when none was saved)."""
        rows = self._read("SELECT book FROM incidents WHERE id = 1")
        return json.loads(rows[0][0]) if rows else []

    # the delivery side --------------------------------------------------------------------
    def head(self, receiver: str) -> Row | None:
        """Return a receiver's oldest pending row."""
        found = self._read(
            "SELECT id, receiver, incident, action, message, created_at, next_at, "
            "attempts, shard FROM outbox WHERE receiver = ? AND state = 'pending' "
            "ORDER BY id LIMIT 1", (receiver,))
        return Row(*found[0]) if found else None

    def sent(self, row: Row, ref: Mapping[str, Any] | None) -> None:
        """Mark a row delivered; keep (or, on resolve, drop) what later rows need."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE outbox SET state = 'sent', attempts = attempts + 1, "
                       "error = NULL WHERE id = ?", (row.id,))
            if row.action == "resolve":
                db.execute("DELETE FROM receipts WHERE receiver = ? AND incident = ?",
                           (row.receiver, row.incident))
            elif ref is not None:
                db.execute("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)",
                           (row.receiver, row.incident, json.dumps(ref)))
        self._write(work)

    def retry(self, row: Row, at: float, error: str) -> None:
        """Try a row again at ``at``."""
        self._write(lambda db: db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?, error = ? WHERE id = ?",
            (at, error, row.id)))

    def failed(self, row: Row, error: str) -> None:
        """Give up on a row."""
        self._write(lambda db: db.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ? "
            "WHERE id = ?", (error, row.id)))

    def receipt(self, receiver: str, incident: str) -> dict[str, Any] | None:
        """Return what the receiver answered to the incident's trigger (a Slack ts, say)."""
        found = self._read("SELECT ref FROM receipts WHERE receiver = ? AND incident = ?",
                           (receiver, incident))
        return json.loads(found[0][0]) if found else None

    def pending_of(self, incident: str) -> list[tuple[str, str, str]]:
        """Return an incident's rows not yet delivered: (receiver, action, message)."""
        return self._read("SELECT receiver, action, message FROM outbox WHERE "
                          "incident = ? AND state = 'pending' ORDER BY id", (incident,))

    def receipts_of(self, incident: str) -> dict[str, dict[str, Any]]:
        """Return what each receiver answered to an incident's trigger."""
        found = self._read("SELECT receiver, ref FROM receipts WHERE incident = ?",
                           (incident,))
        return {receiver: json.loads(ref) for receiver, ref in found}

    def take_over(self, incident: str, shard: int, pending: Iterable[tuple[str, str, str]],
                  receipts: Mapping[str, Mapping[str, Any]], now: float) -> None:
        """Queue what a shard's former owner had not yet delivered of an incident, and
        keep what its receivers answered to the trigger."""
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO outbox (receiver, incident, action, message, shard, created_at, "
                "next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r, incident, a, m, shard, now, now) for r, a, m in pending])
            db.executemany("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)",
                           [(r, incident, json.dumps(ref)) for r, ref in receipts.items()])
        self._write(work)

    def hand_over(self, shards: Iterable[int] | None = None) -> int:
        """Give up the undelivered rows of ``shards`` (None: of every shard): their new
        owner sends them. Return how many."""
        query = "UPDATE outbox SET state = 'handed' WHERE state = 'pending' AND "
        handed = [0]

        def work(db: sqlite3.Connection) -> None:
            handed[0] = (db.execute(query + "shard IS NOT NULL") if shards is None else
                         db.executemany(query + "shard = ?", [(s,) for s in shards])).rowcount
        self._write(work)
        return handed[0]

    def pending(self) -> dict[str, tuple[int, float]]:
        """Return receiver -> (pending rows, creation time of the oldest)."""
        rows = self._read("SELECT receiver, count(*), min(created_at) FROM outbox "
                          "WHERE state = 'pending' GROUP BY receiver")
        return {r: (n, oldest) for r, n, oldest in rows}

    def rows(self) -> list[tuple[str, str, str, str, int]]:
        """Return every row as (receiver, incident, action, state, attempts), oldest first."""
        return self._read("SELECT receiver, incident, action, state, attempts "
                          "FROM outbox ORDER BY id")

    # silences made through the API --------------------------------------------------------
    def save_silence(self, silence_id: str, body: str, changes: int = 0) -> None:
        """Keep a silence made through the API, as the ``changes``-th change of them."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO silences VALUES (?, ?)", (silence_id, body))
            _count_changes(db, changes)
        self._write(work)

    def drop_silence(self, silence_id: str, changes: int = 0) -> bool:
        """Delete a silence, as the ``changes``-th change; say whether it existed."""
        def work(db: sqlite3.Connection) -> bool:
            _count_changes(db, changes)
            return db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount > 0
        return self._write(work)

    def replace_silences(self, silences: dict[str, str], changes: int) -> None:
        """Make the silences these (from a newer copy), as of ``changes`` changes."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM silences")
            db.executemany("INSERT INTO silences VALUES (?, ?)", silences.items())
            _count_changes(db, changes)
        self._write(work)

    def silences(self) -> dict[str, str]:
        """Return the silences made through the API: id -> JSON body."""
        return dict(self._read("SELECT id, body FROM silences"))

    def silence_changes(self) -> int:
        """How many changes of the silences this file holds (0 before the first)."""
        rows = self._read("SELECT value FROM meta WHERE key = 'silence_changes'")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        """Close the database."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


def _file_trouble(exc: sqlite3.DatabaseError) -> bool:
    """Whether the file is at fault (I/O, locks, a full disk, a damaged or foreign file),
    not the statement (a constraint, a bug)."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def _count_changes(db: sqlite3.Connection, changes: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta VALUES ('silence_changes', ?)", (changes,))


def _salvage(damaged: sqlite3.Connection, memory: sqlite3.Connection) -> str:
    """Copy what each table of a damaged file still gives into ``memory``; say what."""
    kept = []
    for table in ("incidents", "receipts", "silences", "meta", "outbox"):
        try:
            rows = damaged.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
        except sqlite3.DatabaseError:
            continue
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            memory.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)  # noqa: S608
        kept.append(table)
    return (f"what its {', '.join(kept)} tables still held" if kept
            else "nothing it held: no table could be read")
