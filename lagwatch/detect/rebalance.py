"""Rebalance churn per group, counted exactly from the coordinator's own records when they
can be read, and as a lower bound from describe polls when they cannot (pure).

A classic group's rebalance is a new generation (a GroupMetadata record). A
consumer-protocol (KIP-848) group's is a new group epoch (a ConsumerGroupMetadata record);
the coordinator writes a joining member's metadata, or a leaving member's tombstone, just
before the epoch it causes, so member changes are gathered until the next epoch.

Counting and judging differ. The counter counts every generation. The finding counts
episodes: rebalances a few seconds apart are one (a client's join-then-rejoin at start, a
member leaving and the group settling), and only churn is flagged: several episodes of
flapping membership or of the same members rebalancing, never a start, a stop, a scale
up or down, or a deploy that restarts each member once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lagwatch.detect.findings import Finding
from lagwatch.model import GroupSnapshot
from lagwatch.records import GroupMetadata, GroupRecord, MemberMetadata
from lagwatch.status import Severity
from lagwatch.text import plural

_REBALANCING_STATES = {"PreparingRebalance", "CompletingRebalance", "Assigning",
                       "Reconciling"}


Change = tuple[str, str]
"""A member that joined or left: (member id, client as ``client_id@host``)."""


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Rebalances that completed at ``at`` (``count`` > 1 when several were folded)."""

    at: float
    count: int
    joined: tuple[Change, ...]
    left: tuple[Change, ...]
    size: int = 0  # members after it




@dataclass(frozen=True, slots=True)
class ChurnSettings:
    """When churn becomes a finding."""

    window_s: float = 1800.0
    max_per_hour: float = 6.0
    max_rebalancing_share: float = 0.2
    # A group watched only briefly is judged as if the rest of this much (and of this many
    # polls) was calm: one rebalance in lagwatch's first minute is not 60 an hour, and a
    # group that the first polls catch mid-rebalance has not spent its time rebalancing.
    min_span_s: float = 600.0
    min_polls: int = 10
    episode_gap_s: float = 15.0  # rebalances closer than this are one episode
    min_episodes: int = 3  # fewer episodes in the window are never churn


@dataclass(frozen=True, slots=True)
class Churn:
    """A group's rebalances over the window."""

    total: int
    in_window: int
    per_hour: float
    rebalancing_share: float
    joined: int
    left: int
    cause: str | None
    exact: bool
    episodes: int = 0  # in the window
    episodes_per_hour: float = 0.0
    churn: bool = False  # whether the cause is churn rather than a deploy or scaling


@dataclass
class _Group:
    generation: int | None = None  # a classic group's generation, or a group epoch
    members: dict[str, str] | None = None  # member id -> client (id@host), at that generation
    roster: dict[str, str] | None = None  # a consumer-protocol group's members since then
    polled_epoch: int | None = None  # the epoch polls showed before the first record
    events: deque[Rebalance] = field(default_factory=deque)
    total: int = 0
    polls: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, rebalancing)

    def current(self) -> dict[str, str]:
        """The members now: the roster of changes since the last generation, or its members."""
        return self.roster if self.roster is not None else dict(self.members or {})


class RebalanceTracker:
    """Counts each group's rebalances; exact from group records, else a lower bound."""

    def __init__(self, settings: ChurnSettings) -> None:
        self.settings = settings
        self.exact = False
        self._polled = False  # whether a poll has listed the groups yet
        self._groups: dict[str, _Group] = {}

    def observe_record(self, record: GroupRecord, at: float) -> None:
        """A group record: each new generation or group epoch is a completed rebalance."""
        self.exact = True
        g = self._groups.setdefault(record.group, _Group())
        if isinstance(record, MemberMetadata):
            g.roster = roster = g.current()
            if record.client_id is None:
                roster.pop(record.member_id, None)
            else:
                roster[record.member_id] = f"{record.client_id}@{record.client_host}"
            return
        generation = (record.generation if isinstance(record, GroupMetadata)
                      else record.epoch)
        if generation is None:  # tombstone: the group was deleted
            self._groups.pop(record.group, None)
            return
        members = _clients(record) if isinstance(record, GroupMetadata) else g.current()
        if g.generation is not None and generation > g.generation:
            self._add(g, at, generation - g.generation, members)
        elif g.generation is None and (g.polls or self._polled):
            # The reader starts at the end of the topic, so a first record is new. A group
            # polls showed before it went through one rebalance since (classic groups: a
            # poll does not tell the generation); a group no poll has listed is new, and
            # went through them all.
            # A consumer-protocol group's poll tells its epoch: the count is exact.
            since = g.polled_epoch
            count = generation - since if since is not None else 1 if g.polls else generation
            if count > 0:
                self._add(g, at, count, members)
        g.generation = generation
        g.members, g.roster = members, None

    def observe_poll(self, group: GroupSnapshot, at: float) -> None:
        """A describe_groups view: state for the rebalancing share; member changes counted
        as rebalances when no records are read (at least one per change: a lower bound)."""
        self._polled = True
        g = self._groups.setdefault(group.group_id, _Group())
        g.polls.append((at, group.state in _REBALANCING_STATES))
        if g.generation is None and group.epoch is not None:
            g.polled_epoch = group.epoch
        if group.members is None:
            return
        members = {m.member_id: f"{m.client_id}@{m.client_host}" for m in group.members}
        if not self.exact and g.members is not None and members.keys() != g.members.keys():
            self._add(g, at, 1, members)
        if not self.exact or g.members is None:
            # in exact mode, the first poll names the members that joined before lagwatch
            # started reading, so their leaving is told by client, not by a bare member id
            g.members = members

    def _add(self, g: _Group, at: float, count: int, members: dict[str, str]) -> None:
        before = g.members or {}
        joined = tuple(sorted((m, members[m]) for m in members.keys() - before.keys()))
        left = tuple(sorted((m, before[m]) for m in before.keys() - members.keys()))
        g.events.append(Rebalance(at, count, joined, left, len(members)))
        g.total += count

    def churn(self, group_id: str, now: float) -> Churn | None:
        """Return a group's churn over the window, or None for a group never seen."""
        g = self._groups.get(group_id)
        if g is None:
            return None
        cutoff = now - self.settings.window_s
        while g.events and g.events[0].at < cutoff:
            g.events.popleft()
        while g.polls and g.polls[0][0] < cutoff:
            g.polls.popleft()
        in_window = sum(e.count for e in g.events)
        s = self.settings
        watched = now - g.polls[0][0] if g.polls else s.window_s
        span = min(max(watched, s.min_span_s), s.window_s)
        share = sum(busy for _, busy in g.polls) / max(len(g.polls), s.min_polls)
        if 0 < watched < span:  # the polls lagwatch would have made over the span were calm
            share *= watched / span
        joined = sum(len(e.joined) for e in g.events)
        left = sum(len(e.left) for e in g.events)
        episodes = len(episodes_of(list(g.events), s.episode_gap_s))
        largest = max((e.size for e in g.events), default=0)
        cause, churn = likely_cause(list(g.events), max(largest, len(g.current())))
        return Churn(g.total, in_window, in_window * 3600.0 / span, share, joined, left,
                     cause, self.exact, episodes, episodes * 3600.0 / span, churn)

    def forget(self, present: set[str]) -> None:
        """Drop groups that no longer exist."""
        for group_id in list(self._groups):
            if group_id not in present:
                del self._groups[group_id]


def _clients(record: GroupMetadata) -> dict[str, str]:
    return {m.member_id: f"{m.client_id}@{m.client_host}" for m in record.members}


def episodes_of(events: list[Rebalance], gap_s: float) -> list[list[Rebalance]]:
    """Group rebalances into episodes: each holds the rebalances within ``gap_s`` of its
    first, so a join-then-rejoin is one, and churn that never pauses is still many."""
    episodes: list[list[Rebalance]] = []
    for e in events:
        if episodes and e.at - episodes[-1][0].at <= gap_s:
            episodes[-1].append(e)
        else:
            episodes.append([e])
    return episodes


def flaps(events: list[Rebalance]) -> int:
    """Count members that came back and left again: a member that joined after a member
    of the same client left, and then left itself.

    A restart or a rolling deploy brings each client back once and the new member stays;
    a crash loop, or a client that joins and leaves over and over, leaves again.
    """
    gone: set[str] = set()  # clients with a member that left
    back: set[str] = set()  # member ids that joined after their client left
    count = 0
    for e in events:
        for member_id, client in e.left:
            count += member_id in back
            gone.add(client)
        back |= {member_id for member_id, client in e.joined if client in gone}
    return count


def likely_cause(events: list[Rebalance], members: int) -> tuple[str | None, bool]:
    """Name what the window's rebalances most look like, and whether that is churn.

    ``members`` is the group's largest size over the window (or now). A start, a deploy
    or a scaling event takes each member away at most once, and the members that come
    back stay: a member that came back and left again, or more leaves than the group ever
    had members, with members joining as well, is flapping. (The largest size, not the
    current one, so a verdict does not flip each time a flapping member is present.)
    """
    if not events:
        return None, False
    joined = sum(len(e.joined) for e in events)
    left = sum(len(e.left) for e in events)
    hosts_left = {c.rpartition("@")[2] for e in events for _, c in e.left}
    hosts_joined = {c.rpartition("@")[2] for e in events for _, c in e.joined}
    if not joined and not left:
        return "rebalances with the same members (session timeouts or slow polls)", True
    if joined and (left > max(members, 1) or flaps(events)):
        return "flapping membership (members joined and left repeatedly)", True
    if joined and left:
        if hosts_left <= hosts_joined:
            return "rolling restart (members left and came back from the same hosts)", False
        return "members replaced (some left, others joined from other hosts)", False
    if joined:
        return "scale up (members joined)", False
    return "scale down (members left: shut down or timed out)", False


def churn_finding(churn: Churn, s: ChurnSettings) -> Finding | None:
    """Churn episode after episode, or spending too much of the window rebalancing."""
    too_often = (churn.churn and churn.episodes >= s.min_episodes
                 and churn.episodes_per_hour > s.max_per_hour)
    too_long = churn.rebalancing_share > s.max_rebalancing_share
    if not (too_often or too_long):
        return None
    bound = "" if churn.exact else "at least "
    cause = f"; likely cause: {churn.cause}" if churn.cause else ""
    lower = "" if churn.exact else " (counted from polls: lower bounds)"
    return Finding("rebalancing", Severity.WARNING,
                   f"{bound}{plural(churn.in_window, 'rebalance')} in "
                   f"{plural(churn.episodes, 'episode')} in the window "
                   f"({churn.episodes_per_hour:.1f} episodes/h), "
                   f"{churn.rebalancing_share:.0%} of polls caught it rebalancing; "
                   f"{churn.joined} joined, {churn.left} left{cause}{lower}")
