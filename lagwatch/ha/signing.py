"""The state topic's seal (pure): every value a replica writes is signed with a key the
replicas share, so that a record anyone else wrote is refused before it is read.

A signed value is one line of header, then the payload::

    LW1 <key id> <written at, ms> <HMAC-SHA256, hex> <writer>\\n<payload>

The HMAC covers the topic, the shard (partition), the record's key, the key id, the time,
the writer and the payload, each length-prefixed: a value moved to another shard, key or
topic no longer verifies. The key id is the first 8 hex digits of the key's SHA-256, so
that a reader holding several keys (a rotation under way) knows which one to check with.

The keys come from ``ha.key_file``, one per line: the first signs, every one verifies.
Rotating without downtime: add the new key as the second line on every replica (a rolling
restart), then make it the first (another), then drop the old one (a third).

A tombstone (no value) cannot be signed: replicas write a signed deletion before it, and
readers ignore a tombstone of a record they still hold (ha.statelog).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

MAGIC = b"LW1"
MIN_KEY_CHARS = 32
MAX_KEYS = 8
MAX_HEADER = 512  # bytes: the header line, writer name included
MAX_WRITER = 200  # characters of a writer's name (ha.replica's limit)


class SealError(ValueError):
    """A value that is not signed with a key this replica holds; the message says why."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A value whose signature verified: who wrote it, when (ms), and its payload."""

    writer: str
    at_ms: int
    payload: bytes


def key_id(key: bytes) -> str:
    """The id a value names its key by."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(text: str) -> list[bytes]:
    """The keys of a key file's text, first the one that signs; raises ValueError naming
    what is wrong (never the key)."""
    keys = [line.strip().encode() for line in text.splitlines() if line.strip()]
    if not keys:
        raise ValueError("holds no key: write one key of at least "
                         f"{MIN_KEY_CHARS} characters per line")
    if len(keys) > MAX_KEYS:
        raise ValueError(f"holds {len(keys)} keys; at most {MAX_KEYS}")
    for line, key in enumerate(keys, 1):
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(f"key {line} is {len(key)} characters; at least "
                             f"{MIN_KEY_CHARS} (e.g. openssl rand -hex 32)")
    return keys


def _mac(key: bytes, fields: tuple[bytes, ...]) -> str:
    body = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class Seal:
    """Signs and opens the values of one state topic."""

    def __init__(self, keys: list[bytes], topic: str) -> None:
        self.topic = topic.encode()
        self._keys = {key_id(k): k for k in keys}
        self._signing = key_id(keys[0])

    def _fields(self, shard: int, key: bytes, *, kid: str, at_ms: int, writer: bytes,
                payload: bytes) -> tuple[bytes, ...]:
        return (self.topic, str(shard).encode(), key, kid.encode(), str(at_ms).encode(),
                writer, payload)

    def sign(self, shard: int, key: bytes, payload: bytes, writer: str, at_ms: int
             ) -> bytes:
        """The value to write: ``payload`` signed by ``writer`` at ``at_ms``."""
        name = writer.encode()
        mac = _mac(self._keys[self._signing],
                   self._fields(shard, key, kid=self._signing, at_ms=at_ms,
                                        writer=name, payload=payload))
        return b"%s %s %d %s %s\n%s" % (MAGIC, self._signing.encode(), at_ms, mac.encode(),
                                        name, payload)

    def open(self, shard: int, key: bytes, value: bytes) -> Opened:
        """The value's writer, time and payload; SealError when it is not signed with a
        key held here for this shard and key."""
        head, newline, payload = value[:MAX_HEADER].partition(b"\n")
        if not newline or not head.startswith(MAGIC + b" "):
            raise SealError("unsigned")
        parts = head.split(b" ", 4)
        if len(parts) != 5 or not parts[2].isdigit() or len(parts[2]) > 15:
            raise SealError("a malformed signature")
        kid, at, mac = (p.decode("ascii", "replace") for p in parts[1:4])
        writer = parts[4]
        secret = self._keys.get(kid)
        if secret is None:
            raise SealError(f"signed with key {kid[:8]!r}, which is not in ha.key_file")
        payload = value[len(head) + 1:]
        expected = _mac(secret, self._fields(shard, key, kid=kid, at_ms=int(at),
                                                        writer=writer, payload=payload))
        if not hmac.compare_digest(expected, mac):
            raise SealError("a bad signature")
        try:
            name = writer.decode()
        except UnicodeDecodeError:
            raise SealError("a writer name that is not UTF-8") from None
        return Opened(name, int(at), payload)


def claimed_writer(value: bytes | None) -> str:
    """Who a value says wrote it, unverified (for a log line only; bounded)."""
    if value is None or not value.startswith(MAGIC + b" "):
        return "unsigned"
    parts = value[:MAX_HEADER].partition(b"\n")[0].split(b" ", 4)
    name = parts[4].decode("utf-8", "replace") if len(parts) == 5 else "?"
    return name[:MAX_WRITER].encode("unicode_escape").decode()
