"""Assess every watched group-partition of a poll: the entry point of detection."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from lagwatch.detect import rules
from lagwatch.detect.columns import plain_groups
from lagwatch.detect.commits import CommitClocks
from lagwatch.detect.flow import Crew, Flow, Part, crew, is_lagging, starved_wait, topic_flow
from lagwatch.detect.history import History, Window
from lagwatch.detect.rules import Assessment, DetectionSettings, Inputs, Memory, Rates
from lagwatch.model import GroupSnapshot, Snapshot, TopicPartition
from lagwatch.status import Status
from lagwatch.text import fmt_duration, fmt_time, plural

Assessments = dict[str, dict[TopicPartition, Assessment]]
_WORTH_SAYING_S = 7 * 86400.0  # a retention ETA further off than this is noise in a sentence


def assess(snapshot: Snapshot, history: History, settings: DetectionSettings, memory: Memory,
           no_trend: frozenset[str] = frozenset(), *,
           commits: CommitClocks | None = None, columns: bool = True) -> Assessments:
    """Judge every partition of every group in a successful snapshot.

    ``history`` must already hold this snapshot; ``memory`` is updated in place. Topics in
    ``no_trend`` (dead-letter queues) are never judged lagging by trend. ``commits`` holds
    the exact commit times when OffsetCommit records are read. Groups whose verdict is
    plain are assessed all at once (``columns.plain_groups``; ``columns=False`` sends every
    group through the per-partition rules, the reference it is held to).
    """
    now = snapshot.taken_at
    readable = frozenset(topic for topic, _ in snapshot.offsets)
    result: Assessments = {}
    plain = plain_groups(snapshot, history, settings, memory, commits) if columns else {}
    for group_id, group in snapshot.groups.items():
        if group_id in plain:
            result[group_id] = plain[group_id]
            continue
        members = None if group.members is None else len(group.members)
        inputs = [Inputs(group_id, tp, c, snapshot.offsets.get(tp),
                         members, history.committed_window(group_id, tp),
                         history.end_window(tp), snapshot.retention.get(tp[0]), now,
                         judge_trend=tp[0] not in no_trend,
                         commits=commits.facts(group_id, tp) if commits is not None
                         else None, commits_read=commits is not None,
                         unread=None if c is None else snapshot.unread.get((tp, c)),
                         held_since=history.held_since(tp))
                  for tp in group.partitions()
                  if tp[0] in readable  # else deleted or unreadable: a poll error
                  for c in [group.committed.get(tp)]]
        result[group_id] = assess_group(group, inputs, settings, memory, history.span_s())
    _forget_gone(memory, snapshot.groups)
    return result


def assess_group(group: GroupSnapshot, inputs: list[Inputs], s: DetectionSettings, memory: Memory,
                 span_s: float) -> dict[TopicPartition, Assessment]:
    """Judge one group's partitions: numbers first, then each topic's flow, then verdicts."""
    result: dict[TopicPartition, Assessment] = {}
    parts: dict[TopicPartition, Part] = {}
    for x in inputs:
        lag = rules.lag_messages(x.committed, x.log)
        if x.committed is None or x.log is None or lag is None:
            result[x.tp] = Assessment(Status.UNKNOWN, "no committed offset yet"
                                      if x.committed is None else "log offsets unavailable")
            continue
        r = rules.rates(x.committed_w, x.end_w, x.now, x.commits)
        parts[x.tp] = Part(x, lag, r, rules.near_zero(r, x),
                           held=rules.is_held_by_transaction(x.committed, x.log, x.unread))
    by_topic: dict[str, list[Part]] = defaultdict(list)
    for tp, part in parts.items():
        if not part.held:  # it has read all it can: no part of the topic's flow
            by_topic[tp[0]].append(part)
    lagging: dict[str, Flow] = {}
    for topic, members_parts in by_topic.items():
        if not members_parts[0].x.judge_trend or group.members == ():
            continue
        was = (group.group_id, topic) in memory.lagging
        flow = topic_flow(topic, members_parts, s, members_parts[0].x.now, was)
        if is_lagging(flow.trend, was, flow.lag, flow.near_zero, s):
            lagging[topic] = flow
    owner = {tp: m.member_id for m in group.members or () for tp in m.assignment}
    by_owner: dict[str | None, list[Part]] = defaultdict(list)
    for tp, part in parts.items():
        by_owner[owner.get(tp)].append(part)
    crews: dict[str | None, Crew] = {}  # worked out when a partition may stall
    for tp, part in parts.items():
        starved_wait_s = None
        if not part.held and _may_stall(part, s):
            who = owner.get(tp)
            if who not in crews:
                crews[who] = crew(by_owner[who])
            starved_wait_s = starved_wait(part, crews[who], s)
        result[tp] = assess_partition(part, s, memory, span_s, flow=lagging.get(tp[0]),
                                      starved_wait_s=starved_wait_s)
    shown = {tp[0] for tp, a in result.items() if a.status is Status.LAGGING}
    memory.lagging -= {(group.group_id, tp[0]) for tp in parts}
    memory.lagging |= {(group.group_id, t) for t in shown}
    return result


def _may_stall(p: Part, s: DetectionSettings) -> bool:
    """Whether a stall rule could hold, so starvation is worth working out."""
    r = p.rates
    return p.lag > 0 and (r.frozen_s > rules.stall_threshold(r, s)
                          or (r.commits is not None and bool(r.commits.recommits)))


def assess_partition(p: Part, s: DetectionSettings, memory: Memory, span_s: float, *,
                     flow: Flow | None = None,
                     starved_wait_s: float | None = None) -> Assessment:
    """Apply the rules to one group-partition, most concerning first.

    ``flow`` is the partition's topic when the group is lagging on it; ``starved_wait_s``
    is set when the partition's member is busy behind on its other partitions.
    """
    x, lag, r = p.x, p.lag, p.rates
    lag_s, extrapolated, exact = _time_lag(x, r, s)
    retention_eta = rules.retention_eta(lag_s, r, lag, x.members, x.retention)
    lost = _count_loss(x, memory)
    status, reason = _judge(p, lag_s, retention_eta, s=s, span_s=span_s, flow=flow,
                            starved_wait_s=starved_wait_s)
    return Assessment(status, reason, lag_messages=lag, lag_seconds=lag_s,
                      lag_seconds_extrapolated=extrapolated, lag_seconds_exact=exact,
                      readable_messages=_readable(x, lag),
                      compacted_away=rules.compacted_away(x.unread), produce_rate=r.produce,
                      consume_rate=r.consume, catchup_eta_s=_catchup_eta(lag, r, status),
                      retention_eta_s=retention_eta, lost_messages=lost)


def _time_lag(x: Inputs, r: Rates, s: DetectionSettings) -> tuple[float | None, bool, bool]:
    """(time lag, extrapolated, exact): the oldest unread record's own age when it was
    read, else estimated from when the log end passed the committed offset."""
    exact = rules.exact_time_lag(x.unread, x.now)
    if exact is not None:
        return exact, False, True
    lag_s, extrapolated = rules.time_lag(x.committed or 0, x.end_w, x.now, r.produce,
                                         s.max_extrapolation_s)
    return lag_s, extrapolated, False


def _readable(x: Inputs, lag: int) -> int | None:
    """How many of the unread offsets are messages a consumer will be handed, when the
    fetch at the committed offset read all of them."""
    u = x.unread
    if u is None or not u.complete or x.log is None or u.read_to < x.log.log_end:
        return None
    return min(lag, u.readable)


def _unread(x: Inputs, lag: int, adjective: str = "") -> str:
    """Unread offsets in words: messages, unless some hold none a consumer will be handed
    (transaction markers, aborted or open transactions, compacted away)."""
    readable = _readable(x, lag)
    if readable is not None and readable != lag:
        return f"{lag:,} {adjective}offsets ({plural(readable, 'readable message')})"
    if readable is None and x.retention is not None and x.retention.compacted:
        return f"{lag:,} {adjective}offsets"
    return f"{lag:,} {adjective}messages"


def _held_reason(x: Inputs, s: DetectionSettings) -> str | None:
    """Why a group waiting at the last stable offset is ok: an open transaction holds it
    (said once that has lasted ``stall_after``)."""
    assert x.log is not None and x.log.last_stable is not None
    since = rules.held_since(x.held_since, x.unread)
    if since is None or x.now - since < s.stall_after_s:
        return None
    return (f"{x.tp[0]}[{x.tp[1]}]: an open transaction holds back read_committed "
            f"consumers at offset {x.log.last_stable:,} since {fmt_time(since)} "
            f"({fmt_duration(x.now - since)}); the producer, not this consumer, is stuck")


def _judge(p: Part, lag_s: float | None, retention_eta: float | None, *, s: DetectionSettings,
           span_s: float, flow: Flow | None,
           starved_wait_s: float | None) -> tuple[Status, str | None]:
    x, lag, r = p.x, p.lag, p.rates
    where = f"{x.tp[0]}[{x.tp[1]}]"
    assert x.committed is not None and x.log is not None
    if rules.is_data_loss(x.committed, x.log):
        return Status.DATA_LOSS, (f"{where} committed {x.committed:,} but the log starts at "
                                  f"{x.log.log_start:,}")
    if p.held:  # read all it can: neither stopped, stalled, at risk nor lagging
        return Status.OK, _held_reason(x, s)
    if rules.is_stopped(lag, x.members):
        return Status.STOPPED, f"{where} has {_unread(x, lag, 'unread ')} and no consumer"
    if rules.is_stalled(x, lag, r, s, starved_wait_s) or (
            starved_wait_s is None and rules.is_retrying(x, lag, lag_s, r, s)):
        waiting = "" if _arrived_since(x.end_w, r) else "; no new messages arrived either"
        return Status.STALLED, (f"{where} stuck at offset {x.committed:,} for "
                                f"{fmt_duration(r.frozen_s)} with {_unread(x, lag)} "
                                f"waiting{waiting}{_liveness(x, r, s)}")
    rewind = rules.rewind_of(x.committed_w)
    if rewind is not None:
        return Status.REWOUND, _rewind_reason(where, rewind, r)
    if retention_eta is not None and retention_eta <= s.retention_horizon_s:
        return Status.AT_RISK, _risk_reason(where, x, retention_eta, lag_s)
    if flow is not None and lag > p.near_zero and lag * flow.partitions >= 0.1 * flow.lag:
        return Status.LAGGING, _lagging_reason(
            where, lag, flow, retention_eta,
            compacted=x.retention is not None and x.retention.compacted)
    if lag == 0:
        quiet = r.produce == 0 and span_s >= s.min_duration_s
        return (Status.IDLE, None) if quiet else (Status.OK, None)
    if span_s < s.min_duration_s:
        return Status.UNKNOWN, (f"{where} is {lag:,} messages behind; "
                                f"{fmt_duration(span_s)} of history is not enough to judge")
    return Status.OK, None


def _count_loss(x: Inputs, memory: Memory) -> int:
    """Count messages lost to retention once: only what the log start newly passed."""
    key = (x.group, x.tp[0], x.tp[1])
    assert x.committed is not None and x.log is not None
    if not rules.is_data_loss(x.committed, x.log):
        memory.loss_counted_to.pop(key, None)
        return 0
    counted_to = max(x.committed, memory.loss_counted_to.get(key, x.committed))
    lost = max(0, x.log.log_start - counted_to)
    memory.loss_counted_to[key] = max(counted_to, x.log.log_start)
    if lost:
        total_key = (x.group, x.tp[0])
        memory.lost_total[total_key] = memory.lost_total.get(total_key, 0) + lost
    return lost


def _forget_gone(memory: Memory, groups: Mapping[str, GroupSnapshot]) -> None:
    present = set(groups)
    memory.lagging = {k for k in memory.lagging if k[0] in present}
    memory.loss_counted_to = {k: v for k, v in memory.loss_counted_to.items()
                              if k[0] in present}
    memory.lost_total = {k: v for k, v in memory.lost_total.items() if k[0] in present}


def _catchup_eta(lag: int, r: Rates, status: Status) -> float | None:
    if lag == 0:
        return 0.0
    if status in {Status.STALLED, Status.STOPPED}:
        return None  # the window's average rate says nothing of a consumer making none
    if r.consume is None or r.produce is None or r.consume <= r.produce:
        return None
    return lag / (r.consume - r.produce)


def _arrived_since(end_w: Window, r: Rates) -> bool:
    if r.last_change_t is None or not end_w:
        return False
    before = end_w.at(r.last_change_t)
    return before is not None and end_w.values[-1] > before


def _liveness(x: Inputs, r: Rates, s: DetectionSettings) -> str:
    """What the commit records say about a stalled consumer: retrying or silent."""
    if not x.commits_read:
        return ""
    c = r.commits
    if c is not None and c.commits_since_move and x.now - c.last_commit_at <= (
            rules.stall_threshold(r, s)):
        # commit timestamps jitter: a consumer retrying every second may show 0.9 s
        every = ("" if c.commit_interval_s <= 0 else " several times a second"
                 if c.commit_interval_s < 0.5 else f" every {fmt_duration(c.commit_interval_s)}")
        return (f"; it still commits this offset{every}: alive but not getting past it "
                f"(a poison pill or a retry loop)")
    if c is not None:
        return (f"; its last commit was {fmt_duration(x.now - c.last_commit_at)} ago: "
                f"the consumer is hung or blocked")
    return "; no commit seen since lagwatch started: the consumer is hung or blocked"


def _rewind_reason(where: str, rewind: tuple[int, int], r: Rates) -> str:
    before, after = rewind
    size = before - after
    replay = (f"about {fmt_duration(size / r.consume)} at {r.consume:,.1f} msg/s"
              if r.consume else "replay time unknown (no recent consume rate)")
    return (f"{where} moved back from offset {before:,} to {after:,}: {size:,} messages "
            f"will be processed again, {replay}")


def _risk_reason(where: str, x: Inputs, eta: float, lag_s: float | None) -> str:
    assert x.retention is not None and x.retention.retention_s is not None
    age = fmt_duration(lag_s) if lag_s is not None else "unknown"
    when = "now" if eta <= 0 else f"in {fmt_duration(eta)}"
    return (f"{where}: the oldest unread message is {age} old and retention is "
            f"{fmt_duration(x.retention.retention_s)}; at this pace unread messages are "
            f"deleted {when}")


def _lagging_reason(where: str, lag: int, flow: Flow, eta: float | None,
                    compacted: bool = False) -> str:
    slope = flow.trend.trend.slope if flow.trend is not None else 0.0
    if compacted:  # offsets the cleaner removed are skipped, not read
        rates = (f"advancing {flow.consume:,.1f} offsets/s (on a compacted topic, not "
                 f"messages read) while producers write {flow.produce:,.1f} msg/s; lag "
                 f"grows {max(0.0, slope):,.1f} offsets/s")
    else:
        rates = (f"consuming {flow.consume:,.1f} msg/s while producers write "
                 f"{flow.produce:,.1f} msg/s; lag grows {max(0.0, slope):,.1f} msg/s")
    unit = "offsets" if compacted else "messages"
    if flow.partitions == 1:
        text = f"{where} {rates}"
    else:
        text = (f"{where} holds {lag:,} of the {flow.lag:,} {unit} unread on "
                f"{flow.topic}; over its {flow.partitions} partitions the group is {rates}")
    if eta is not None and eta <= _WORTH_SAYING_S:
        text += f"; unread data reaches retention in {fmt_duration(eta)}"
    return text
