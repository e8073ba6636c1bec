"""The ``airlock`` command: a thin shell that parses arguments, calls the library, prints.

Exit codes: 0 nothing at or above ``--fail-on``; 1 findings at or above it (or, for
``verify``, files that differ from the lock); 2 usage or I/O error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from airlock import __version__
from airlock._cli.common import EXIT_USAGE, console, fail, warn, write_output
from airlock.findings import Severity
from airlock.probes.model import FAMILIES

__all__ = ["EXIT_USAGE", "console", "fail", "main", "warn", "write_output"]

if TYPE_CHECKING:
    pass

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
def scan(**params: Any) -> None:
    """Statically audit model files, directories, HF cache folders or archives."""
    from airlock._cli.scan import run_scan

    sys.exit(run_scan(**params))  # run_scan names and types every option


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
    type=click.Choice(["json", "sarif", "cyclonedx", "html", "junit", "jsonl"]),
    help="Scans: json, sarif, cyclonedx, html. Probe campaigns: json, junit, html, jsonl.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path))
@click.option("--db", "db_path", metavar="PATH|URL", help=DB_HELP)
def report(run_id: str, fmt: str, output: Path | None, db_path: str | None) -> None:
    """Render a stored run again, in any format."""
    from airlock._cli.misc import run_report

    sys.exit(run_report(run_id, fmt, output, db_path))


@main.command(context_settings={"max_content_width": 100})
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="URL",
    help="OpenAI-compatible base URL (…/v1); repeat to compare targets side by side.",
)
@click.option(
    "--model", "models", multiple=True, metavar="NAME", help="Model name, one per --target."
)
@click.option(
    "--name", "names", multiple=True, metavar="LABEL", help="Report label, one per --target."
)
@click.option(
    "--api-key-env",
    "api_key_envs",
    multiple=True,
    metavar="VAR",
    help="Environment variable holding the API key (once, or once per --target).",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Extra header for every request; a value 'env:VAR' is read from the environment.",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per request.")
@click.option("--stream", is_flag=True, help="Ask for streamed (SSE) answers.")
@click.option("--families", metavar="A,B", help=f"Probe families [all]: {', '.join(FAMILIES)}.")
@click.option("--langs", metavar="en,zh", help="Languages [en,zh].")
@click.option("--probes", "probes", multiple=True, metavar="GLOB", help="Only probe ids matching.")
@click.option(
    "--probe-file",
    "probe_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra probe pack (YAML); repeatable.",
)
@click.option("--quick", is_flag=True, help="A representative subset (~15 %) of every family.")
@click.option(
    "--trigger",
    "triggers",
    multiple=True,
    metavar="TEXT",
    help="Extra candidate backdoor trigger; repeatable.",
)
@click.option("--seed", default=0, show_default=True, help="Campaign seed (canaries, order).")
@click.option("--generations", default=1, show_default=True, help="Attempts per probe and target.")
@click.option("--temperature", type=float, help="Sampling temperature sent to the target.")
@click.option("--sample-seed", type=int, help="Seed sent to the target with each request.")
@click.option("--max-tokens", type=int, help="max_tokens sent with each request.")
@click.option("--concurrency", default=16, show_default=True, help="Requests in flight.")
@click.option("--rps", default=0.0, help="Requests per second over all targets [no limit].")
@click.option("--retries", default=3, show_default=True, help="Retries on 429, 5xx, timeouts.")
@click.option("--max-requests", type=int, help="Budget: stop (resumable) after this many requests.")
@click.option("--max-tokens-total", type=int, help="Budget: stop after this many tokens.")
@click.option(
    "--cache",
    is_flag=True,
    help="Cache answers; reuse those of earlier --cache runs for identical requests.",
)
@click.option(
    "--resume", metavar="RUN_ID", help="Resume a stopped campaign with its stored settings."
)
@click.option("--judge-url", metavar="URL", help="Optional LLM judge: OpenAI-compatible base URL.")
@click.option("--judge-model", metavar="NAME", help="The judge's model name.")
@click.option(
    "--judge-api-key-env", metavar="VAR", help="Environment variable with the judge's key."
)
@click.option(
    "--judge-mode",
    type=click.Choice(["confirm", "decide"]),
    default="confirm",
    show_default=True,
    help="confirm: a hit needs detectors and judge; decide: the judge decides.",
)
@click.option("--threshold", type=float, help="Fail a probe above this success rate [pack's, 0].")
@click.option("--no-preflight", is_flag=True, help="Skip the endpoint check before the campaign.")
@click.option(
    "-f",
    "--format",
    "fmt",
    default="text",
    type=click.Choice(["text", "json", "jsonl", "junit", "html"]),
    help="Report format.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the report here.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Write summary.json, attempts.jsonl, junit.xml and report.html here.",
)
@click.option("--db", "db_path", metavar="PATH|URL", help=DB_HELP)
@click.option("--list", "list_probes", is_flag=True, help="List the selected probe cases and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or terminal summary.")
def probe(**params: Any) -> None:
    """Red-team a live model endpoint: injection, leaks, jailbreaks, code, censorship, triggers.

    Exit codes: 0 no probe above its threshold, 1 some are, 2 usage or endpoint error,
    130 interrupted (resume with --resume RUN_ID or by running the same command again).
    """
    from airlock._cli.probe import run_probe

    sys.exit(run_probe(params))


def _register_commands() -> None:
    from airlock._cli.audit import audit
    from airlock._cli.gate import gate
    from airlock._cli.reference_target import reference_target

    main.add_command(reference_target, "reference-target")
    main.add_command(gate, "gate")
    main.add_command(audit, "audit")


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
