"""Reads that may fail in part (I/O): a batch retried one key at a time, why each key
was not read, and the transactions holding last stable offsets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition as KafkaTP

from lagwatch.kafka.causes import FAILURES, brief
from lagwatch.model import OpenTransaction, PollError, TopicPartition

log = logging.getLogger(__name__)


def open_transactions(admin: Any, held: dict[TopicPartition, int]
                      ) -> dict[TopicPartition, OpenTransaction]:
    """The transaction (producer and transactional id) that starts at each held LSO."""
    producers = admin.describe_producers([KafkaTP(*tp) for tp in sorted(held)])
    found = {(tp.topic, tp.partition): p.producer_id
             for tp, state in producers.items() for p in state.active_producers
             if p.current_transaction_start_offset == held[(tp.topic, tp.partition)]}
    names = {}
    if found:
        listed = admin.list_transactions(producer_id_filters=sorted(set(found.values())))
        names = {t.producer_id: t.transactional_id
                 for per_broker in listed.values() for t in per_broker}
    return {tp: OpenTransaction(pid, held[tp], names.get(pid)) for tp, pid in found.items()}


def failed_keys(errors: list[PollError], stage: str, subject: str, keys: set[str]
            ) -> dict[str, str]:
    """Why each key (a group, a topic) was not read: the poll's error of ``stage`` about
    ``subject key``, or that no broker answered for it."""
    why = {e.subject: e.message for e in errors if e.stage == stage}
    return {k: why.get(f"{subject} {k}", "no broker answered for it") for k in keys}


def batched(keys: list[str], fetch: Callable[[list[str]], dict[str, Any]], stage: str,
             errors: list[PollError], subject: str = "group") -> dict[str, Any]:
    """Fetch all keys in one call; if that fails, fetch them one by one and record failures.

    kafka-python raises for the whole batch when any one key fails, so one bad group or
    topic must not cost the others their data.
    """
    if not keys:
        return {}
    try:
        return dict(fetch(keys))
    except FAILURES as exc:
        log.debug("%s batch of %d failed (%s); retrying one by one", stage, len(keys),
                  brief(exc))
    result: dict[str, Any] = {}
    for key in keys:
        try:
            result.update(fetch([key]))
        except FAILURES as exc:
            errors.append(PollError(stage, f"{subject} {key}", brief(exc)))
    return result


