"""The ``airlock`` command: a thin shell that parses arguments, calls the library, prints.

Exit codes: 0 nothing at or above ``--fail-on``; 1 findings at or above it (or, for
``verify``, files that differ from the lock); 2 usage or I/O error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from airlock import __version__
from airlock.findings import Severity

if TYPE_CHECKING:
    from rich.console import Console

EXIT_USAGE = 2
SEVERITIES = [str(s) for s in sorted(Severity, reverse=True)]
DB_HELP = (
    "Results database: a SQLite file or a postgresql:// URL "
    "[default: $AIRLOCK_DB, else ~/.local/share/airlock/airlock.db]."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="airlock")
def main() -> None:
    """airlock: adopt open-weight models without importing their risks."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    default="text",
    type=click.Choice(["text", "json", "sarif", "cyclonedx", "html"]),
    help="Report format (text: terminal summary).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the report here instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Exit 1 when a finding is at or above this severity [default: high].",
)
@click.option(
    "--policy", "policy_path", type=click.Path(path_type=Path), help="Policy file (airlock.toml)."
)
@click.option("--no-hash", is_flag=True, help="Skip sha256 hashing (no lock is written).")
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path),
    help="Where to write airlock.lock [default: inside the scanned directory].",
)
@click.option("--no-lock", is_flag=True, help="Do not write airlock.lock.")
@click.option(
    "--db",
    "db_path",
    metavar="PATH|URL",
    help=DB_HELP,
)
@click.option("--no-db", is_flag=True, help="Do not record the run in the results database.")
@click.option("-q", "--quiet", is_flag=True, help="No terminal summary.")
def scan(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    policy_path: Path | None,
    no_hash: bool,
    lock_path: Path | None,
    no_lock: bool,
    db_path: str | None,
    no_db: bool,
    quiet: bool,
) -> None:
    """Statically audit model files, directories, HF cache folders or archives."""
    from airlock._cli.scan import run_scan

    sys.exit(run_scan(**click.get_current_context().params))


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path),
    help="Lock file [default: PATH/airlock.lock].",
)
@click.option("-f", "--format", "fmt", default="text", type=click.Choice(["text", "json"]))
def verify(path: Path, lock_path: Path | None, fmt: str) -> None:
    """Check files against the airlock.lock a scan wrote: added, removed, changed."""
    from airlock._cli.verify import run_verify

    sys.exit(run_verify(path, lock_path, fmt))


@main.command()
@click.option(
    "-f", "--format", "fmt", default="text", type=click.Choice(["text", "json", "markdown"])
)
def rules(fmt: str) -> None:
    """List every rule: id, severity, title and remediation."""
    from airlock._cli.misc import run_rules

    run_rules(fmt)


@main.command()
@click.option("--db", "db_path", metavar="PATH|URL", help=DB_HELP)
@click.option("-n", "--limit", default=20, show_default=True)
def history(db_path: str | None, limit: int) -> None:
    """List recent runs from the results database."""
    from airlock._cli.misc import run_history

    sys.exit(run_history(db_path, limit))


@main.command()
@click.argument("run_id")
@click.option(
    "-f",
    "--format",
    "fmt",
    default="html",
    type=click.Choice(["json", "sarif", "cyclonedx", "html"]),
)
@click.option("-o", "--output", type=click.Path(path_type=Path))
@click.option("--db", "db_path", metavar="PATH|URL", help=DB_HELP)
def report(run_id: str, fmt: str, output: Path | None, db_path: str | None) -> None:
    """Render a stored run again, in any format."""
    from airlock._cli.misc import run_report

    sys.exit(run_report(run_id, fmt, output, db_path))


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


if __name__ == "__main__":  # pragma: no cover
    main()
