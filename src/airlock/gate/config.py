"""``gate.yaml``: where the gateway listens, which upstreams serve which model names,
which guard scanners run, and what the audit log keeps.

Upstreams come only from this file, never from a request. Example::

    listen: {host: 127.0.0.1, port: 8900}
    database: ./gate.db            # audit log and client keys (or postgresql://…)
    auth: {required: true}         # clients need a key from `airlock gate keys create`
    models:
      qwen:                        # the public model name clients ask for
        - {url: "http://127.0.0.1:8000/v1", model: "Qwen/Qwen2.5-7B-Instruct", timeout: 60}
        - {url: "http://10.0.0.2:8000/v1", model: "Qwen/Qwen2.5-7B-Instruct"}  # fallback
    guard: default                 # off, default, or {input: {...}, output: {...}}
    audit: {store: redacted}       # full | redacted | hash
    limits: {max_body_bytes: 1048576, stream_window: 128, body_timeout_s: 30, max_n: 8}
    fields:                        # request fields: refused (400) / the only ones accepted
      deny: [chat_template, chat_template_kwargs]   # the default: client-side templates
      # allow: [model, messages, stream, temperature, top_p, max_tokens, stop, seed]
    media: {remote: false, allow_hosts: []}   # image/audio URLs the upstream would fetch
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.targets.base import public_url

STORE_MODES = ("full", "redacted", "hash")
# Server-side template fields (vLLM, SGLang): a client's own Jinja template would be
# rendered by the upstream — template injection from any client.
DEFAULT_DENY = ("chat_template", "chat_template_kwargs")


class ConfigError(ValueError):
    """The gate configuration is invalid; the message says where."""


@dataclass(frozen=True)
class Upstream:
    url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 60.0

    @property
    def base(self) -> str:
        return self.url.rstrip("/").removesuffix("/chat/completions")

    @property
    def name(self) -> str:
        """The base URL without user:password or query, for logs, metrics and the audit."""
        return public_url(self.base)


@dataclass(frozen=True)
class GateConfig:
    models: dict[str, tuple[Upstream, ...]]
    host: str = "127.0.0.1"
    port: int = 8900
    database: str | None = None
    auth_required: bool = True
    guard: Any = "default"  # "off" | "default" | mapping for guard.Pipeline.from_config
    store: str = "redacted"
    max_body_bytes: int = 1 << 20
    stream_window: int = 128
    body_timeout_s: int = 30  # a client gets this long to send its whole body (slowloris)
    # Request fields the gateway refuses (400), and, when set, the only ones it accepts.
    deny_fields: tuple[str, ...] = DEFAULT_DENY
    allow_fields: tuple[str, ...] | None = None
    max_n: int = 8  # choices per request (cost)
    # Media URLs in content parts: the upstream would fetch them (SSRF); data: URLs pass.
    remote_media: bool = False
    media_hosts: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def load_config(path: str | Path) -> GateConfig:
    """Read and validate a gate.yaml.

    Raises:
        ConfigError: unreadable file, bad YAML, or a value of the wrong shape.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return parse_config(data, str(path))


def parse_config(data: Any, where: str = "gate.yaml") -> GateConfig:
    """Validate an already-parsed configuration mapping.

    Raises:
        ConfigError: a value of the wrong shape, naming the key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping")
    known = {"listen", "database", "auth", "models", "guard", "audit", "limits", "fields", "media"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    listen = _mapping(data.get("listen", {}), f"{where}: listen")
    fields = _mapping(data.get("fields", {}), f"{where}: fields")
    media = _mapping(data.get("media", {}), f"{where}: media")
    limits = _mapping(data.get("limits", {}), f"{where}: limits")
    audit = _mapping(data.get("audit", {}), f"{where}: audit")
    auth = _mapping(data.get("auth", {}), f"{where}: auth")
    store = audit.get("store", "redacted")
    if store not in STORE_MODES:
        raise ConfigError(f"{where}: audit.store must be one of {', '.join(STORE_MODES)}")
    guard = data.get("guard", "default")
    if guard is False:
        guard = "off"
    if not (guard in ("off", "default") or isinstance(guard, dict)):
        raise ConfigError(f"{where}: guard must be off, default or a mapping")
    database = data.get("database")
    if database is not None and not isinstance(database, str):
        raise ConfigError(f"{where}: database must be a path or a postgresql:// URL")
    return GateConfig(
        models=_models(data.get("models"), where),
        host=str(listen.get("host", "127.0.0.1")),
        port=_int(listen.get("port", 8900), f"{where}: listen.port", 0, 65535),
        database=database,
        auth_required=bool(auth.get("required", True)),
        guard=guard,
        store=store,
        max_body_bytes=_int(
            limits.get("max_body_bytes", 1 << 20), f"{where}: limits.max_body_bytes", 1024, 1 << 30
        ),
        stream_window=_int(
            limits.get("stream_window", 128), f"{where}: limits.stream_window", 0, 1 << 20
        ),
        body_timeout_s=_int(
            limits.get("body_timeout_s", 30), f"{where}: limits.body_timeout_s", 1, 3600
        ),
        deny_fields=_names(fields.get("deny", list(DEFAULT_DENY)), f"{where}: fields.deny"),
        allow_fields=(
            None
            if fields.get("allow") is None
            else _names(fields["allow"], f"{where}: fields.allow")
        ),
        max_n=_int(limits.get("max_n", 8), f"{where}: limits.max_n", 1, 128),
        remote_media=_bool(media.get("remote", False), f"{where}: media.remote"),
        media_hosts=tuple(
            h.lower() for h in _names(media.get("allow_hosts", []), f"{where}: media.allow_hosts")
        ),
    )


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false")
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of field names")
    return tuple(value)


def _models(value: Any, where: str) -> dict[str, tuple[Upstream, ...]]:
    models = _mapping(value, f"{where}: models")
    if not models:
        raise ConfigError(f"{where}: models: name at least one public model and its upstreams")
    out: dict[str, tuple[Upstream, ...]] = {}
    for name, ups in models.items():
        if isinstance(ups, dict):
            ups = [ups]
        if not isinstance(ups, list) or not ups:
            raise ConfigError(f"{where}: models.{name}: a list of upstreams")
        out[str(name)] = tuple(
            _upstream(u, f"{where}: models.{name}[{i}]") for i, u in enumerate(ups)
        )
    return out


def _upstream(value: Any, where: str) -> Upstream:
    u = _mapping(value, where)
    url, model = u.get("url"), u.get("model")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: url must be an http(s) base URL (…/v1)")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}: model must name the upstream's model")
    timeout = u.get("timeout", 60.0)
    if not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise ConfigError(f"{where}: timeout must be seconds in (0, 3600]")
    key_env = u.get("api_key_env")
    if key_env is not None and not isinstance(key_env, str):
        raise ConfigError(f"{where}: api_key_env must name an environment variable")
    return Upstream(url, model, key_env, float(timeout))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where} must be an integer in [{lo}, {hi}]")
    return value
