"""What every command shares: the error exit, warnings, the summary console, output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

EXIT_USAGE = 2


def console() -> Console:
    """The terminal for summaries (standard error; standard output carries reports)."""
    from rich.console import Console  # imported late: start-up time matters in CI loops

    return Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    click.echo(f"airlock: warning: {message}", err=True)


def write_output(text: str, output: Path | None) -> None:
    """Write a report to a file or standard output; I/O errors exit 2."""
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")


def fail(message: str) -> NoReturn:
    """Print an error and exit 2 (usage or I/O error)."""
    click.echo(f"airlock: error: {message}", err=True)
    sys.exit(EXIT_USAGE)
