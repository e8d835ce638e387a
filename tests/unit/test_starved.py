"""A partition waiting for its turn while its member drains the others (flow.starved_wait),
from numbers a Java consumer at half the produce rate showed in its first minute."""

from __future__ import annotations

import pytest

from lagwatch.detect.commits import CommitFacts
from lagwatch.detect.flow import Part, crew, starved_wait
from lagwatch.detect.history import Window
from lagwatch.detect.rules import DetectionSettings, Inputs, Rates, is_stalled, rates
from lagwatch.model import LogOffsets

NOW = 1000.0
S = DetectionSettings(window_s=120.0, min_duration_s=20.0, stall_after_s=15.0)


def part(partition: int, lag: int, consume: float, frozen_s: float, cadence_s: float = 4.0,
         committed: int = 77) -> Part:
    """A partition of the one member, committed ``frozen_s`` ago, ``lag`` behind."""
    x = Inputs("billing", ("orders", partition), committed, LogOffsets(0, committed + lag), 1,
               committed_w=Window([NOW - 60.0, NOW], [committed, committed]),
               end_w=Window([NOW - 60.0, NOW], [committed, committed + lag]), retention=None,
               now=NOW)
    moves = [(NOW - frozen_s, committed)]
    return Part(x, lag, Rates(40.0 / 4, consume, cadence_s, NOW - frozen_s, frozen_s, moves),
                near_zero=5.0)


def test_a_partition_waits_as_long_as_its_member_needs_to_read_the_others() -> None:
    # Given a member reading 19.8 msg/s: partition 2 frozen 16 s with 262 waiting, while
    # its siblings, moving, hold 148 + 261 + 129 = 538 (27 s of reading)
    waiting = part(2, 262, 0.0, frozen_s=16.0, cadence_s=2.0)
    member = [part(0, 148, 6.6, 1.0), part(1, 261, 6.6, 0.0), waiting,
              part(3, 129, 6.6, 2.0)]
    # Then it may wait 1.5 times that, not only 3 times its siblings' 4 s gaps
    wait = starved_wait(waiting, crew(member), S)
    assert wait == pytest.approx(1.5 * 538 / 19.8)
    assert not is_stalled(waiting.x, waiting.lag, waiting.rates, S, wait)
    # and once frozen longer than that, it is stalled: its turn should have come
    stuck = part(2, 262, 0.0, frozen_s=45.0, cadence_s=2.0)
    member[2] = stuck
    assert is_stalled(stuck.x, stuck.lag, stuck.rates, S, starved_wait(stuck, crew(member), S))


def test_a_partition_frozen_while_its_siblings_keep_up_is_not_starved() -> None:
    stuck = part(2, 262, 0.0, frozen_s=16.0)
    member = [part(0, 2, 6.6, 1.0), part(1, 0, 6.6, 0.0), stuck, part(3, 3, 6.6, 2.0)]
    assert starved_wait(stuck, crew(member), S) is None
    assert is_stalled(stuck.x, stuck.lag, stuck.rates, S, None)


def test_the_turn_passing_to_a_waiting_partition_is_not_a_stall_before_the_poll_sees_it(
        ) -> None:
    # Given a kafka-python member (its commit() re-commits every partition where it
    # stands): partition 2 frozen at 210 for 45 s by the polls, its siblings re-committed
    # unchanged since their turns; the commit records already hold its first move
    def observed(partition: int, polled: int, recorded: int, frozen_s: float) -> Part:
        times, lag = [NOW - 60.0, NOW - frozen_s, NOW], 500
        x = Inputs("billing", ("orders", partition), polled, LogOffsets(0, polled + lag), 1,
                   committed_w=Window(times, [polled - 40, polled, polled]),
                   end_w=Window(times, [polled, polled + lag // 2, polled + lag]),
                   retention=None, now=NOW)
        facts = CommitFacts(recorded, moved_at=NOW - frozen_s, last_commit_at=NOW - 0.2,
                            commits_since_move=5, move_cadence_s=20.0,
                            commit_interval_s=0.2, recommits=(NOW - 0.4, NOW - 0.2))
        if recorded != polled:  # its first move, a moment ago
            facts = CommitFacts(recorded, moved_at=NOW - 0.2, last_commit_at=NOW - 0.2,
                                commits_since_move=0, move_cadence_s=20.0,
                                commit_interval_s=0.2)
        r = rates(x.committed_w, x.end_w, NOW, facts)
        return Part(x, lag, r, near_zero=5.0)

    turn = observed(2, polled=210, recorded=214, frozen_s=45.0)
    member = [observed(0, 400, 400, 5.0), observed(1, 329, 329, 18.0), turn,
              observed(3, 380, 380, 1.0)]
    # Then it has just moved, as far as the rules are concerned
    assert (turn.rates.frozen_s, turn.rates.commits) == (0.0, None)
    assert not is_stalled(turn.x, turn.lag, turn.rates, S, starved_wait(turn, crew(member), S))
    # and its siblings wait for their turns behind it: starved, not stalled
    waiting = member[1]
    wait = starved_wait(waiting, crew(member), S)
    assert wait is not None and not is_stalled(waiting.x, waiting.lag, waiting.rates, S, wait)
