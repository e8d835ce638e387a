"""Detection quality and cost, against a port of Burrow's rules in the same run.

    .venv/bin/python bench/detection.py            # scenario suite + evaluation cost
    .venv/bin/python bench/detection.py --cost-only --baseline REV   # cost beside REV's

(bench/detection_broker.py runs real clients on a real broker.)

Scenario suite: labelled scenarios simulated in virtual time over hours at 15 s polls. For
each, the time from onset to detection and the number of false alarms (polls with an
alarm that the scenario does not call for), for lagwatch with the commit records of
__consumer_offsets (the default), for lagwatch from polls alone (where that topic cannot
be read), and for the Burrow baseline fed the exact commit stream.

Cost: seconds per poll spent in history and in detection, per group-partition, at
growing sizes, to show it is linear; with ``--baseline REV``, also lagwatch as of that git
revision (extracted by ``git archive``, run in a process of its own) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: a baseline's lagwatch comes first

from bench.baseline import checkout  # noqa: E402
from bench.burrow_rules import BurrowPartition  # noqa: E402
from lagwatch.detect.assess import assess  # noqa: E402
from lagwatch.detect.config import DetectionConfig  # noqa: E402
from lagwatch.detect.history import History  # noqa: E402
from lagwatch.detect.rules import Memory  # noqa: E402
from lagwatch.model import GroupSnapshot, LogOffsets, Member, Snapshot  # noqa: E402
from lagwatch.pipeline import ClusterJudge  # noqa: E402
from lagwatch.simulate import Scenario, bursts, constant, noisy, step  # noqa: E402
from lagwatch.status import SEVERITY, Severity  # noqa: E402

POLL_S = 15.0
HOURS = 3600.0
STUCK = frozenset({"skewed"})  # a stuck partition's lag grows beside its siblings'
BURROW_FOR = {"lagging": {"WARN"}, "stalled": {"STALL", "STOP"}, "stopped": {"STOP"},
              "rewound": {"REWIND"}}


@dataclass
class Case:
    name: str
    make: Callable[[], Scenario]
    duration_s: float
    onset_s: float | None = None
    expect: str | None = None  # lagwatch status that counts as detection
    also: frozenset[str] = frozenset()  # what else it may rightly say once the fault began


def _slow(factor: float, commit_every_s: float = 5.0, partitions: int = 1,
          turn: float | None = None) -> Callable[[], Scenario]:
    return lambda: Scenario(produce=noisy(constant(100), 0.3),
                            capacity=step(400, 100 * factor, 1800),
                            commit_every_s=commit_every_s, partitions=partitions, turn=turn)


CASES = [
    Case("healthy, commits every 5 s, noisy producer",
         lambda: Scenario(produce=noisy(constant(100), 0.5), capacity=constant(130)), 4 * HOURS),
    Case("healthy, bursty producer (4x for 90 s every 6 min)",
         lambda: Scenario(produce=bursts(50, 200, 360, 90), capacity=constant(110)), 4 * HOURS),
    Case("healthy, batch committer every 5 min",
         lambda: Scenario(produce=noisy(constant(100), 0.3), commit_every_s=300), 4 * HOURS),
    Case("healthy, commits every 60 s (saw-tooth)",
         lambda: Scenario(produce=noisy(constant(100), 0.3), capacity=constant(120),
                          commit_every_s=60), 4 * HOURS),
    Case("healthy, idle topic", lambda: Scenario(produce=constant(0)), 4 * HOURS),
    Case("slow 0.8x from 30 min", _slow(0.8), 2 * HOURS, 1800, "lagging"),
    Case("slow 0.5x from 30 min", _slow(0.5), 2 * HOURS, 1800, "lagging"),
    Case("slow 0.8x, commits every 60 s", _slow(0.8, 60), 2 * HOURS, 1800, "lagging"),
    Case("slow 0.9x from 30 min (mild)", _slow(0.9), 2 * HOURS, 1800, "lagging"),
    Case("slow 0.5x, 4 partitions drained in turns of 500", _slow(0.5, partitions=4, turn=500),
         2 * HOURS, 1800, "lagging"),
    Case("slow 0.85x, 4 partitions drained in turns of 500",
         _slow(0.85, partitions=4, turn=500), 2 * HOURS, 1800, "lagging"),
    Case("slow 0.5x, 4 partitions drained in turns of 5,000",
         _slow(0.5, partitions=4, turn=5000), 2 * HOURS, 1800, "lagging"),
    Case("healthy, 4 partitions drained in turns of 2,000",
         lambda: Scenario(produce=noisy(constant(100), 0.3), capacity=constant(130),
                          partitions=4, turn=2000), 4 * HOURS),
    Case("stuck partition from 30 min",
         lambda: Scenario(partitions=3, events={1800.0: lambda s: s.stick(1)}), 2 * HOURS,
         1800, "stalled", STUCK),
    Case("stuck partition, offset re-committed every 5 s",
         lambda: Scenario(partitions=3, events={1800.0: lambda s: s.stick_retrying(1)}),
         2 * HOURS, 1800, "stalled", STUCK),
    Case("1 of 4 partitions stuck, siblings keep up, drained in turns",
         lambda: Scenario(partitions=4, turn=500, events={1800.0: lambda s: s.stick(2)}),
         2 * HOURS, 1800, "stalled", STUCK),
    Case("healthy, client joins twice at start, 3 members",
         lambda: Scenario(produce=noisy(constant(100), 0.3), partitions=3,
                          members=lambda _t: 3, join_twice=True), 4 * HOURS),
    Case("healthy, rolling restart of 3 members at 1 h",
         lambda: Scenario(produce=noisy(constant(100), 0.3), partitions=3,
                          members=lambda _t: 3, join_twice=True,
                          events={3600.0 + 60 * k: lambda s, k=k: s.restart_member(k)
                                  for k in range(3)}), 4 * HOURS),
    Case("a second member joins and leaves every 4 min from 30 min",
         lambda: Scenario(produce=noisy(constant(100), 0.3), partitions=3, join_twice=True,
                          members=lambda t: 2 if t >= 1800 and t % 240 < 120 else 1),
         2 * HOURS, 1800, "rebalancing"),
    Case("consumer stopped at 30 min",
         lambda: Scenario(members=lambda t: 1 if t < 1800 else 0), 2 * HOURS, 1800, "stopped"),
    Case("offsets reset to earliest at 30 min",
         lambda: Scenario(events={1800.0: Scenario.rewind_to_start}), 2 * HOURS, 1800,
         "rewound"),
]


@dataclass
class _Judge:
    """One detector's running score over a case."""

    detected_at: float | None = None
    false_alarms: int = 0
    after: int = 0  # polls from detection on
    held: int = 0  # of those, polls in the expected state
    changes: int = 0  # changes of the alarm raised, from detection on
    _last: bool | None = None

    def score(self, t: float, case: Case, hit: bool, alarm: bool) -> None:
        hit = hit and case.onset_s is not None and t >= case.onset_s
        if hit and self.detected_at is None:
            self.detected_at = t - (case.onset_s or 0)
        self.false_alarms += alarm and not hit
        if self.detected_at is not None:
            self.after += 1
            self.held += hit
            self.changes += self._last is not None and hit != self._last
            self._last = hit

    def held_share(self) -> str:
        return f"{self.held / self.after:.0%}/{self.changes}" if self.after else "-"


def _lagwatch(pipeline: ClusterJudge, snapshot: Snapshot, case: Case, t: float,
              judge: _Judge) -> None:
    verdict = pipeline.ingest(snapshot)
    found = {a.status.value: SEVERITY[a.status]
             for per in (verdict.assessments if verdict else {}).values() for a in per.values()}
    found |= {f.kind: f.severity for per in (verdict.group_findings if verdict else {}).values()
              for f in per}
    onset = case.onset_s is not None and t >= case.onset_s
    judge.score(t, case, case.expect in found,
                any(severity is not Severity.NONE for kind, severity in found.items()
                    if not (onset and kind in case.also)))


def run_case(case: Case, detection: DetectionConfig) -> tuple[_Judge, _Judge, _Judge]:
    """Score lagwatch with commit records, lagwatch from polls, and Burrow on one case."""
    scenario = case.make()
    scenario.exact_commits = True
    exact, polls = ClusterJudge("sim", detection), ClusterJudge("sim", detection)
    judges = (_Judge(), _Judge(), _Judge())
    burrow: dict[int, BurrowPartition] = {}
    seen = 0
    for snapshot in scenario.run(case.duration_s, POLL_S):
        t = snapshot.taken_at - scenario.start
        _lagwatch(exact, snapshot, case, t, judges[0])
        _lagwatch(polls, replace(snapshot, commit_records=(), group_records=(),
                                     records_exact=False), case, t,
                  judges[1])
        for when, partition, offset, log_end in scenario.commits[seen:]:
            burrow.setdefault(partition, BurrowPartition()).add(when, offset, log_end)
        seen = len(scenario.commits)
        group = snapshot.groups[scenario.group]
        baseline = {b.evaluate(t, max(0, snapshot.offsets[(scenario.topic, p)].log_end
                                      - group.committed.get((scenario.topic, p), 0)))
                    for p, b in burrow.items()}
        judges[2].score(t, case, bool(baseline & BURROW_FOR.get(case.expect or "", set())),
                        bool(baseline - {"OK", "unknown"}))
    return judges


def suite(detection: DetectionConfig) -> None:
    print(f"Scenario suite: virtual time, {POLL_S:g} s polls, min_duration "
          f"{detection.min_duration:g} s, stall_after {detection.stall_after:g} s")
    print(f"{'scenario':56} {'lagwatch detects':>16} {'from polls':>10} "
          f"{'Burrow detects':>14} {'false alarms (lagwatch/polls/Burrow)':>36} "
          f"{'held/changes (lagwatch, Burrow)':>31}")
    for case in CASES:
        ours, polls, burrow = run_case(case, detection)
        falses = f"{ours.false_alarms}/{polls.false_alarms}/{burrow.false_alarms}"
        held = f"{ours.held_share()}, {burrow.held_share()}"
        print(f"{case.name:56} {_when(case, ours.detected_at):>16} "
              f"{_when(case, polls.detected_at):>10} {_when(case, burrow.detected_at, True):>14} "
              f"{falses:>36} {held:>31}")


def _when(case: Case, delay_s: object, burrow: bool = False) -> str:
    if case.onset_s is None:
        return "-"
    if burrow and case.expect not in BURROW_FOR:
        return "n/a"  # Burrow has no such status
    return "never" if delay_s is None else f"+{float(delay_s):.0f} s"  # type: ignore[arg-type]


def cost(sizes: list[int], polls: int = 60, baseline: str | None = None) -> None:
    print(f"\nEvaluation cost per poll ({polls} polls of history, 10 partitions per topic, "
          "100 partitions per group)")
    print(f"{'group-partitions':>16} {'history us/gp':>14} {'detect us/gp':>13} "
          f"{'detect s/poll':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        old = checkout(baseline, Path(tmp) / "baseline") if baseline else None
        for size in sizes:
            now = _costs(size, polls, None)
            print(f"{size:>16,} {now[0]:>14.1f} {now[1]:>13.1f} {now[2]:>14.3f}", flush=True)
            if old is not None:
                then = _costs(size, polls, old)
                print(f"{baseline[:16]:>16} {then[0]:>14.1f} {then[1]:>13.1f} "  # type: ignore[index]
                      f"{then[2]:>14.3f}   ({then[1] / now[1]:.1f}x the detection cost)",
                      flush=True)


def _costs(size: int, polls: int, package: Path | None) -> list[float]:
    """History and detection µs per group-partition, and detection s per poll, measured
    in a process of its own (with ``package``, an older lagwatch, first on its path)."""
    env = dict(os.environ, PYTHONPATH=str(package)) if package is not None else None
    done = subprocess.run([sys.executable, __file__, "--one-cost", str(size), "--polls",
                           str(polls)], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: the cost at {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def one_cost(size: int, polls: int) -> list[float]:
    """Measure the evaluation cost at one size in this process."""
    groups = max(1, size // 100)
    topics = [f"t{i}" for i in range(max(1, size // 1000) * 10)]
    history = History(1800.0, 240)
    memory = Memory()
    settings = DetectionConfig().settings()
    observe_s, assess_s = [], []
    for k in range(polls):
        t = 1_790_000_000.0 + 30 * k
        offsets = {(tp, p): LogOffsets(0, 1000 * k + 37 * p) for tp in topics
                   for p in range(10)}
        group_snaps = {}
        for g in range(groups):
            mine = [topics[(g + j) % len(topics)] for j in range(10)]
            slow = g % 7 == 0  # some groups fall behind, so the trend code runs
            committed = {(tp, p): int(offsets[(tp, p)].log_end * (0.8 if slow else 1))
                         - (k * 5 % 50) for tp in mine for p in range(10)}
            group_snaps[f"g{g}"] = GroupSnapshot(
                f"g{g}", "Stable", members=(Member("m", "c", "h"),), committed=committed)
        snapshot = Snapshot("bench", t, 0.0, up=True, groups=group_snaps, offsets=offsets)
        started = time.perf_counter()
        history.observe(snapshot)
        observe_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        assess(snapshot, history, settings, memory)
        assess_s.append(time.perf_counter() - started)
    gp = groups * 100
    tail = polls // 2  # once the windows are full
    return [statistics.median(observe_s[tail:]) / gp * 1e6,
            statistics.median(assess_s[tail:]) / gp * 1e6, statistics.median(assess_s[tail:])]




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000,50000")
    parser.add_argument("--min-duration", help="detection.min_duration (default: config's)")
    parser.add_argument("--stall-after", help="detection.stall_after (default: config's)")
    parser.add_argument("--cost-only", action="store_true", help="skip the scenario suite")
    parser.add_argument("--baseline", help="a git revision whose cost to print beside")
    parser.add_argument("--polls", type=int, default=60, help="polls of history")
    parser.add_argument("--one-cost", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_cost:
        print(json.dumps(one_cost(args.one_cost, args.polls)))
        return
    overrides = {k: v for k, v in (("min_duration", args.min_duration),
                                   ("stall_after", args.stall_after)) if v}
    if not args.cost_only:
        suite(DetectionConfig.model_validate(overrides))
    cost([int(s) for s in args.sizes.split(",")], args.polls, args.baseline)


if __name__ == "__main__":
    main()
