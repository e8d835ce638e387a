"""The lagwatch command: run, check, audit, validate, test-notify."""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

from lagwatch import __version__
from lagwatch.config import Config, ConfigError, load_config
from lagwatch.configtypes import parse_duration
from lagwatch.kafka import causes as kafkalog
from lagwatch.kafka.membership import StateTopicError
from lagwatch.kafka.reader import ClusterReader
from lagwatch.lock import StateDirInUseError
from lagwatch.patterns import Pattern, compile_pattern
from lagwatch.pipeline import ClusterJudge, wire
from lagwatch.report.view import ClusterReport, build_report
from lagwatch.serve.documents import audit_document, to_document
from lagwatch.serve.webconfig import WebConfigError
from lagwatch.status import Severity

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNUSABLE = 0, 1, 2, 3
_EXIT_FOR = {Severity.NONE: EXIT_OK, Severity.WARNING: EXIT_WARNING,
             Severity.CRITICAL: EXIT_CRITICAL}


class UsageError(Exception):
    """A problem with what the user asked for; reported in one line, exit status 3."""


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on bad usage, which `check` uses for "critical"; lagwatch says 3.
    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNUSABLE, f"lagwatch: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lagwatch", description="Kafka consumer-lag and health monitor.")
    parser.add_argument("--version", action="version", version=f"lagwatch {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True,
                                metavar="{run,check,audit,validate,test-notify}")

    def sampling(p: argparse.ArgumentParser, samples: int, what: str) -> None:
        p.add_argument("--samples", type=int, default=samples, metavar="N", help=what)
        p.add_argument("--interval", default="15s", metavar="DURATION",
                       help="time between samples (default 15s)")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", help="YAML config file")
        p.add_argument("--bootstrap-server", action="append", metavar="HOST:PORT",
                       help="Kafka bootstrap server (repeatable); overrides the config; "
                            "default: $LAGWATCH_BOOTSTRAP")
        p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    run = sub.add_parser("run", help="run the daemon")
    common(run)
    run.add_argument("--listen", metavar="HOST:PORT", help="HTTP address (default 0.0.0.0:9391)")
    run.add_argument("--poll-interval", metavar="DURATION", help="e.g. 15s, 1m (default 30s)")
    run.add_argument("--state-dir", metavar="DIR", help="where state is kept")
    run.add_argument("--web.config.file", dest="web_config_file", metavar="PATH",
                     help="exporter-toolkit web configuration: TLS, basic_auth_users")

    check = sub.add_parser("check", help="poll once and report; exit 0 ok, 1 warning, "
                                         "2 critical, 3 unreachable, blind or invalid config")
    common(check)
    check.add_argument("--json", action="store_true", help="print the JSON status document")
    sampling(check, 1, "polls to take before judging (trend statuses need several)")

    audit = sub.add_parser("audit", help="the production checklist, checked against the "
                                         "cluster; exit 0 all pass, 1 warnings, 2 failures, "
                                         "3 unreachable or invalid input")
    common(audit)
    audit.add_argument("--group", metavar="REGEX", help="audit only the groups it matches")
    audit.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    sampling(audit, 4, "polls to take before auditing (commit patterns need several; "
                       "default 4)")

    validate = sub.add_parser("validate", help="check a config file")
    validate.add_argument("-c", "--config", required=True, help="YAML config file")

    notify = sub.add_parser("test-notify", help="send a test message to each receiver; "
                                                "exit 0 when all accepted it, else 1")
    notify.add_argument("-c", "--config", required=True, help="YAML config file")
    notify.add_argument("--receiver", metavar="NAME", help="only this receiver")
    return parser


def _config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    servers = getattr(args, "bootstrap_server", None)
    if not servers and os.environ.get("LAGWATCH_BOOTSTRAP") and not args.config:
        servers = [os.environ["LAGWATCH_BOOTSTRAP"]]
    if servers:
        overrides["bootstrap_servers"] = [s for arg in servers for s in arg.split(",") if s]
    for flag, key in (("listen", "listen"), ("poll_interval", "poll_interval"),
                      ("state_dir", "state_dir"), ("log_level", "log_level"),
                      ("web_config_file", "web_config_file")):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    return load_config(args.config, overrides)


def _setup_logging(level: str, secrets: Sequence[str] = ()) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # kafka-python logs its config at debug
        handler.setFormatter(RedactingFormatter(handler.formatter, secrets))
    # kafka-python logs every failed connection attempt; lagwatch reports reachability
    # itself, with the cause it captures from those records.
    kafkalog.install(debug=level == "debug")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if level != "debug":  # uvicorn warns of each malformed request: a client's doing
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)


class RedactingFormatter(logging.Formatter):
    """Format as ``inner`` does, with every configured secret replaced by ``***``.

    A secret is looked for in each form a log line can carry it in: as it is, escaped as
    ``repr`` escapes it (kafka-python logs its configuration as a dict), JSON-escaped,
    as bytes, and percent-encoded; whatever its length.
    """

    def __init__(self, inner: logging.Formatter | None, secrets: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        forms = {form for s in secrets if s for form in secret_forms(s)}
        self.secrets = sorted(forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        """Return the formatted record, redacted."""
        text = self.inner.format(record)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def secret_forms(secret: str) -> set[str]:
    """The ways a secret can be written into text."""
    escaped = secret.replace("\\", "\\\\")  # inside a longer string's repr, either quote
    return {secret, repr(secret)[1:-1], escaped, escaped.replace("'", "\\'"),
            escaped.replace('"', '\\"'), json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret.encode())[2:-1],
            quote(secret, safe=""), quote_plus(secret)} - {""}


def _limit_malloc_arenas() -> None:
    # glibc gives each thread that allocates its own arena; the poller, scheduler and HTTP
    # threads then hold freed memory apart and RSS grows with every large poll. Two arenas
    # keep a large cluster's footprint flat. No-op where glibc's mallopt is missing.
    try:
        libc = ctypes.CDLL(None)
        m_arena_max = -8
        libc.mallopt(m_arena_max, 2)
    except (OSError, AttributeError):
        pass


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    from lagwatch.daemon import Daemon

    _limit_malloc_arenas()
    config = _config(args)
    _setup_logging(config.log_level, config.secrets())
    try:
        daemon = Daemon(config)
    except StateDirInUseError as exc:
        raise UsageError(str(exc)) from None
    daemon.handle_signals()
    try:
        http = daemon.start()
    except StateTopicError as exc:
        raise UsageError(str(exc)) from None
    except WebConfigError as exc:
        where = ("http.tls" if config.http.tls
                 else f"http.web_config_file {config.http.web_config_file}")
        raise UsageError(f"{where}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"http.listen: cannot listen on {config.http.listen}: "
                         f"{exc.strerror}") from None
    clusters = ", ".join(f"{c.name} ({','.join(c.bootstrap_servers)})" for c in config.clusters)
    print(f"lagwatch {__version__}: watching {clusters} every {config.poll_interval:g}s; "
          f"metrics at {http.url}/metrics, status at {http.url}/api/v1/status", flush=True)
    daemon.serve_until_signalled()
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Poll every cluster once and report; the exit status is the worst severity, or 3 when
    some watched group cannot be judged (the ``blind`` finding)."""
    config = _config(args)
    _setup_logging(config.log_level if args.log_level else "error", config.secrets())
    interval_s = _interval(args)
    wired = [wire(config, c) for c in config.clusters]
    collectors = [collector for collector, _ in wired]
    pipelines = [pipeline for _, pipeline in wired]
    try:
        reports, unreachable = _sample(collectors, pipelines, args.samples, interval_s)
    finally:
        for collector in collectors:
            collector.close()
    if args.json:  # a document even when a cluster is down: up false, with its errors
        print(json.dumps(to_document(reports, time.time()), indent=2))
    if unreachable is not None:
        raise unreachable
    if not args.json:
        print(format_table(reports))
    code, said = check_status(reports)
    print(said, file=sys.stderr, end="\n" if said else "")
    return code


def check_status(reports: list[ClusterReport]) -> tuple[int, str]:
    """``check``'s exit status, and what it says on stderr: the worst severity, or 3 with
    the ``blind`` findings when some watched group could not be judged (no verdict)."""
    blind = [f"lagwatch: cluster {r.cluster}: {f.reason}" for r in reports
             for f in r.verdict.cluster_findings if f.kind == "blind"]
    if blind:
        return EXIT_UNUSABLE, "\n".join(blind)
    severities = [g.severity for r in reports for g in r.groups]
    severities += [f.severity for r in reports for f in r.verdict.cluster_findings]
    return max((_EXIT_FOR[s] for s in severities), default=EXIT_OK), ""


def _interval(args: argparse.Namespace) -> float:
    """The sampling flags, checked; return the interval in seconds."""
    if args.samples < 1:
        raise UsageError(f"--samples: must be 1 or more (got {args.samples})")
    try:
        return parse_duration(args.interval)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None


def cmd_audit(args: argparse.Namespace) -> int:
    """Sample every cluster, then judge the production checklist for each watched group."""
    from lagwatch.audit.items import Outcome, worst_outcome
    from lagwatch.audit.render import to_markdown, to_text
    from lagwatch.auditor import Auditor

    config = _config(args)
    _setup_logging(config.log_level if args.log_level else "error", config.secrets())
    interval_s = _interval(args)
    try:
        groups = compile_pattern(args.group) if args.group is not None else None
    except ValueError as exc:
        raise UsageError(f"--group: {exc}") from None
    wired = [wire(config, c) for c in config.clusters]
    judges = [judge for _, judge in wired]
    try:
        reports, unreachable = _sample([r for r, _ in wired], judges, args.samples,
                                       interval_s, _matching(groups, args.group))
    finally:
        for reader, _ in wired:
            reader.close()
    if unreachable is not None:
        raise unreachable
    auditor = Auditor(config)
    audits = [auditor.audit(cluster, judge, report, silences=tuple(config.alerting.silences),
                            groups=groups, progress=_progress)
              for cluster, judge, report in zip(config.clusters, judges, reports, strict=True)]
    now = time.time()
    if args.format == "json":
        print(json.dumps(audit_document(audits, now), indent=2))
    else:
        print(to_markdown(audits, now) if args.format == "markdown" else to_text(audits))
    worst = worst_outcome(a.worst() for a in audits)
    return {Outcome.FAIL: EXIT_CRITICAL, Outcome.WARN: EXIT_WARNING}.get(worst, EXIT_OK)


def _matching(groups: Pattern | None, text: str | None
              ) -> Callable[[list[ClusterReport]], None]:
    """After the first poll: refuse a --group that matches none of the watched groups."""
    def check(reports: list[ClusterReport]) -> None:
        names = sorted(g.group_id for r in reports for g in r.groups)
        if groups is not None and not any(groups.search(n) for n in names):
            raise UsageError(f"--group {text!r} matches none of the watched groups "
                             f"({', '.join(names) or 'none'})")
    return check


def _progress(line: str) -> None:
    print(f"lagwatch: {line}", file=sys.stderr, flush=True)


def _sample(collectors: list[ClusterReader], pipelines: list[ClusterJudge], samples: int,
            interval_s: float,
            after_first: Callable[[list[ClusterReport]], None] = lambda _reports: None,
            ) -> tuple[list[ClusterReport], UsageError | None]:
    """Poll every cluster `samples` times; report on the last poll with the whole history.

    A cluster that cannot be reached ends the sampling: its report is down, with the error
    that names it.
    """
    reports: list[ClusterReport] = []
    for n in range(1, samples + 1):
        started = time.monotonic()
        reports = []
        unreachable = None
        for collector, pipeline in zip(collectors, pipelines, strict=True):
            snapshot = collector.poll()
            if not snapshot.up:
                servers = ",".join(collector.cluster.bootstrap_servers)
                unreachable = unreachable or UsageError(
                    f"cluster {collector.cluster.name!r} is unreachable at {servers}: "
                    f"{snapshot.errors[0].message}")
                reports.append(build_report(snapshot, None, None))
                continue
            reports.append(build_report(snapshot, None, pipeline.ingest(snapshot)))
        if unreachable is not None:
            return reports, unreachable
        if n == 1:
            after_first(reports)
        if n < samples:
            print(f"lagwatch: sample {n}/{samples} taken; next in {interval_s:g}s",
                  file=sys.stderr, flush=True)
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return reports, None


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a config file and say what it sets up."""
    config = load_config(args.config)
    names = ", ".join(c.name for c in config.clusters)
    print(f"{args.config}: valid; {len(config.clusters)} cluster(s): {names}; "
          f"poll every {config.poll_interval:g}s; http on {config.http.listen}")
    return EXIT_OK


def cmd_test_notify(args: argparse.Namespace) -> int:
    """Send a test notification through each receiver; report each outcome."""
    from lagwatch.alerting.alerter import build_receiver
    from lagwatch.alerting.message import test_messages
    from lagwatch.alerting.retry import DeliveryError

    config = load_config(args.config)
    _setup_logging("error", config.secrets())
    receivers = [r for r in config.alerting.receivers
                 if args.receiver is None or r.name == args.receiver]
    if not receivers:
        known = ", ".join(r.name for r in config.alerting.receivers) or "none configured"
        which = f"no receiver is named {args.receiver!r}" if args.receiver else "no receivers"
        raise UsageError(f"alerting.receivers: {which} (receivers: {known})")
    failed = 0
    for receiver_config in receivers:
        receiver = build_receiver(receiver_config)
        ref = None
        try:
            for message in test_messages(time.time()):
                if message.resolved and receiver_config.slack is not None:
                    continue  # one message is enough to see in a channel
                ref = receiver.deliver(message, ref, f"test-notify#{message.action}")
        except DeliveryError as exc:
            failed += 1
            print(f"{receiver.name}: failed: {exc.detail}")
            continue
        print(f"{receiver.name}: ok ({receiver.channel})")
    return EXIT_WARNING if failed else EXIT_OK


def format_table(reports: Sequence[ClusterReport]) -> str:
    """Render reports for people: one line per group and topic, reasons beneath."""
    lines: list[str] = []
    for r in reports:
        meta = r.snapshot.meta
        brokers = f", {len(meta.brokers)} broker(s)" if meta else ""
        lines.append(f"cluster {r.cluster}: {len(r.groups)} group(s){brokers}")
        rows = [("GROUP", "TOPIC", "STATUS", "STATE", "MEMBERS", "LAG", "TIME LAG")]
        notes: list[str] = []
        for g in r.groups:
            rows.append((g.group_id, "", str(g.status), g.state, _num(g.members),
                         _num(g.lag_messages), _secs(g.lag_seconds)))
            rows.extend(("", t.topic, "", "", "", _num(t.lag_messages), _secs(t.lag_seconds))
                        for t in g.topics)
            notes.extend(f"  {g.group_id}: {reason}" for reason in g.reasons)
            notes.extend(f"  {g.group_id}: [{f.kind}, {f.severity}] {f.reason}"
                         for f in g.findings)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines.extend("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)
        lines.extend(notes)
        lines.extend(f"  cluster: [{f.kind}, {f.severity}] {f.reason}"
                     for f in r.verdict.cluster_findings)
        lines.extend(f"  poll error: {e}" for e in r.errors)
    return "\n".join(lines)


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}s"


_COMMANDS = {"run": cmd_run, "check": cmd_check, "audit": cmd_audit,
             "validate": cmd_validate, "test-notify": cmd_test_notify}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the lagwatch console script."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.verb](args)
    except (ConfigError, UsageError) as exc:
        print(f"lagwatch: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        return 130
