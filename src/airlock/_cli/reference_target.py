"""``airlock reference-target``: serve the deterministic test and demo fixture."""

from __future__ import annotations

import os

import click


@click.command("reference-target")
@click.option(
    "--profile",
    type=click.Choice(["naive", "guarded"]),
    default="naive",
    show_default=True,
    help="Default model (both reference-naive and reference-guarded are served).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8808,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0 picks a free one; the URL printed says which).",
)
@click.option(
    "--delay-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 60_000),
    help="Wait this long before each answer (stands in for model latency).",
)
@click.option(
    "--reasoning",
    type=click.Choice(["none", "think", "field"]),
    default="none",
    show_default=True,
    help="Show thoughts: in <think>…</think> (think) or in reasoning_content (field).",
)
@click.option(
    "--api-key-env",
    metavar="NAME",
    help="Require 'Authorization: Bearer <key>', the key read from this environment variable.",
)
def reference_target(
    profile: str, host: str, port: int, delay_ms: float, reasoning: str, api_key_env: str | None
) -> None:
    """Start the reference target: a deterministic OpenAI-compatible server for demos and
    tests. It is a fixture with planted weaknesses, not a model."""
    from airlock._cli.common import fail
    from airlock.targets.reference.app import Settings
    from airlock.targets.reference.server import serve

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            fail(f"environment variable {api_key_env} is not set or empty")
    models = Settings(profile).model_names

    def announce(url: str) -> None:
        click.echo(f"reference target (a test fixture, not a model) at {url}")
        click.echo(f"models: {', '.join(models)}")
        click.echo("press Ctrl-C to stop")

    try:
        serve(profile, host, port, delay_ms / 1000, reasoning, api_key, announce=announce)
    except KeyboardInterrupt:  # uvicorn has shut down and passes Ctrl-C on: a clean stop
        pass
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
