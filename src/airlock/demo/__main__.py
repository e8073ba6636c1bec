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
    console.print(f"also written: {out_dir / 'report.sarif'}", soft_wrap=True)
    console.print(f"              {out_dir / 'report.cdx.json'}", soft_wrap=True)
    console.print(f"              {model / 'airlock.lock'}", soft_wrap=True)
    console.print(f"[bold]report:[/bold] {report}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
