"""The terminal summary of a probe campaign (rich, imported only when printing).

Per target: verdict and totals; a table of families (attempts, hits, rate, Wilson 95 %
interval); the failing probes; the censorship and backdoor comparisons. With several
targets the family table puts them side by side as columns. Every string that a model,
a target or a user controls goes through :func:`airlock.findings.shorten` and into rich
``Text`` objects, so neither escape sequences nor rich markup in it take effect.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from airlock.findings import shorten
from airlock.probes.result import CampaignResult, Comparison, ProbeSummary
from airlock.probes.stats import Rate
from airlock.report.probe_json import (
    TargetOverview,
    family_order,
    family_title,
    interval_text,
    measure_name,
    overview,
    pct,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

VERDICT_STYLE = {"FAIL": "bold white on red", "PASS": "bold green", "NO DATA": "bold yellow"}
SEVERITY_STYLE = {"critical": "bold white on dark_red", "high": "bold red", "medium": "yellow"}
GROUPS = {
    "censorship": ("sensitive topics", "control topics"),
    "backdoor": ("with trigger", "without trigger"),
}


def print_campaign(result: CampaignResult, console: Console, *, max_rows: int = 25) -> None:
    """Print the campaign: targets, family rates, failing probes, comparisons.

    Args:
        result: the campaign to show.
        console: where to print (the CLI's standard-error console).
        max_rows: at most this many failing probes per target are listed.
    """
    targets = overview(result)
    console.print(_headline(result))
    for t in targets:
        console.print(_target_line(t), soft_wrap=True)
    if any(t.families for t in targets):
        console.print(_family_table(targets))
    else:
        console.print("no probe was run", style="yellow")
    for t in targets:
        _print_failing(t, console, max_rows, several=len(targets) > 1)
    for kind in GROUPS:
        comps = [c for c in result.comparisons if c.kind == kind]
        if comps:
            console.print(_comparison_table(kind, comps))


def render_text(result: CampaignResult, *, width: int = 120) -> str:
    """The terminal summary as plain text (no colour), e.g. for logs and tests."""
    from rich.console import Console

    buf = io.StringIO()
    print_campaign(result, Console(file=buf, width=width, color_system=None, highlight=False))
    return buf.getvalue()


def _headline(result: CampaignResult) -> Text:
    from rich.text import Text

    line = Text()
    line.append(f" {result.verdict} ", style=VERDICT_STYLE[result.verdict])
    tot = result.totals
    line.append(f"  probe run {shorten(result.run_id, 80)} · ")
    line.append(f"{tot.get('attempts', 0)} attempts · {tot.get('errors', 0)} errors · ")
    line.append(f"{tot.get('cached', 0)} cached · {result.duration_s:.1f} s")
    if not result.complete:
        why = shorten(result.stop_reason, 200) or "stopped early"
        line.append(f"  incomplete ({why}; resumable)", style="bold yellow")
    return line


def _target_line(t: TargetOverview) -> Text:
    from rich.text import Text

    line = Text()
    line.append(f" {t.verdict:^7} ", style=VERDICT_STYLE[t.verdict])
    line.append(" " + shorten(t.info.name, 120), style="bold")
    if t.info.model:
        line.append(f"  {shorten(t.info.model, 120)}", style="cyan")
    if t.info.url:
        line.append(f"  {shorten(t.info.url, 200)}", style="dim")
    r = t.total
    line.append(f"  {r.n} attempts · {r.hits} hits · {r.errors} errors · ")
    line.append(f"{len(t.failing)} probes above threshold", style="red" if t.failing else "")
    return line


def _family_table(targets: list[TargetOverview]) -> Table:
    from rich.table import Table
    from rich.text import Text

    families = family_order(f for t in targets for f in t.families)
    table = Table(title="Families (rate, Wilson 95 % interval)", title_justify="left")
    table.add_column("Family")
    if len(targets) == 1:
        for name in ("Attempts", "Hits", "Rate", "95 % CI", "Errors", "By language"):
            table.add_column(name, justify="right")
        for fam in families:
            langs = targets[0].families[fam]
            r = langs["all"]
            cells = (str(r.n), str(r.hits), _rate_text(r), interval_text(r), str(r.errors))
            table.add_row(_family_cell(fam), *cells, _by_lang(langs))
        return table
    for t in targets:
        table.add_column(Text(shorten(t.info.name, 40)), justify="right")
    for fam in families:
        side = [
            _side_cell(t.families.get(fam, {}), any(p.family == fam for p in t.failing))
            for t in targets
        ]
        table.add_row(_family_cell(fam), *side)
    return table


def _by_lang(langs: dict[str, Rate]) -> str:
    """``en 20.0 % · zh 80.0 %``: the refusals of one language often fail in another."""
    return " · ".join(
        f"{shorten(lang, 8)} {_rate_text(r)}" for lang, r in langs.items() if lang != "all"
    )


def _family_cell(family: str) -> Text:
    from rich.text import Text

    text = Text(family_title(family))
    if measure_name(family) != "attack success rate":
        text.append(f"\n({measure_name(family)})", style="dim")
    return text


def _side_cell(langs: dict[str, Rate], failing: bool) -> Text:
    from rich.text import Text

    r = langs.get("all")
    if r is None or not r.n:
        return Text("no attempts" if r is None or not r.errors else f"{r.errors} errors", "dim")
    text = Text()
    text.append(_rate_text(r), style="bold red" if failing else "bold")
    text.append(f" {r.hits}/{r.n}\n")
    text.append(interval_text(r), style="dim")
    if r.errors:
        text.append(f" · {r.errors} err", style="yellow")
    if len(langs) > 2:  # more than one language besides "all"
        text.append("\n" + _by_lang(langs), style="dim")
    return text


def _print_failing(t: TargetOverview, console: Console, max_rows: int, several: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if not t.failing:
        return
    title = Text("Probes above their threshold")
    if several:
        title.append(f" ({shorten(t.info.name, 60)})")
    table = Table(title=title, title_justify="left")
    rows = [_failing_row(p) for p in t.failing[:max_rows]]
    heads = ("Severity", "Probe", "Lang", "Title", "Rate > threshold", "Hits", "95 % CI")
    widths = [min(40, max(len(h), *(len(r[i]) for r in rows))) for i, h in enumerate(heads)]
    room = console.width - (sum(widths) - widths[3]) - 3 * len(heads) - 1
    with_title = room >= 16  # a narrow terminal keeps the numbers and drops the title
    for i, (head, width) in enumerate(zip(heads, widths, strict=True)):
        if i != 3:
            table.add_column(head, justify="right" if i > 3 else "left", min_width=width)
        elif with_title:
            table.add_column(head, overflow="ellipsis", no_wrap=True, max_width=min(40, room))
    for row in rows:
        cells = [Text(c) for i, c in enumerate(row) if with_title or i != 3]
        cells[0].stylize(SEVERITY_STYLE.get(row[0], ""))
        if with_title:
            cells[3].stylize("dim")
        table.add_row(*cells)
    console.print(table)
    if len(t.failing) > max_rows:
        more = len(t.failing) - max_rows
        console.print(Text(f"… {more} more; --format html or json lists all", style="dim"))


def _failing_row(p: ProbeSummary) -> tuple[str, ...]:
    r = p.rate
    return (
        str(p.severity),
        shorten(p.probe, 80),
        shorten(p.lang, 8),
        shorten(p.title, 200),
        f"{_rate_text(r)} > {pct(p.threshold)}",
        f"{r.hits}/{r.n}",
        interval_text(r),
    )


def _comparison_table(kind: str, comps: list[Comparison]) -> Table:
    """Pooled rows (all languages) and significant ones; the HTML and JSON have every row."""
    from rich.table import Table
    from rich.text import Text

    a_name, b_name = GROUPS[kind]
    title = (
        "Refusal or deflection rate: sensitive vs control topics"
        if kind == "censorship"
        else "Backdoor trigger scan: hit rate with vs without the trigger"
    )
    shown = [c for c in comps if c.lang == "all" or c.significant] or comps
    if len(shown) < len(comps):
        title += f" ({len(comps) - len(shown)} more rows in the HTML and JSON reports)"
    table = Table(title=title, title_justify="left")
    for col in ("Target", "Label", "Lang", a_name, b_name, "p (Fisher)", ""):
        table.add_column(col, overflow="fold")
    for c in sorted(shown, key=lambda c: (c.target, c.lang != "all", c.label, c.lang)):
        mark = Text("significant", style="bold") if c.significant else Text("")
        table.add_row(
            Text(shorten(c.target, 40)),
            Text(shorten(c.label, 60)),
            Text(shorten(c.lang, 8)),
            _pair_cell(c.a),
            _pair_cell(c.b),
            _p_text(c.p_value),
            mark,
        )
    return table


def _pair_cell(r: Rate) -> Text:
    from rich.text import Text

    return Text(f"{_rate_text(r)} ({r.hits}/{r.n})")


def _rate_text(r: Rate) -> str:
    return pct(r.rate) if r.n else "—"


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
