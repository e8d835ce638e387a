"""A live status table in the terminal, read from lagwatch's JSON API every few seconds.

On a terminal it redraws in place; otherwise (a pipe, a log) it prints the table every
``quiet_every_s`` seconds. ``render`` is pure: the status document in, the text out.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

CLEAR = "\033[H\033[2J"
COLOR = {"critical": "\033[31m", "warning": "\033[33m", "none": ""}
RESET = "\033[0m"


def render(document: dict[str, Any], base_url: str, color: bool = False,
           log: str | None = None, broker: str | None = None) -> str:
    """Return the status table: one line per group, its reasons and findings beneath."""
    lines = [f"lagwatch demo — metrics {base_url}/metrics · status {base_url}/api/v1/status"
             f" · incidents {base_url}/api/v1/incidents · Ctrl-C stops everything"]
    if log is not None:
        lines.append(f"lagwatch's log: {log}")
    if broker is not None:
        lines.append(f"Kafka at {broker}: audit it with .venv/bin/lagwatch audit "
                     f"--bootstrap-server {broker} (or {base_url}/api/v1/audit)")
    lines.append("")
    for name, cluster in document["clusters"].items():
        up = "up" if cluster["up"] else "UNREACHABLE"
        lines.append(f"cluster {name} ({up}), last poll {cluster.get('last_poll') or '-'}")
        rows = [("GROUP", "STATUS", "MEMBERS", "LAG", "TIME LAG")]
        notes: list[tuple[str, str]] = []
        for group_id, g in sorted(cluster["groups"].items()):
            rows.append((group_id, g["status"], _num(g["members"]), _num(g["lag_messages"]),
                         "-" if g["lag_seconds"] is None else f"{g['lag_seconds']:,.0f}s"))
            notes += [(g["severity"], f"  {group_id}: {r}") for r in g["reasons"]]
            notes += [(f["severity"], f"  {group_id}: [{f['kind']}] {f['reason']}")
                      for f in g["findings"] if f["severity"] != "none"]
        notes += [(f["severity"], f"  cluster: [{f['kind']}] {f['reason']}")
                  for f in cluster.get("findings", []) if f["severity"] != "none"]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
        if notes:
            lines += ["", "  why:"]
            lines += [f"{COLOR[s]}{text}{RESET}" if color and COLOR[s] else text
                      for s, text in notes]
        lines.append("")
    return "\n".join(lines)


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def watch(base_url: str, stop: threading.Event, out: TextIO = sys.stdout,
          every_s: float = 2.0, quiet_every_s: float = 15.0, *, log: str | None = None,
          broker: str | None = None) -> None:
    """Redraw the table until ``stop`` is set."""
    tty = out.isatty()
    last_print = 0.0
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{base_url}/api/v1/status", timeout=5) as answer:  # noqa: S310 - the local daemon
                document = json.loads(answer.read())
            text = render(document, base_url, color=tty, log=log, broker=broker)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            text = f"lagwatch demo: waiting for {base_url} ({exc})"
        if tty:
            out.write(CLEAR + text + "\n")
            out.flush()
        elif time.monotonic() - last_print >= quiet_every_s:
            out.write(text + "\n")
            out.flush()
            last_print = time.monotonic()
        stop.wait(every_s)
