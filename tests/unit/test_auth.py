"""Basic-auth checks that cannot be used to starve the daemon or to find user names."""

from __future__ import annotations

import bcrypt

from lagwatch.serve.auth import FailedLogins
from lagwatch.serve.webconfig import BasicUsers


def test_every_pair_is_checked_once_and_an_unknown_user_costs_what_a_known_one_does() -> None:
    users = BasicUsers({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(5)).decode()})
    assert users.known("prometheus", "right") is None
    assert [users.check("prometheus", "right"), users.check("prometheus", "wrong"),
            users.check("ghost", "right")] == [True, False, False]
    assert users.checks == 3  # the unknown user was checked against a hash of equal cost
    assert users._decoy.startswith(b"$2b$05$")
    assert [users.check("prometheus", "right"), users.check("prometheus", "wrong"),
            users.check("ghost", "right")] == [True, False, False]
    assert users.checks == 3  # each verdict remembered
    assert (users.known("prometheus", "right"), users.known("ghost", "right")) == (True, False)


def test_failed_logins_are_limited_per_client_over_a_sliding_window() -> None:
    logins = FailedLogins(limit=3, window_s=60.0, clients=2)
    assert [logins.attempt("10.0.0.1", t) for t in (0.0, 1.0, 2.0)] == [0.0] * 3
    assert logins.attempt("10.0.0.1", 3.0) == 57.0  # the first attempt clears at 60 s
    assert logins.attempt("10.0.0.2", 3.0) == 0.0  # another client is not affected
    logins.passed("10.0.0.2")
    assert logins.attempt("10.0.0.1", 60.0) == 0.0  # the window slid past the first
    # a third client: the one seen longest ago (10.0.0.2) is forgotten
    assert logins.attempt("10.0.0.3", 61.0) == 0.0
    assert set(logins._failed) == {"10.0.0.1", "10.0.0.3"}
