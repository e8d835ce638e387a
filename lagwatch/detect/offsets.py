"""Rules that judge one group-partition from a single snapshot of its offsets."""

from __future__ import annotations

from lagwatch.model import LogOffsets
from lagwatch.status import Status


def lag_messages(committed: int | None, log: LogOffsets | None) -> int | None:
    """Return log end - committed, clamped at 0; None when either side is unknown."""
    if committed is None or committed < 0 or log is None:
        return None
    return max(0, log.log_end - committed)


def is_data_loss(committed: int, log: LogOffsets) -> bool:
    """Retention (or delete_records) removed messages the group had not read yet."""
    return committed < log.log_start


def is_stopped(lag: int, members: int | None) -> bool:
    """Nobody is consuming, yet messages wait: a crashed or scaled-to-zero consumer."""
    return members == 0 and lag > 0


def judge(committed: int | None, log: LogOffsets | None, members: int | None) -> Status:
    """Return the status one snapshot supports for a group-partition."""
    lag = lag_messages(committed, log)
    if committed is None or log is None or lag is None:
        return Status.UNKNOWN  # no commit or no log offsets: never invent a lag
    if is_data_loss(committed, log):
        return Status.DATA_LOSS
    if lag == 0:
        return Status.OK
    if is_stopped(lag, members):
        return Status.STOPPED
    return Status.UNKNOWN  # members (or unknown members) and some lag: only a trend can tell
