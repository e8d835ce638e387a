"""The demo's live status table, rendered from a status document."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from demo_view import render

DOCUMENT = {"clusters": {"default": {
    "up": True, "last_poll": "2026-11-27T07:16:05Z",
    "findings": [{"kind": "dlq_unconsumed", "severity": "warning",
                  "reason": "demo-orders.DLT holds 40 messages and no consumer group reads it"},
                 {"kind": "skewed", "severity": "none", "reason": "not shown"}],
    "groups": {
        "demo-shipping": {"status": "ok", "severity": "none", "members": 1, "lag_messages": 2,
                          "lag_seconds": 0.0, "reasons": [], "findings": []},
        "demo-fraud": {"status": "stalled", "severity": "critical", "members": 1,
                       "lag_messages": 3937, "lag_seconds": 131.4,
                       "reasons": ["demo-orders[0] stuck at offset 303 for 1m 1s"],
                       "findings": [{"kind": "rebalancing", "severity": "warning",
                                     "reason": "2 rebalances in the window"}]},
        "demo-new": {"status": "unknown", "severity": "none", "members": None,
                     "lag_messages": None, "lag_seconds": None, "reasons": [], "findings": []},
    }}}}


def test_the_table_lists_groups_then_why_worst_colored_only_on_a_terminal() -> None:
    text = render(DOCUMENT, "http://127.0.0.1:9391", log="/tmp/lagwatch-kafka-x/lagwatch.log",
                  broker="127.0.0.1:40123")
    assert text.splitlines() == [
        "lagwatch demo — metrics http://127.0.0.1:9391/metrics · status "
        "http://127.0.0.1:9391/api/v1/status · incidents http://127.0.0.1:9391/api/v1/incidents"
        " · Ctrl-C stops everything",
        "lagwatch's log: /tmp/lagwatch-kafka-x/lagwatch.log",
        "Kafka at 127.0.0.1:40123: audit it with .venv/bin/lagwatch audit --bootstrap-server "
        "127.0.0.1:40123 (or http://127.0.0.1:9391/api/v1/audit)",
        "",
        "cluster default (up), last poll 2026-11-27T07:16:05Z",
        "  GROUP          STATUS   MEMBERS  LAG    TIME LAG",
        "  demo-fraud     stalled  1        3,937  131s",
        "  demo-new       unknown  -        -      -",
        "  demo-shipping  ok       1        2      0s",
        "",
        "  why:",
        "  demo-fraud: demo-orders[0] stuck at offset 303 for 1m 1s",
        "  demo-fraud: [rebalancing] 2 rebalances in the window",
        "  cluster: [dlq_unconsumed] demo-orders.DLT holds 40 messages and no consumer group "
        "reads it"]
    colored = render(DOCUMENT, "http://127.0.0.1:9391", color=True)
    assert "\033[31m  demo-fraud: demo-orders[0] stuck" in colored
