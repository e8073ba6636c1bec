"""``airlock gate``: serve the gateway; ``airlock gate keys``: manage client keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from airlock._cli.common import fail

if TYPE_CHECKING:
    from airlock.gate.config import GateConfig
    from airlock.gate.keys import KeyStore

DB_HELP = (
    "Key database: SQLite file or postgresql:// URL [default: the config's, else $AIRLOCK_DB]."
)


@click.group("gate", invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="gate.yaml: upstreams, guard scanners, audit policy.",
)
@click.option("--host", help="Override listen.host.")
@click.option("--port", type=click.IntRange(0, 65535), help="Override listen.port.")
@click.pass_context
def gate(ctx: click.Context, config_path: Path | None, host: str | None, port: int | None) -> None:
    """An OpenAI-compatible gateway that guards a live model (uvicorn).

    Routes each public model name to its upstreams (failover in order), runs the guard's
    input and output scanners (streaming on a sliding window), checks client keys and
    rate limits, and writes one tamper-evident audit row per request.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = config_path
        return
    if config_path is None:
        fail("give --config gate.yaml (see the README for an example)")
    config = _load(config_path)
    if host or port is not None:
        from dataclasses import replace

        config = replace(
            config, host=host or config.host, port=config.port if port is None else port
        )
    from airlock.gate.server import serve

    def announce(url: str) -> None:
        click.echo(f"airlock gate at {url} · models: {', '.join(config.models)}", err=True)

    try:
        serve(config, announce=announce)
    except OSError as e:
        fail(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}")


def _load(path: Path) -> GateConfig:
    from airlock.gate.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        fail(str(e))


def _keys(ctx: click.Context, db: str | None) -> KeyStore:
    from airlock.gate.keys import KeyStore
    from airlock.store import StoreError, default_db_path

    where = db
    if where is None and ctx.obj is not None:
        where = _load(ctx.obj).database
    try:
        return KeyStore(where or default_db_path())
    except StoreError as e:
        fail(str(e))


@gate.group("keys")
def keys() -> None:
    """Create, list and revoke client keys (stored hashed; shown once)."""


@keys.command("create")
@click.argument("name")
@click.option("--model", "models", multiple=True, help="Allowed public model; repeat [all].")
@click.option("--rpm", type=click.IntRange(1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(1), help="Tokens per minute.")
@click.option("--db", metavar="PATH|URL", help=DB_HELP)
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    models: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    db: str | None,
) -> None:
    """Create a key and print it (it cannot be shown again)."""
    store = _keys(ctx, db)
    key, text = store.create(name, models, rpm, tpm)
    store.close()
    click.echo(text)
    click.echo(f"key {key.id} ({name}) created; store it now, it is not kept", err=True)


@keys.command("list")
@click.option("--db", metavar="PATH|URL", help=DB_HELP)
@click.pass_context
def list_keys(ctx: click.Context, db: str | None) -> None:
    """List keys (ids, names, grants; never secrets)."""
    store = _keys(ctx, db)
    for k in store.list():
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        models = ",".join(k.models) or "*"
        click.echo(
            f"{k.id}\t{k.name}\t{models}\trpm={k.rpm or '-'}\ttpm={k.tpm or '-'}\t"
            f"{k.created_at}\t{state}"
        )
    store.close()


@keys.command("revoke")
@click.argument("key_id")
@click.option("--db", metavar="PATH|URL", help=DB_HELP)
@click.pass_context
def revoke(ctx: click.Context, key_id: str, db: str | None) -> None:
    """Revoke a key by id (takes effect within seconds on running gateways)."""
    store = _keys(ctx, db)
    ok = store.revoke(key_id)
    store.close()
    if not ok:
        fail(f"no active key {key_id!r}")
    click.echo(f"key {key_id} revoked", err=True)
