"""Numbers in sentences: counts with their nouns, durations as people write them."""

from __future__ import annotations

import time


def plural(n: int, noun: str) -> str:
    """Return "1 partition", "3 partitions"."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def fmt_duration(seconds: float) -> str:
    """Render seconds for people: 45s, 6m 10s, 3h 5m, 2d 4h."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
    return f"{s // 86400}d {s % 86400 // 3600}h" if s % 86400 // 3600 else f"{s // 86400}d"


def fmt_time(epoch_s: float) -> str:
    """Render a moment for people and logs alike: 2026-01-01T06:05:04Z (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
