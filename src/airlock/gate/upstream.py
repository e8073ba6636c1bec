"""Calling upstreams in order: the next one is tried on connection errors, 5xx and timeouts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import aiohttp

from airlock.gate.config import Upstream
from airlock.gate.http import HTTPError


@dataclass
class Opened:
    """An upstream response whose headers have arrived (the body is still to be read)."""

    upstream: Upstream
    response: aiohttp.ClientResponse
    failures: list[str]


class Upstreams:
    """One pooled HTTP client for every upstream; failover in configuration order."""

    def __init__(self, max_connections: int = 512) -> None:
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max, ttl_dns_cache=300),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def open(
        self, ups: tuple[Upstream, ...], path: str, body: dict[str, Any], on_error: Any = None
    ) -> Opened:
        """POST ``body`` (with each upstream's model name) to the first upstream that answers.

        The caller reads and closes ``Opened.response``. A 4xx answer is returned as is (the
        request is wrong everywhere); connection errors, timeouts and 5xx try the next.

        Raises:
            HTTPError: 502 (or 504 if the last one timed out) when every upstream failed.
        """
        failures: list[str] = []  # for the audit and metrics: upstream addresses, no secrets
        reasons: list[str] = []  # for the client: no addresses
        timed_out = False
        for up in ups:
            headers = {"Content-Type": "application/json"}
            key = os.environ.get(up.api_key_env) if up.api_key_env else None
            if key:
                headers["Authorization"] = f"Bearer {key}"
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=min(up.timeout, 10), sock_read=up.timeout
            )
            try:
                resp = await self.session().post(
                    f"{up.base}{path}",
                    json={**body, "model": up.model},
                    headers=headers,
                    timeout=timeout,
                )
            except TimeoutError:
                reasons.append("timed out")
                timed_out = True
            except aiohttp.ClientError as e:
                reasons.append(type(e).__name__)
                timed_out = False
            else:
                if resp.status < 500:
                    return Opened(up, resp, failures)
                reasons.append(f"HTTP {resp.status}")
                resp.release()
                timed_out = False
            failures.append(f"{up.name}: {reasons[-1]}")
            if on_error is not None:
                on_error(up.name, reasons[-1])
        status = 504 if timed_out else 502
        raise HTTPError(
            status,
            f"every upstream failed ({len(reasons)} tried): " + "; ".join(reasons),
            type_="upstream_error",
            code="upstream_unavailable",
            detail="every upstream failed: " + "; ".join(failures),
        )
