"""The readable terminal summary (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from airlock.findings import Severity
from airlock.scan.result import ScanResult

STYLE = {
    "critical": "bold white on dark_red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
VERDICT_STYLE = {"fail": "bold white on red", "warn": "bold black on yellow", "pass": "bold green"}


def print_scan(result: ScanResult, console: Console, *, max_rows: int = 40) -> None:
    """Print verdict, counts, licence and the most severe findings."""
    counts = result.counts()
    line = Text()
    line.append(f" {result.verdict.upper()} ", style=VERDICT_STYLE[result.verdict])
    line.append(f"  {len(result.files)} files · ")
    for sev, n in counts.items():
        line.append(f"{n} {sev}  ", style=STYLE[sev] if n else "dim")
    line.append(f"· {result.duration_s:.2f}s")
    console.print(line)
    _print_license(result, console)
    shown = [f for f in result.findings if f.severity >= Severity.LOW][:max_rows]
    if shown:
        table = Table(show_header=True, header_style="bold", expand=True, box=None)
        table.add_column("severity", no_wrap=True)
        table.add_column("rule", no_wrap=True, style="dim")
        table.add_column("where", overflow="fold", ratio=2)
        table.add_column("what", overflow="fold", ratio=3)
        for f in shown:
            where = f.path + (f":{f.line}" if f.line else "")
            if f.location:
                where += f" ({f.location})"
            what = f.title + (f" — {f.evidence}" if f.evidence else "")
            table.add_row(
                Text(str(f.severity), style=STYLE[str(f.severity)]),
                f.rule_id,
                Text(where),
                Text(what),
            )
        console.print(table)
    hidden = len(result.findings) - len(shown)
    if hidden > 0:
        console.print(
            f"[dim]… {hidden} more (info or beyond the first {max_rows}); "
            "see --format html or json for all[/dim]"
        )


def _print_license(result: ScanResult, console: Console) -> None:
    lic = result.license
    if not lic:
        return
    text = Text("licence: ", style="bold")
    text.append(str(lic.get("identifier", "?")))
    text.append(f" · commercial use: {lic.get('commercial', '?')}")
    console.print(text)
