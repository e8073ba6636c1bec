"""Prometheus metrics for the gateway, kept in process memory, rendered as text."""

from __future__ import annotations

from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in pairs)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(pairs, esc, strict=True)) + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.scanner_hits: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.upstream_errors: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.in_flight = 0

    def request_done(self, model: str, decision: str, status: int, seconds: float) -> None:
        self.requests[(("model", model), ("decision", decision), ("status", str(status)))] += 1
        i = next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
        self.buckets[i] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def scanner_hit(self, scanner: str, stage: str, action: str) -> None:
        self.scanner_hits[(("scanner", scanner), ("stage", stage), ("action", action))] += 1

    def upstream_error(self, upstream: str, kind: str) -> None:
        self.upstream_errors[(("upstream", upstream), ("kind", kind))] += 1

    def render(self) -> str:
        out = [
            "# HELP airlock_gate_requests_total Requests by public model, decision and status.",
            "# TYPE airlock_gate_requests_total counter",
            *(
                f"airlock_gate_requests_total{_labels(k)} {v}"
                for k, v in sorted(self.requests.items())
            ),
            "# HELP airlock_gate_scanner_hits_total Guard scanner hits by scanner, stage, action.",
            "# TYPE airlock_gate_scanner_hits_total counter",
            *(
                f"airlock_gate_scanner_hits_total{_labels(k)} {v}"
                for k, v in sorted(self.scanner_hits.items())
            ),
            "# HELP airlock_gate_upstream_errors_total Failed upstream attempts.",
            "# TYPE airlock_gate_upstream_errors_total counter",
            *(
                f"airlock_gate_upstream_errors_total{_labels(k)} {v}"
                for k, v in sorted(self.upstream_errors.items())
            ),
            "# HELP airlock_gate_in_flight Requests being served.",
            "# TYPE airlock_gate_in_flight gauge",
            f"airlock_gate_in_flight {self.in_flight}",
            "# HELP airlock_gate_request_duration_seconds Time from request to last byte.",
            "# TYPE airlock_gate_request_duration_seconds histogram",
        ]
        acc = 0
        for b, n in zip(BUCKETS, self.buckets, strict=False):
            acc += n
            out.append(f'airlock_gate_request_duration_seconds_bucket{{le="{b}"}} {acc}')
        out.append(
            f'airlock_gate_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}'
        )
        out.append(f"airlock_gate_request_duration_seconds_sum {self.latency_sum:.6f}")
        out.append(f"airlock_gate_request_duration_seconds_count {self.latency_count}")
        return "\n".join(out) + "\n"
