"""Whether and when a failed delivery is tried again (pure; randomness passed in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lagwatch.alerting.config import RetryConfig

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses that say "not now" rather than "never": everything else 4xx is final."""


class DeliveryError(Exception):
    """A receiver did not accept a message; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str, *, retryable: bool,
                 retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def http_error(status: int, detail: str, retry_after: str | None = None) -> DeliveryError:
    """Classify an HTTP failure by its status code."""
    after = None
    if retry_after is not None:
        try:
            after = max(0.0, float(retry_after))
        except ValueError:
            after = None
    return DeliveryError(f"http_{status}", detail, retryable=status in RETRYABLE_STATUS,
                         retry_after_s=after)


@dataclass(frozen=True, slots=True)
class Decision:
    """Try again at ``at``, or give up (``at`` is None) with the reason why."""

    at: float | None
    why: str = ""


def next_attempt(error: DeliveryError, attempts: int, created_at: float, now: float, *,
                 policy: RetryConfig, rand: Callable[[], float]) -> Decision:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    ``attempts`` counts the failed attempts so far, this one included. A Retry-After from
    the receiver is a floor on the delay.
    """
    if not error.retryable:
        return Decision(None, "not retryable")
    if attempts >= policy.max_attempts:
        return Decision(None, f"gave up after {attempts} attempts")
    ceiling = min(policy.max_delay, policy.initial_delay * 2 ** (attempts - 1))
    delay = max(ceiling * rand(), error.retry_after_s or 0.0, 0.001)
    if now + delay - created_at > policy.max_age:
        return Decision(None, f"gave up after {attempts} attempts: older than max_age")
    return Decision(now + delay)
