"""The collector's batching fallback and error wording, without a broker."""

from __future__ import annotations

from kafka.errors import GroupAuthorizationFailedError, KafkaTimeoutError

from lagwatch.kafka.batches import batched
from lagwatch.kafka.causes import brief
from lagwatch.model import PollError


def test_a_failing_batch_is_retried_one_key_at_a_time_and_only_the_bad_key_is_lost() -> None:
    # Given a fetch that fails whenever the batch holds the forbidden group, as
    # kafka-python does for OffsetFetch
    calls: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, int]:
        calls.append(keys)
        if "secret" in keys:
            raise GroupAuthorizationFailedError("not allowed")
        return {k: len(k) for k in keys}

    errors: list[PollError] = []
    # When
    result = batched(["a", "secret", "ccc"], fetch, "offsets", errors)
    # Then
    assert result == {"a": 1, "ccc": 3}
    assert calls == [["a", "secret", "ccc"], ["a"], ["secret"], ["ccc"]]
    assert errors == [PollError("offsets", "group secret",
                                "GroupAuthorizationFailedError: not allowed")]


def test_a_good_batch_is_one_call() -> None:
    calls: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, int]:
        calls.append(keys)
        return dict.fromkeys(keys, 0)

    assert batched(["x", "y"], fetch, "describe", []) == {"x": 0, "y": 0}
    assert calls == [["x", "y"]]
    assert batched([], fetch, "describe", []) == {}
    assert len(calls) == 1


def test_brief_keeps_exceptions_to_one_short_line() -> None:
    assert brief(KafkaTimeoutError("Unable to bootstrap\n from ['x:1']")) == (
        "KafkaTimeoutError: Unable to bootstrap from ['x:1']")
    assert brief(ValueError()) == "ValueError"
    assert len(brief(ValueError("x" * 500))) == 200
