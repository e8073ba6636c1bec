"""``airlock audit``: check and read the gateway's audit log."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import click

from airlock._cli.common import fail

if TYPE_CHECKING:
    from airlock.gate.audit import AuditEntry, AuditLog

T = TypeVar("T")
EXIT_INTACT, EXIT_TAMPERED = 0, 1  # errors exit 2, through airlock.cli.fail
_DB_HELP = (
    "Audit database: a SQLite file or a postgresql:// URL "
    "[default: $AIRLOCK_DB, else ~/.local/share/airlock/airlock.db]."
)

db_option = click.option("--db", "db", metavar="PATH|URL", help=_DB_HELP)


@click.group("audit")
def audit() -> None:
    """Check and read the gateway's audit log: one row per request, in a hash chain.

    The log lives in the results database unless --db says otherwise (tables audit_log
    and audit_head). Exit codes: 0 intact, 1 tampered (verify), 2 usage or database error.
    """


@audit.command("verify")
@db_option
@click.option(
    "--expect-head",
    metavar="SEQ:HASH",
    help="A head written down earlier (airlock audit head): also detects a shortened "
    "or rebuilt log.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(db: str | None, expect_head: str | None, as_json: bool) -> None:
    """Check the hash chain. Exit codes: 0 intact, 1 tampered, 2 error."""
    from airlock.gate.audit import Head

    expected = None
    if expect_head is not None:
        try:
            expected = Head.parse(expect_head)
        except ValueError as e:
            fail(f"--expect-head: {e}")
    with _open(db) as log:
        res = _guard(lambda: log.verify(expected))
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
    else:
        for p in res.problems[:20]:
            click.echo(f"seq {p.seq:>8}  {p.kind:<13} {_clean(p.message)}", err=True)
        word = "intact" if res.ok else f"TAMPERED ({res.problem_count} problems)"
        click.echo(f"{word}: {res.rows} rows, head {res.head}")
    sys.exit(EXIT_INTACT if res.ok else EXIT_TAMPERED)


@audit.command("head")
@db_option
def head_cmd(db: str | None) -> None:
    """Print the newest row as SEQ:HASH, to check the log against later.

    Keep it where the database's writers cannot reach (a log, a ticket) and pass it to
    `airlock audit verify --expect-head`: that detects rows removed from the end, and a
    chain rebuilt from scratch, which the chain alone cannot show."""
    with _open(db) as log:
        click.echo(str(_guard(log.head)))


@audit.command("tail")
@db_option
@click.option(
    "-n", "--lines", default=20, show_default=True, type=click.IntRange(0), help="Rows to show."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new rows (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
def tail_cmd(db: str | None, lines: int, follow: bool, as_json: bool) -> None:
    """Show the newest rows, oldest first."""
    show: Callable[[AuditEntry], None] = _print_json if as_json else _print_line
    with _open(db) as log:
        rows = _guard(lambda: log.tail(lines))
        for entry in rows:
            show(entry)
        if not follow:
            return
        last = rows[-1].seq if rows else _guard(log.head).seq
        try:
            for entry in _guard_iter(log.follow(last)):
                show(entry)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how --follow ends


@audit.command("export")
@db_option
@click.option(
    "-f",
    "--format",
    "fmt",
    default="jsonl",
    show_default=True,
    type=click.Choice(["jsonl", "csv"]),
    help="JSON lines, or CSV with the stored values.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here, not stdout.")
@click.option("--since", metavar="TIME", help="Rows at or after this ISO 8601 date or time.")
@click.option("--until", metavar="TIME", help="Rows before this ISO 8601 date or time.")
def export_cmd(
    db: str | None, fmt: str, output: Path | None, since: str | None, until: str | None
) -> None:
    """Write the rows out in seq order (streamed: any size of log)."""
    from airlock.gate.audit_record import iso_utc

    for flag, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                iso_utc(value)
            except ValueError as e:
                fail(f"{flag}: {e}")
    with _open(db) as log, _sink(output) as stream:
        n = _guard(lambda: log.export(stream, fmt, since, until))
    if output is not None:
        click.echo(f"{n} rows written to {output}", err=True)


@contextmanager
def _open(db: str | None) -> Iterator[AuditLog]:
    from airlock.gate.audit import AuditError, AuditLog

    try:
        log = AuditLog(db, create=False)
    except AuditError as e:
        fail(str(e))
    try:
        yield log
    finally:
        log.close()


@contextmanager
def _sink(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8", newline="") as f:
            yield f
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")


def _guard(call: Callable[[], T]) -> T:
    """Run a read; a database error exits 2 with its message."""
    from airlock.gate.audit import AuditError

    try:
        return call()
    except AuditError as e:
        fail(str(e))


def _guard_iter(items: Iterator[AuditEntry]) -> Iterator[AuditEntry]:
    from airlock.gate.audit import AuditError

    try:
        yield from items
    except AuditError as e:
        fail(str(e))


def _print_line(e: AuditEntry) -> None:
    r = e.record
    ms = f"{r.latency_ms:.1f}ms"
    parts = [
        f"{e.seq:>7}",
        r.time,
        f"{r.decision:<19}",
        f"{r.status:>3}",
        f"{ms:>9}",
        f"key={r.key_id or '-'}",
        f"model={r.model or '-'}",
    ]
    if r.blocked_by:
        parts.append(f"blocked_by={r.blocked_by}")
    if r.error:
        parts.append(f"error={r.error}")
    click.echo(_clean(" ".join(parts), 400))


def _print_json(e: AuditEntry) -> None:
    click.echo(json.dumps(e.to_dict(), ensure_ascii=False))


def _clean(text: str, limit: int = 400) -> str:
    """Untrusted text (model names, upstream errors) fit for a terminal: no escapes."""
    from airlock.findings import shorten

    return shorten(text, limit)
