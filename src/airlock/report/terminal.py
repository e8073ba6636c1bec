"""The readable terminal summary (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from airlock.findings import Severity, shorten
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
    for f in shown:
        sev = str(f.severity)
        head = Text(f"{sev.upper():9}", style=STYLE[sev])
        head.append(f"{f.rule_id}  ", style="bold")
        where = shorten(f.path, 400) + (f":{f.line}" if f.line else "")
        head.append(where + (f"  ({shorten(f.location, 200)})" if f.location else ""))
        console.print(head, soft_wrap=True)
        body = Text(" " * 9 + shorten(f.title, 400))
        if f.evidence:
            body.append(" — ")
            body.append(shorten(f.evidence), style="dim")
        console.print(body, soft_wrap=True)
    hidden = len(result.findings) - len(shown)
    if hidden > 0:
        console.print(
            f"[dim]… {hidden} more (info, or beyond the first {max_rows}); "
            "--format html or json lists all[/dim]"
        )


def _print_license(result: ScanResult, console: Console) -> None:
    lic = result.license
    if not lic:
        return
    text = Text("licence: ", style="bold")
    text.append(str(lic.get("identifier", "?")))
    text.append(f" · commercial use: {lic.get('commercial', '?')}")
    console.print(text)
