"""Findings beyond lag: skew and cluster health, as small named rules (pure, no I/O).

A finding is {kind, severity, reason}. A group keeps its lag status and gains findings; its
overall severity is the worst of both. Clusters get findings of their own.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lagwatch.detect.rules import Assessment
from lagwatch.model import (
    ClusterMeta,
    GroupSnapshot,
    LogOffsets,
    OpenTransaction,
    Retention,
    TopicPartition,
)
from lagwatch.status import Severity
from lagwatch.text import fmt_duration, plural


@dataclass(frozen=True, slots=True)
class Finding:
    """Something wrong (or worth knowing) beyond the lag status."""

    kind: str
    severity: Severity
    reason: str
    subject: str = ""  # what a cluster finding is about (a topic, a log dir); "" for all


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """Knobs for the finding rules (the ``health`` config section)."""

    lag_skew_share: float = 0.8
    lag_skew_min_messages: int = 100
    hot_partition_ratio: float = 2.0
    hot_partition_min_rate: float = 1.0
    expected_brokers: int | None = None
    memory_s: float = 1800.0  # how long a vanished broker or a controller move is remembered
    disk_horizon_s: float = 6 * 3600.0  # log_dir_filling: disk full within this


@dataclass(slots=True)
class HealthMemory:
    """What the cluster rules remember between polls."""

    controller_id: int | None = None
    controller_changed_at: float | None = None
    controller_change: tuple[int, int] | None = None
    controller_changes: int = 0
    brokers_seen: dict[int, float] = field(default_factory=dict)  # node id -> last seen
    log_dir_sizes: dict[tuple[int, str], deque[tuple[float, int]]] = field(
        default_factory=dict)  # (broker, path) -> (time, bytes) over the memory window
    blind_since: float | None = None  # since when some group cannot be judged

    def log_dir_growth(self) -> dict[tuple[int, str], float]:
        """Bytes per second each log dir grew over the window (two samples or more)."""
        growth = {}
        for key, samples in self.log_dir_sizes.items():
            if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
                (t0, b0), (t1, b1) = samples[0], samples[-1]
                growth[key] = (b1 - b0) / (t1 - t0)
        return growth


def lag_skew(topic: str, lags: Mapping[int, int], s: HealthSettings) -> Finding | None:
    """One partition holds most of a group's lag on a topic: a poison pill or a hot key."""
    known = {p: lag for p, lag in lags.items() if lag is not None}
    total = sum(known.values())
    if len(known) < 2 or total < s.lag_skew_min_messages:
        return None
    hot, hot_lag = max(known.items(), key=lambda item: (item[1], -item[0]))
    share = hot_lag / total
    if share < s.lag_skew_share:
        return None
    siblings = max(lag for p, lag in known.items() if p != hot)
    return Finding("skewed", Severity.WARNING,
                   f"{topic}[{hot}] holds {share:.0%} of the lag on {topic} ({hot_lag:,} of "
                   f"{total:,} messages); its {len(known) - 1} sibling partitions hold at most "
                   f"{siblings:,} each")


def assignment_skew(group: GroupSnapshot) -> Finding | None:
    """Members with no partitions (more members than partitions), or a lopsided share."""
    if not group.members or len(group.members) < 2:
        return None
    counts = {m.member_id: len(m.assignment) for m in group.members}
    idle = [m for m in group.members if not m.assignment]
    assigned = len({tp for m in group.members for tp in m.assignment})
    if idle:
        who = ", ".join(f"{m.client_id} on {m.client_host}" for m in idle[:5])
        more = f" and {len(idle) - 5} more" if len(idle) > 5 else ""
        return Finding("skewed", Severity.NONE,
                       f"{len(idle)} of {len(counts)} members have no partitions ({who}{more}); "
                       f"the group has {len(counts)} members for {assigned} partitions")
    most, least = max(counts.values()), min(counts.values())
    if most >= 2 * least and most - least >= 2:
        return Finding("skewed", Severity.NONE,
                       f"partitions per member range from {least} to {most} across "
                       f"{len(counts)} members")
    return None


def hot_partitions(rates: Mapping[TopicPartition, float], s: HealthSettings
                   ) -> list[Finding]:
    """Per topic, one partition takes a disproportionate share of the produce traffic."""
    by_topic: dict[str, dict[int, float]] = defaultdict(dict)
    for (topic, partition), rate in rates.items():
        by_topic[topic][partition] = rate
    found = []
    for topic, per_partition in sorted(by_topic.items()):
        ratio, hot, share = produce_skew(per_partition)
        total = sum(per_partition.values())
        needed = min(0.8, s.hot_partition_ratio / len(per_partition))
        if len(per_partition) >= 2 and total >= s.hot_partition_min_rate and share >= needed:
            found.append(Finding(
                "skewed", Severity.WARNING,
                f"topic {topic}: partition {hot} takes {share:.0%} of the traffic "
                f"({per_partition[hot]:,.1f} of {total:,.1f} msg/s), {ratio:.1f}x the mean "
                f"over {len(per_partition)} partitions", subject=topic))
    return found


def produce_skew(per_partition: Mapping[int, float]) -> tuple[float, int, float]:
    """Return (max/mean ratio, hottest partition, its share) of a topic's produce rates."""
    total = sum(per_partition.values())
    hot = max(per_partition, key=lambda p: (per_partition[p], -p))
    if total <= 0:
        return 1.0, hot, 0.0
    mean = total / len(per_partition)
    return per_partition[hot] / mean, hot, per_partition[hot] / total


def cluster_health(meta: ClusterMeta, memory: HealthMemory, s: HealthSettings,
                   now: float) -> list[Finding]:
    """Missing brokers, offline and under-replicated partitions, controller moves."""
    found = []
    memory.brokers_seen.update(dict.fromkeys(meta.brokers, now))
    memory.brokers_seen = {b: t for b, t in memory.brokers_seen.items()
                           if now - t <= s.memory_s}
    expected = s.expected_brokers or len(memory.brokers_seen)
    missing = sorted(set(memory.brokers_seen) - set(meta.brokers))
    if len(meta.brokers) < expected:
        gone = f" (missing: {', '.join(map(str, missing))})" if missing else ""
        found.append(Finding("brokers_missing", Severity.CRITICAL,
                             f"{len(meta.brokers)} of {expected} brokers are registered{gone}"))
    if meta.offline:
        verb = "has" if len(meta.offline) == 1 else "have"
        found.append(Finding("offline_partitions", Severity.CRITICAL,
                             f"{plural(len(meta.offline), 'partition')} {verb} no leader: "
                             + _tps(meta.offline)))
    if meta.under_min_isr:
        verb = "has" if len(meta.under_min_isr) == 1 else "have"
        found.append(Finding("under_min_isr", Severity.CRITICAL,
                             f"{plural(len(meta.under_min_isr), 'partition')} {verb} fewer "
                             f"in-sync replicas than min.insync.replicas (acks=all writes "
                             f"fail): " + _tps(meta.under_min_isr)))
    if meta.under_replicated:
        verb = "is" if len(meta.under_replicated) == 1 else "are"
        found.append(Finding("under_replicated", Severity.WARNING,
                             f"{plural(len(meta.under_replicated), 'partition')} {verb} "
                             f"under-replicated: " + _tps(meta.under_replicated)))
    found += _log_dir_findings(meta, memory, s, now)
    _track_controller(meta, memory, now)
    if (memory.controller_change is not None and memory.controller_changed_at is not None
            and now - memory.controller_changed_at <= s.memory_s):
        before, after = memory.controller_change
        found.append(Finding("controller_changed", Severity.WARNING,
                             f"the controller moved from node {before} to node {after} "
                             f"{now - memory.controller_changed_at:.0f}s ago "
                             f"({plural(memory.controller_changes, 'move')} seen)"))
    return found


def blind_groups(groups: Mapping[str, GroupSnapshot], memory: HealthMemory,
                 critical_after_s: float, now: float) -> Finding | None:
    """Groups lagwatch cannot judge, because what it needs could not be read or decoded:
    a warning, critical once it lasts ``critical_after_s`` or covers every judged group."""
    judged = [g for g in groups.values() if g.judged]
    blind = [g for g in judged if g.blind]
    if not blind:
        memory.blind_since = None
        return None
    if memory.blind_since is None:
        memory.blind_since = now
    by_cause: dict[str, list[str]] = defaultdict(list)
    for g in blind:
        for cause in g.blind:
            by_cause[cause].append(g.group_id)
    lasted = now - memory.blind_since
    critical = lasted >= critical_after_s or len(blind) == len(judged)
    causes = "; ".join(f"{_names(gids)}: {cause}" for cause, gids in sorted(
        by_cause.items(), key=lambda item: (-len(item[1]), item[0]))[:3])
    more = f"; and {len(by_cause) - 3} more causes" if len(by_cause) > 3 else ""
    since = f", for {fmt_duration(lasted)}" if lasted >= 1 else ""
    return Finding("blind", Severity.CRITICAL if critical else Severity.WARNING,
                   f"lagwatch cannot judge {len(blind)} of {plural(len(judged), 'group')}"
                   f"{since} (status unknown): {causes}{more}")


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(sorted(names)[:most])
    return f"{shown} and {len(names) - most} more" if len(names) > most else shown


def _log_dir_findings(meta: ClusterMeta, memory: HealthMemory, s: HealthSettings,
                      now: float) -> list[Finding]:
    """Log dirs that failed, or whose disk fills up within the horizon at today's growth."""
    found = []
    for d in meta.log_dirs:
        samples = memory.log_dir_sizes.setdefault((d.broker, d.path), deque())
        samples.append((now, d.size_bytes))
        while samples and samples[0][0] < now - s.memory_s:
            samples.popleft()
        if d.error:
            found.append(Finding("log_dir_offline", Severity.CRITICAL,
                                 f"broker {d.broker} log dir {d.path} is offline ({d.error})",
                                 subject=f"broker {d.broker}:{d.path}"))
    growth = memory.log_dir_growth()
    for d in meta.log_dirs:
        rate = growth.get((d.broker, d.path), 0.0)
        if d.usable_bytes is not None and rate > 0 and d.usable_bytes / rate <= s.disk_horizon_s:
            found.append(Finding(
                "log_dir_filling", Severity.WARNING,
                f"broker {d.broker} log dir {d.path} grows {rate / 1e6:,.2f} MB/s; its "
                f"{d.usable_bytes / 1e9:,.1f} GB free fill up in "
                f"{fmt_duration(d.usable_bytes / rate)}", subject=f"broker {d.broker}:{d.path}"))
    return found


def _track_controller(meta: ClusterMeta, memory: HealthMemory, now: float) -> None:
    if meta.controller_id is None:
        return
    if memory.controller_id is not None and meta.controller_id != memory.controller_id:
        memory.controller_change = (memory.controller_id, meta.controller_id)
        memory.controller_changed_at = now
        memory.controller_changes += 1
    memory.controller_id = meta.controller_id


def _tps(tps: Iterable[TopicPartition], most: int = 5) -> str:
    listed = list(tps)
    text = ", ".join(f"{t}[{p}]" for t, p in listed[:most])
    return text + (f" and {len(listed) - most:,} more" if len(listed) > most else "")


def group_findings(group: GroupSnapshot, assessed: Mapping[TopicPartition, Assessment],
                   s: HealthSettings) -> tuple[Finding, ...]:
    """Every finding about one group: lag skew per topic, then assignment skew."""
    lags: dict[str, dict[int, int]] = defaultdict(dict)
    for (topic, partition), a in assessed.items():
        if a.lag_messages is not None:
            lags[topic][partition] = a.lag_messages
    found = [f for topic, per in sorted(lags.items()) if (f := lag_skew(topic, per, s))]
    if (assignment := assignment_skew(group)) is not None:
        found.append(assignment)
    return tuple(found)


DEFAULT_TRANSACTION_MAX_TIMEOUT_S = 900.0  # the brokers' transaction.max.timeout.ms default


def hanging_transactions(offsets: Mapping[TopicPartition, LogOffsets],
                         held_since: Mapping[TopicPartition, float],
                         transactions: Mapping[TopicPartition, OpenTransaction],
                         waiting: Mapping[TopicPartition, list[str]], *, after_s: float,
                         timeout_s: float | None, now: float) -> list[Finding]:
    """A transaction left open holds the last stable offset still: read_committed
    consumers wait behind it however healthy they are. Warning once it has stood
    ``after_s``; critical past ``transaction.max.timeout.ms``, when the transaction
    coordinator should long have aborted it.
    """
    limit = timeout_s or DEFAULT_TRANSACTION_MAX_TIMEOUT_S
    found = []
    for tp, since in sorted(held_since.items()):
        lo, held = offsets[tp], now - since
        if held < after_s or lo.last_stable is None:
            continue
        where = f"{tp[0]}[{tp[1]}]"
        txn = transactions.get(tp)
        who = (f"; transactional id {txn.transactional_id!r} (producer id {txn.producer_id})"
               if txn is not None and txn.transactional_id else
               f"; producer id {txn.producer_id}" if txn is not None else "")
        groups = waiting.get(tp, [])
        readers = (f"read_committed consumers ({', '.join(groups[:5])}"
                   f"{f' and {len(groups) - 5} more' if len(groups) > 5 else ''}) wait"
                   if groups else "read_committed consumers wait")
        text = (f"{where}: an open transaction has held the last stable offset at "
                f"{lo.last_stable:,} for {fmt_duration(held)}, {lo.log_end - lo.last_stable:,} "
                f"offsets below the high watermark; {readers} behind it{who}")
        severity = Severity.WARNING
        if held > limit:
            severity = Severity.CRITICAL
            text += (f"; that is longer than transaction.max.timeout.ms "
                     f"({fmt_duration(limit)}), so the coordinator did not abort it: "
                     f"abort it with kafka-transactions.sh abort --topic {tp[0]} "
                     f"--partition {tp[1]} --start-offset {lo.last_stable}")
        found.append(Finding("hanging_transaction", severity, text, subject=where))
    return found


def compaction_overtakes(assessed: Mapping[TopicPartition, Assessment],
                         retention: Mapping[str, Retention], floor_s: float
                         ) -> list[Finding]:
    """A reader of a compacted topic is further behind than ``min.compaction.lag.ms``: the
    log cleaner may remove updates before the group reads them, so it silently never sees
    intermediate states. Judged on the exact time lag only (the oldest unread record's own
    timestamp), once the reader is ``floor_s`` behind or compaction already removed
    offsets ahead of it.
    """
    worst: dict[str, tuple[float, TopicPartition, Assessment]] = {}
    for tp, a in assessed.items():
        r = retention.get(tp[0])
        if r is None or not r.compacted or not a.lag_seconds_exact or a.lag_seconds is None:
            continue
        if a.lag_seconds <= r.min_compaction_lag_s or (
                a.lag_seconds < floor_s and not a.compacted_away):
            continue
        if tp[0] not in worst or a.lag_seconds > worst[tp[0]][0]:
            worst[tp[0]] = (a.lag_seconds, tp, a)
    found = []
    for topic, (lag_s, tp, a) in sorted(worst.items()):
        setting = retention[topic].min_compaction_lag_s
        removed = (f"; the cleaner already removed {a.compacted_away:,} of the offsets ahead "
                   f"of it" if a.compacted_away else "")
        found.append(Finding(
            "compaction_overtakes", Severity.WARNING,
            f"{topic}: the oldest unread record is {fmt_duration(lag_s)} old "
            f"({tp[0]}[{tp[1]}]) and min.compaction.lag.ms is {setting * 1000:,.0f} "
            f"({fmt_duration(setting)}): the log cleaner can remove updates before this "
            f"group reads them{removed}; raise min.compaction.lag.ms above the group's worst "
            f"time lag, or fix the consumer", subject=topic))
    return found
