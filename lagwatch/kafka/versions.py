"""Which request versions lagwatch speaks, and which Kafka release a cluster's API versions
tell (pure, no I/O).

kafka-python sends the highest version of a request that it and the broker both know. A
newer version may answer in another shape: OffsetFetch v10 (Kafka 4.2+) names topics by
id and leaves their names empty, Fetch v13 likewise. So every request lagwatch builds
itself is capped at the newest version the compatibility suite has run it with
(``tests/integration/test_compatibility.py``, every release of the README's *Kafka
compatibility* matrix), and the requests kafka-python builds for lagwatch are held to
``KAFKA_PYTHON_CEILING`` by a unit test: a kafka-python release that would send a newer
one fails the suite instead of reaching a cluster untested.
"""

from __future__ import annotations

from collections.abc import Mapping

# Requests lagwatch builds itself: (oldest, newest) version it sends.
OFFSET_FETCH = (8, 9)  # v8: many groups in one request; v10 names topics by id
LIST_OFFSETS = (2, 11)  # v2: the isolation level (the last stable offset)
FETCH_MAX = 12  # the last version that names topics (13 names them by id)
CONSUMER_GROUP_DESCRIBE_MAX = 1

# Requests kafka-python builds for lagwatch's calls, by API key: the newest version tested.
KAFKA_PYTHON_CEILING: Mapping[int, tuple[str, int]] = {
    1: ("Fetch", 18),  # the __consumer_offsets reader (kafka-python's consumer: ids)
    2: ("ListOffsets", 11),
    3: ("Metadata", 13),
    9: ("OffsetFetch", 10),  # list_group_offsets asks for 8 at most
    10: ("FindCoordinator", 6),
    15: ("DescribeGroups", 6),
    16: ("ListGroups", 5),
    18: ("ApiVersions", 4),
    32: ("DescribeConfigs", 4),
    35: ("DescribeLogDirs", 5),
    60: ("DescribeCluster", 2),
    61: ("DescribeProducers", 0),
    66: ("ListTransactions", 2),
}

TESTED_RELEASES = ("3.9", "4.0", "4.1", "4.2", "4.3", "4.4")
"""The releases of the compatibility matrix, oldest first."""

# A request version each release is the first to answer (newest release first).
_FIRST_ANSWERED = (
    ("4.4", 18, 5),  # ApiVersions v5
    ("4.3", 35, 5),  # DescribeLogDirs v5
    ("4.2", 2, 11),  # ListOffsets v11
    ("4.1", 0, 13),  # Produce v13
    ("4.0", 2, 10),  # ListOffsets v10
    ("3.9", 1, 17),  # Fetch v17
)

# The newest version of every request a Kafka 4.4.0 broker answers (its ApiVersions).
_NEWEST_TESTED = {
    0: 13, 1: 18, 2: 11, 3: 13, 8: 10, 9: 10, 10: 6, 11: 9, 12: 4, 13: 5, 14: 5, 15: 6,
    16: 5, 17: 1, 18: 5, 19: 7, 20: 6, 21: 2, 22: 5, 23: 4, 24: 5, 25: 4, 26: 5, 27: 2,
    28: 6, 29: 3, 30: 3, 31: 3, 32: 4, 33: 2, 34: 2, 35: 5, 36: 2, 37: 3, 38: 3, 39: 2,
    40: 2, 41: 3, 42: 3, 43: 2, 44: 1, 45: 1, 46: 0, 47: 0, 48: 1, 49: 1, 50: 0, 51: 0,
    55: 2, 57: 2, 60: 2, 61: 0, 64: 0, 65: 0, 66: 2, 68: 1, 69: 1, 74: 1, 75: 0, 76: 1,
    77: 1, 78: 2, 79: 2, 80: 1, 81: 0, 83: 0, 84: 0, 85: 1, 86: 0, 87: 1, 88: 1, 89: 1,
    90: 1, 91: 0, 92: 0, 93: 0, 94: 0,
}


def kafka_release(api_versions: Mapping[int, tuple[int, int]]) -> tuple[str, bool]:
    """The release a broker's ApiVersions answer tells, as "4.2", "newer than 4.4" or
    "older than 3.9"; and whether it is newer than the newest tested release."""
    newer = sorted(key for key, (_, most) in api_versions.items()
                   if most > _NEWEST_TESTED.get(key, -1))
    if newer:
        return f"newer than {TESTED_RELEASES[-1]}", True
    for release, key, version in _FIRST_ANSWERED:
        if api_versions.get(key, (0, -1))[1] >= version:
            return release, False
    return f"older than {TESTED_RELEASES[0]}", False
