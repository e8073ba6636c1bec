"""Start-up cost matters in CI loops: the CLI must not import heavy parts it does not use."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_the_cli_does_not_load_the_http_stack_or_the_server() -> None:
    loaded = _modules_after("import airlock.cli")
    assert not {"aiohttp", "uvicorn", "jinja2", "rich"} & loaded


def test_the_probes_package_loads_its_client_only_when_asked() -> None:
    assert "aiohttp" not in _modules_after("import airlock.probes.model")
    assert "aiohttp" in _modules_after("from airlock.probes import run_campaign")
