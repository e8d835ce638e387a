"""A baseline: Burrow's partition evaluation rules, ported from their public description.

Burrow keeps, per group-partition, the last 10 commits (offset, time, lag when received)
and evaluates them in this order:

1. no commits in the window: unknown;
2. an offset lower than the one before it: REWIND;
3. the time since the newest commit exceeds the time the window spans: STOP;
4. some lag in the window is zero: OK;
5. the offset never changed and the lag never decreased: STALL;
6. the lag never decreased across the window: WARN;
7. otherwise OK.

Only commits up to ``now`` are considered; the baseline gets the exact commit stream it
would read from __consumer_offsets (an advantage over a poller).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise

WINDOW = 10


@dataclass
class BurrowPartition:
    """The commit window of one group-partition."""

    commits: deque[tuple[float, int, int]] = field(
        default_factory=lambda: deque(maxlen=WINDOW))

    def add(self, t: float, offset: int, log_end: int) -> None:
        """Record a commit and the lag at the moment it arrived."""
        self.commits.append((t, offset, max(0, log_end - offset)))

    def evaluate(self, now: float, current_lag: int) -> str:
        """Return OK, WARN, STALL, STOP, REWIND or unknown."""
        window = list(self.commits)
        if not window:
            return "unknown"
        offsets = [c[1] for c in window]
        lags = [c[2] for c in window]
        if any(b < a for a, b in pairwise(offsets)):
            return "REWIND"
        span = window[-1][0] - window[0][0]
        if current_lag > 0 and now - window[-1][0] > span:
            return "STOP"
        if any(lag == 0 for lag in lags):
            return "OK"
        never_decreasing = all(b >= a for a, b in pairwise(lags))
        if offsets[0] == offsets[-1] and never_decreasing:
            return "STALL"
        if never_decreasing and len(window) == WINDOW:
            return "WARN"
        return "OK"
