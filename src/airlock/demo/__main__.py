"""Run the demo: ``python -m airlock.demo [OUTPUT_DIR]``."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from airlock.demo.example import MARKER, build_example
from airlock.report import render
from airlock.report.terminal import print_scan
from airlock.scan import scan_path
from airlock.scan.integrity import write_lock
from airlock.store import Store


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0] if argv else "demo-output").resolve()
    console = Console(highlight=False)
    model = build_example(out_dir / "example-model")
    console.print(f"[bold]airlock demo[/bold]: scanning the generated example model {model}")
    result = scan_path(model)
    with Store(out_dir / "airlock.db") as store:
        store.save_scan(result)
    write_lock(model / "airlock.lock", result)
    print_scan(result, console)
    report = out_dir / "report.html"
    report.write_text(render(result, "html"), encoding="utf-8")
    (out_dir / "report.sarif").write_text(render(result, "sarif"), encoding="utf-8")
    (out_dir / "report.cdx.json").write_text(render(result, "cyclonedx"), encoding="utf-8")
    executed = any(p.name == MARKER for p in out_dir.rglob("*")) or Path(MARKER).exists()
    console.print(f"payloads executed during the scan: {'YES' if executed else 'none'}")
    probe_report = _probe(out_dir, console)
    console.print(f"also written: {out_dir / 'report.sarif'}", soft_wrap=True)
    console.print(f"              {out_dir / 'report.cdx.json'}", soft_wrap=True)
    console.print(f"              {model / 'airlock.lock'}", soft_wrap=True)
    console.print(f"              {probe_report} (probe campaign)", soft_wrap=True)
    console.print(f"[bold]report:[/bold] {report}", soft_wrap=True)
    return 0


def _probe(out_dir: Path, console: Console) -> Path:
    """Probe the reference target's two profiles side by side (quick subset)."""
    from airlock.probes import Selection, TargetConfig, run_campaign
    from airlock.report import render_campaign
    from airlock.report.probe_terminal import print_campaign
    from airlock.targets.reference.server import running

    console.print(
        "\n[bold]airlock demo[/bold]: probing the reference target — a deterministic "
        "test fixture with planted weaknesses, not a model — naive vs guarded profile"
    )
    with running("naive") as url:
        targets = [TargetConfig(url, "reference-naive"), TargetConfig(url, "reference-guarded")]
        result = run_campaign(
            targets, selection=Selection(quick=True), db=str(out_dir / "airlock.db")
        )
    print_campaign(result, console, max_rows=8)
    path = out_dir / "probe-report.html"
    path.write_text(render_campaign(result, "html"), encoding="utf-8")
    (out_dir / "probe-junit.xml").write_text(render_campaign(result, "junit"), encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
