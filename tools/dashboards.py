"""Write lagwatch's Grafana dashboards (dashboards/*.json) from the panel lists below.

    .venv/bin/python tools/dashboards.py           # rewrite dashboards/
    .venv/bin/python tools/dashboards.py --check   # exit 1 if dashboards/ is out of date

The dashboards are built with Grafana's own SDK (``grafana-foundation-sdk``, its types
and builders generated from Grafana 10.4's schemas; a dev dependency), so every field is
one Grafana knows: Grafana's dashboard model at schemaVersion 36, which Grafana 10 and 11
migrate on import, with a Prometheus datasource variable, so it imports into any Grafana
with no edits. Every panel says in its description what it shows and what to do about it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import VisibilityMode

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
C = 'cluster=~"$cluster"'
CG = f'{C}, group=~"$group"'
CGT = f'{CG}, topic=~"$topic"'
CT = f'{C}, topic=~"$topic"'
KINDS: dict[str, Callable[[], Any]] = {  # panel type -> the SDK's builder of it
    "timeseries": timeseries.Panel, "stat": stat.Panel, "bargauge": bargauge.Panel,
    "state-timeline": statetimeline.Panel, "table": table.Panel}


@dataclass
class Panel:
    """One panel: its title, what it means, its queries and how to draw them."""

    title: str
    description: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    options: Callable[[Any], Any] = lambda panel: panel  # sets the kind's own options
    instant: bool = False


def _panel(p: Panel, panel_id: int, x: int, y: int) -> Any:
    panel = (KINDS[p.kind]().id(panel_id).title(p.title).description(p.description)
             .datasource(DS).grid_pos(model.GridPos(h=p.height, w=p.width, x=x, y=y))
             .unit(p.unit))
    for i, (expr, legend) in enumerate(p.targets):
        query = Dataquery().datasource(DS).expr(expr).legend_format(legend).ref_id(chr(65 + i))
        panel = panel.with_target(query.instant() if p.instant else query.range())
    return p.options(panel)


def _variable(name: str, query: str, label: str) -> Builder[model.VariableModel]:
    return (QueryVariable(name).label(label).datasource(DS)
            .query({"query": query, "refId": f"{name}-query"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).include_all(True)
            .multi(True).all_value(".*").sort(model.VariableSort.ALPHABETICAL_ASC)
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"])))


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: tuple[str, ...] = ("cluster",)) -> Dashboard:
    """Lay panels out left to right, top to bottom, on Grafana's 24-column grid."""
    board = (Dashboard(title).uid(uid).description(description).tags(["lagwatch", "kafka"])
             .version(1).editable().tooltip(model.DashboardCursorSync.CROSSHAIR)
             .time("now-3h", "now").refresh("30s").timezone("browser")
             .link(DashboardLink("lagwatch").type(model.DashboardLinkType.DASHBOARDS)
                   .tags(["lagwatch"]).as_dropdown(True).include_vars(True)
                   .keep_time(True)))
    x, y, row_height = 0, 0, 0
    for n, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_height = 0, y + row_height, 0
        board = board.with_panel(_panel(p, n, x, y))
        x, row_height = x + p.width, max(row_height, p.height)
    queries = {
        "cluster": "label_values(lagwatch_cluster_up, cluster)",
        "group": 'label_values(lagwatch_group_status{cluster=~"$cluster"}, group)',
        "topic": 'label_values(lagwatch_partition_log_end_offset{cluster=~"$cluster"}, topic)',
    }
    board = board.with_variable(DatasourceVariable("datasource").label("Data source")
                                .type("prometheus"))
    for v in variables:
        board = board.with_variable(_variable(v, queries[v], v.capitalize()))
    return board


def status_timeline(panel: Any) -> Any:
    """A state timeline of statuses: runs merged, no values written, tall rows."""
    return panel.merge_values(True).show_value(VisibilityMode.NEVER).row_height(0.8)


def overview() -> Dashboard:
    """Clusters, groups by status, top groups by time lag, a status timeline."""
    return dashboard("lagwatch-overview", "lagwatch / Overview",
                     "Every watched cluster and consumer group at a glance.", [
        Panel("Clusters reachable", "1 when lagwatch's last poll of the cluster succeeded. "
              "0: lagwatch cannot read the cluster, and every other panel shows its last "
              "known numbers; check the brokers and lagwatch's network path.",
              [(f"lagwatch_cluster_up{{{C}}}", "{{cluster}}")], "stat", width=6, height=5,
              instant=True),
        Panel("Groups by status", "How many groups are in each status. Anything but ok, "
              "idle and unknown needs a look: open the group in the drill-down.",
              [(f"count by (status) (lagwatch_group_status{{{C}}} == 1)", "{{status}}")],
              "bargauge", width=6, height=5, instant=True),
        Panel("Groups by type", "Watched groups by type: classic, consumer (the KIP-848 "
              "consumer protocol), share or streams. lagwatch judges classic and consumer "
              "groups; share and streams groups are listed as unknown, never ok.",
              [(f"count by (type) (lagwatch_group_info{{{C}}})", "{{type}}")],
              "bargauge", width=6, height=5, instant=True),
        Panel("Open lagwatch incidents", "Incidents lagwatch's own alerting holds open, by "
              "phase and severity. See /api/v1/incidents for which.",
              [(f"sum by (phase, severity) (lagwatch_incidents{{{C}}})",
                "{{phase}} {{severity}}")], "stat", width=6, height=5, instant=True),
        Panel("Top 10 groups by time lag", "The age of the oldest unread message, worst "
              "groups first. A rising line is a group falling further behind in time: the "
              "number to compare with your latency promise and topic retention.",
              [(f"topk(10, max by (cluster, group) (lagwatch_group_lag_seconds{{{C}}}))",
                "{{cluster}} {{group}}")], unit="s", width=12),
        Panel("Top 10 groups by lag (messages)", "Unread messages per group. Compare with "
              "the time lag: many messages but little time is a busy topic keeping up.",
              [(f"topk(10, sum by (cluster, group) (lagwatch_group_lag_messages{{{C}}}))",
                "{{cluster}} {{group}}")], width=12),
        Panel("Status timeline", "Each group's severity over time (worst of its status and "
              "findings): green ok, yellow warning, red critical. Long red bars are incidents.",
              [(f"max by (group) (lagwatch_group_severity{{{C}}})", "{{group}}")],
              "state-timeline", width=24, height=10, options=status_timeline),
    ])


def group_drilldown() -> Dashboard:
    """One consumer group, per partition."""
    return dashboard("lagwatch-group", "lagwatch / Consumer group",
                     "One consumer group, partition by partition.", [
        Panel("Status history", "The group's status over time; the reasons behind the "
              "current one are in lagwatch's API and `lagwatch check`.",
              [(f"lagwatch_group_status{{{CG}}} == 1", "{{group}} {{status}}")],
              "state-timeline", width=24, height=5, options=status_timeline),
        Panel("Lag per partition (messages)", "Log end minus committed offset. One "
              "partition far above its siblings is a poison pill or a hot key.",
              [(f"lagwatch_partition_lag_messages{{{CGT}}}", "{{topic}}[{{partition}}]")]),
        Panel("Time lag per partition", "Age of the oldest unread message. Compare with the "
              "topic's retention: at retention, unread messages are deleted.",
              [(f"lagwatch_partition_lag_seconds{{{CGT}}}", "{{topic}}[{{partition}}]")],
              unit="s"),
        Panel("Committed offset vs log end", "Where the group is and where the log is. "
              "Parallel lines: keeping pace. A flat committed line under a rising log end: "
              "stuck. A flat last stable offset under the log end: an open transaction "
              "holds read_committed readers back, whatever they do.",
              [(f"lagwatch_partition_committed_offset{{{CGT}}}",
                "committed {{topic}}[{{partition}}]"),
               (f"lagwatch_partition_log_end_offset{{{CT}}} and on (cluster, topic, partition) "
                f"lagwatch_partition_committed_offset{{{CGT}}}",
                "log end {{topic}}[{{partition}}]"),
               (f"lagwatch_partition_last_stable_offset{{{CT}}} and on (cluster, topic, "
                f"partition) lagwatch_partition_committed_offset{{{CGT}}}",
                "last stable {{topic}}[{{partition}}]")]),
        Panel("Consume vs produce rate", "Messages per second read by the group and written "
              "by producers, per topic. Consume below produce for long is a slow consumer: "
              "add consumers or find the bottleneck.",
              [(f"lagwatch_group_consume_rate_per_second{{{CGT}}}", "consume {{topic}}"),
               (f"lagwatch_group_produce_rate_per_second{{{CGT}}}", "produce {{topic}}")],
              unit="ops"),
        Panel("Catch-up and retention ETA", "Time to reach the log end at current rates, and "
              "time until retention deletes unread messages. No catch-up line means the group "
              "is not gaining; a retention line shorter than the catch-up line is data loss "
              "ahead.",
              [(f"lagwatch_group_catchup_eta_seconds{{{CGT}}}", "catch-up {{topic}}"),
               (f"lagwatch_group_retention_eta_seconds{{{CGT}}}", "retention {{topic}}")],
              unit="s"),
        Panel("Members", "Active members of the group. 0 with lag is a stopped group.",
              [(f"lagwatch_group_members{{{CG}}}", "{{group}}")], width=8),
        Panel("Group type and epoch", "The group's type (classic, or consumer for the "
              "KIP-848 consumer protocol) and, for consumer-protocol groups, the group epoch: "
              "each step is one change of members or subscriptions, the new protocol's "
              "rebalance.",
              [(f"lagwatch_group_info{{{CG}}}", "{{group}} {{type}}"),
               (f"lagwatch_group_epoch{{{CG}}}", "{{group}} epoch")],
              "table", width=8, instant=True),
        Panel("Rebalances per hour", "Rebalance rate over the detection window (exact when "
              "lagwatch reads __consumer_offsets). Frequent rebalances stall consumption: look "
              "for crash loops, session timeouts and slow poll loops.",
              [(f"lagwatch_group_rebalances_per_hour{{{CG}}}", "{{group}}")], width=8),
        Panel("Share of time rebalancing", "Share of polls that caught the group mid-"
              "rebalance. Above 0.2 the group spends much of its time not consuming.",
              [(f"lagwatch_group_rebalancing_ratio{{{CG}}}", "{{group}}")],
              unit="percentunit", width=8),
        Panel("Findings", "Active findings on the group (skew, rebalancing) by kind and "
              "severity; the reasons are in lagwatch's API.",
              [(f"lagwatch_group_findings{{{CG}}} > 0", "{{kind}} {{severity}}")],
              "table", width=24, height=6, instant=True),
    ], variables=("cluster", "group", "topic"))


def topics() -> Dashboard:
    """Produce traffic per partition and its skew."""
    return dashboard("lagwatch-topics", "lagwatch / Topics and skew",
                     "Produce traffic across partitions, and where it concentrates.", [
        Panel("Produce rate per partition", "Messages per second written to each partition. "
              "One partition far above the rest is a hot key: its consumer falls behind first.",
              [(f"lagwatch_partition_produce_rate_per_second{{{CT}}}",
                "{{topic}}[{{partition}}]")], unit="ops", width=24),
        Panel("Produce skew (max / mean)", "The busiest partition's rate over the topic's "
              "mean. 1 is even; lagwatch flags a hot partition at 2 or more.",
              [(f"lagwatch_topic_produce_skew_ratio{{{CT}}}", "{{topic}}")]),
        Panel("Lag by topic", "Unread messages summed over the groups reading each topic.",
              [(f"sum by (topic) (lagwatch_group_lag_messages{{{CT}}})", "{{topic}}")]),
        Panel("Held back by open transactions", "Offsets between the last stable offset "
              "and the log end, per partition: what read_committed consumers cannot read "
              "yet. Brief steps are transactions at work; a line that keeps rising is a "
              "hanging transaction (lagwatch names its producer).",
              [(f"lagwatch_partition_log_end_offset{{{CT}}} - "
                f"lagwatch_partition_last_stable_offset{{{CT}}}",
                "{{topic}}[{{partition}}]")]),
        Panel("Skew findings", "Hot partitions (cluster findings) and lag or assignment skew "
              "(group findings) currently active.",
              [(f'lagwatch_cluster_findings{{{C}, kind="skewed"}}', "hot partition"),
               (f'sum by (group) (lagwatch_group_findings{{{C}, kind="skewed"}})',
                "{{group}}")], width=24),
    ], variables=("cluster", "topic"))


def dlqs() -> Dashboard:
    """Dead-letter queues: inflow, unread, age, readers."""
    return dashboard("lagwatch-dlq", "lagwatch / Dead-letter queues",
                     "Messages a consumer gave up on, and whether anyone reads them.", [
        Panel("DLQ inflow", "Messages per second arriving in each dead-letter queue: a "
              "consumer fails on some messages. Any inflow deserves a look at why.",
              [(f"lagwatch_dlq_inflow_per_second{{{C}}}", "{{topic}}")], unit="ops"),
        Panel("Unread DLQ messages", "Messages in each DLQ its readers have not read (all "
              "of them when nobody reads it).",
              [(f"lagwatch_dlq_unread_messages{{{C}}}", "{{topic}}")]),
        Panel("Oldest unread DLQ message", "Age of the oldest unread message in each DLQ. "
              "When it reaches the topic's retention the message is deleted unexamined.",
              [(f"lagwatch_dlq_oldest_unread_seconds{{{C}}}", "{{topic}}")], unit="s"),
        Panel("Groups reading each DLQ", "0 means nobody reads the DLQ: its messages wait "
              "until retention deletes them.",
              [(f"lagwatch_dlq_consumer_groups{{{C}}}", "{{topic}}")], "stat", instant=True),
        Panel("DLQ findings", "Active DLQ findings: inflow, unconsumed, consumer lagging, "
              "expiring.",
              [(f'lagwatch_cluster_findings{{{C}, kind=~"dlq_.*"}} > 0',
                "{{kind}}")], "table", width=24, height=6, instant=True),
    ])


def cluster_health() -> Dashboard:
    """Brokers, controller, replication, disks."""
    return dashboard("lagwatch-cluster", "lagwatch / Cluster health",
                     "Brokers, controller, replication and disks of each cluster.", [
        Panel("Brokers", "Brokers registered. A drop is a broker down or fenced.",
              [(f"lagwatch_cluster_brokers{{{C}}}", "{{cluster}}")], width=8),
        Panel("Controller", "Node id of the active controller; a change is a controller "
              "move (one is routine, several mean an unstable quorum).",
              [(f"lagwatch_cluster_controller_id{{{C}}}", "{{cluster}}")], width=8),
        Panel("Controller moves", "Controller moves seen since lagwatch started.",
              [(f"lagwatch_cluster_controller_changes_total{{{C}}}", "{{cluster}}")],
              width=8),
        Panel("Offline, under-replicated and under-min-ISR partitions", "Offline partitions "
              "cannot be read or written; under-min-ISR ones reject acks=all writes; "
              "under-replicated ones have lost redundancy. All should be 0.",
              [(f"lagwatch_cluster_offline_partitions{{{C}}}", "offline {{cluster}}"),
               (f"lagwatch_cluster_under_min_isr_partitions{{{C}}}",
                "under min ISR {{cluster}}"),
               (f"lagwatch_cluster_under_replicated_partitions{{{C}}}",
                "under-replicated {{cluster}}")], width=24),
        Panel("Log dir size", "Bytes each broker's log directory holds. One broker far above "
              "the others holds more partitions or leaders: rebalance them.",
              [(f"lagwatch_broker_log_dir_bytes{{{C}}}", "{{broker}} {{log_dir}}")],
              unit="bytes", width=8),
        Panel("Log dir free space", "Free bytes on each log directory's disk. Near zero the "
              "broker stops accepting writes: add disk or shorten retention.",
              [(f"lagwatch_broker_log_dir_usable_bytes{{{C}}}", "{{broker}} {{log_dir}}")],
              unit="bytes", width=8),
        Panel("Log dir growth", "Bytes per second each log directory grows; free space over "
              "growth is the time left before the disk is full.",
              [(f"lagwatch_broker_log_dir_growth_bytes_per_second{{{C}}}",
                "{{broker}} {{log_dir}}")], unit="Bps", width=8),
        Panel("Cluster findings", "Active cluster findings by kind and severity.",
              [(f"lagwatch_cluster_findings{{{C}}} > 0", "{{kind}} {{severity}}")],
              "table", width=24, height=6, instant=True),
    ])


def self_monitoring() -> Dashboard:
    """lagwatch's own health: polls, errors, notification delivery, resources."""
    return dashboard("lagwatch-self", "lagwatch / Self-monitoring",
                     "Whether lagwatch itself is working: polls, errors, notifications.", [
        Panel("Poll duration (p50, p95) and processing (p95)",
              "How long a poll of each cluster takes to read Kafka, and then to process what "
              "it read (history, detection, report, alerting, /metrics). Their sum close to "
              "the poll interval means polls start to be skipped: raise poll_interval.",
              [(f"histogram_quantile(0.5, sum by (cluster, le) "
                f"(rate(lagwatch_poll_duration_seconds_bucket{{{C}}}[5m])))", "p50 {{cluster}}"),
               (f"histogram_quantile(0.95, sum by (cluster, le) "
                f"(rate(lagwatch_poll_duration_seconds_bucket{{{C}}}[5m])))",
                "p95 {{cluster}}"),
               (f"histogram_quantile(0.95, sum by (cluster, le) "
                f"(rate(lagwatch_poll_processing_seconds_bucket{{{C}}}[5m])))",
                "p95 processing {{cluster}}")], unit="s"),
        Panel("Poll errors", "Things polls could not read, per second, by stage. The "
              "lagwatch API's errors list says what.",
              [(f"sum by (cluster, stage) (rate(lagwatch_poll_errors_total{{{C}}}[5m]))",
                "{{cluster}} {{stage}}")], unit="ops"),
        Panel("Seconds since the last successful poll", "Over a few poll intervals, "
              "lagwatch's numbers for the cluster are stale.",
              [(f"time() - lagwatch_last_poll_timestamp_seconds{{{C}}}", "{{cluster}}")],
              unit="s"),
        Panel("Notifications sent", "Notifications receivers accepted, by receiver and "
              "action, per minute.",
              [("sum by (receiver, action) (rate(lagwatch_notifications_sent_total[5m])) "
                "* 60", "{{receiver}} {{action}}")]),
        Panel("Notifications failed", "Notifications given up on, by receiver and reason. "
              "Anything here is a page someone did not get: check the receiver's config "
              "with `lagwatch test-notify`.",
              [("sum by (receiver, reason) (increase(lagwatch_notifications_failed_total"
                "[1h]))", "{{receiver}} {{reason}}")]),
        Panel("Outbox", "Notifications waiting for delivery, and the age of the oldest. A "
              "growing age is a receiver that does not accept messages.",
              [("lagwatch_outbox_pending", "pending {{receiver}}"),
               ("lagwatch_outbox_oldest_pending_seconds", "oldest {{receiver}} (s)")]),
        Panel("Memory (RSS)", "lagwatch's resident memory. It grows with the number of "
              "group-partitions watched and the detection window; see BENCHMARKS.md.",
              [('process_resident_memory_bytes{job="lagwatch"}', "{{instance}}")],
              unit="bytes"),
        Panel("__consumer_offsets records skipped", "Records lagwatch could not decode or "
              "does not handle. A steady rise of undecodable ones after a Kafka upgrade "
              "means the record format changed.",
              [(f"lagwatch_offsets_topic_records_skipped_total{{{C}}}",
                "{{cluster}} {{kind}}")]),
    ])


DASHBOARDS = {"overview": overview, "consumer-group": group_drilldown, "topics": topics,
              "dead-letter-queues": dlqs, "cluster-health": cluster_health,
              "self-monitoring": self_monitoring}


def render() -> dict[str, str]:
    """Return file name -> JSON text for every dashboard."""
    return {f"lagwatch-{name}.json": json.dumps(build().build(), cls=JSONEncoder,
                                                   indent=2) + "\n"
            for name, build in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if dashboards/ is stale")
    args = parser.parse_args()
    stale = [name for name, text in render().items()
             if not (OUT / name).exists() or (OUT / name).read_text() != text]
    if args.check:
        for name in stale:
            print(f"dashboards/{name} is out of date: run tools/dashboards.py", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
