"""An audit for people: plain text for a terminal, Markdown for a wiki page or a
post-mortem (a checkbox list like the original checklist)."""

from __future__ import annotations

from collections.abc import Iterable

from lagwatch.audit.items import ClusterAudit, GroupAudit, Item, Outcome
from lagwatch.text import fmt_duration, fmt_time


def summary(items: Iterable[Item]) -> str:
    """``7 pass, 2 warn, 1 fail, 4 not observable`` (outcomes that occur, in that order)."""
    found = [i.outcome for i in items]
    return ", ".join(f"{found.count(o)} {o}" for o in Outcome if found.count(o))


def to_text(audits: list[ClusterAudit]) -> str:
    """The report as plain text: a summary line per group, the items beneath."""
    lines: list[str] = []
    for a in audits:
        lines.append(f"cluster {a.cluster}: {summary(a.items)} "
                     f"(observed over {fmt_duration(a.observed_s)})")
        lines += _text_items(a.items)
        lines += [f"  could not read {e}" for e in a.errors]
        for g in a.groups:
            lines.append(f"group {g.group}: {summary(g.items)}")
            lines += _text_items(g.items)
    return "\n".join(lines)


def _text_items(items: Iterable[Item]) -> list[str]:
    lines = []
    for i in items:
        lines.append(f"  [{i.outcome}] {i.title}")
        lines += [f"      {e}" for e in i.evidence]
        if i.outcome in (Outcome.WARN, Outcome.FAIL):
            lines.append(f"      -> {i.advice}")
    return lines


def to_markdown(audits: list[ClusterAudit], now: float) -> str:
    """The report as Markdown: a checkbox per item, ticked when it passes."""
    lines = [f"# Production checklist, {fmt_time(now)}", ""]
    for a in audits:
        lines += [f"## Cluster `{a.cluster}`: {summary(a.items)}", "",
                  f"Observed over {fmt_duration(a.observed_s)}.", ""]
        lines += [f"- Could not read {e}" for e in a.errors]
        lines += _markdown_items(a.items)
        for g in a.groups:
            lines += _markdown_group(g)
    return "\n".join(lines).rstrip() + "\n"


def _markdown_group(g: GroupAudit) -> list[str]:
    return ["", f"### Group `{g.group}`: {summary(g.items)}", "", *_markdown_items(g.items)]


def _markdown_items(items: Iterable[Item]) -> list[str]:
    lines = []
    for i in items:
        box = "x" if i.outcome is Outcome.PASS else " "
        lines.append(f"- [{box}] **{i.title}**: {i.outcome}")
        lines += [f"  - {e}" for e in i.evidence]
        if i.outcome in (Outcome.WARN, Outcome.FAIL):
            lines.append(f"  - *What to do*: {i.advice}")
    return lines
