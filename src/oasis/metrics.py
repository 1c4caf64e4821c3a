"""Prometheus metrics of one server (``GET /metrics``), on a registry of its own.

Routes are labelled by their template (``/v1/responses/{response_id}``), never by the raw
path, so ids cannot grow the label set without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _Gauges(Collector):
    """Gauges read when scraped: ``read()`` gives (labels, value) pairs."""

    def __init__(
        self, name: str, documentation: str, label: str, read: Callable[[], dict[str, float]]
    ) -> None:
        self._name, self._doc, self._label, self._read = name, documentation, label, read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._doc, labels=[self._label])
        for value, amount in sorted(self._read().items()):
            family.add_metric([value], amount)
        yield family


class Metrics:
    """Every instrument oasis reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "oasis_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "oasis_request_duration_seconds",
            "Time to the end of each response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "oasis_time_to_first_token_seconds",
            "Streamed responses: time from the request to the first event.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "oasis_requests_in_progress", "Requests being answered.", registry=r
        )
        self.tokens = Counter(
            "oasis_tokens",
            "Tokens used, by model and direction.",
            ["model", "direction"],
            registry=r,
        )
        self.model_requests = Counter(
            "oasis_model_requests",
            "Requests that used a model, by endpoint kind.",
            ["model", "endpoint"],
            registry=r,
        )
        self.image_previews = Counter(
            "oasis_image_previews",
            "Preview (partial) images drawn, by model: only streamed requests ask for them.",
            ["model"],
            registry=r,
        )
        self.tool_calls = Counter(
            "oasis_hosted_tool_calls",
            "Tool calls of the built-in tools (web_search, file_search, mcp, "
            "code_interpreter, image_generation, computer), by model and tool.",
            ["model", "tool"],
            registry=r,
        )
        self.container_sessions = Counter(
            "oasis_code_interpreter_sessions",
            "Containers (code interpreter sessions) created.",
            registry=r,
        )

    def watch(
        self, name: str, documentation: str, label: str, read: Callable[[], dict[str, float]]
    ) -> None:
        """Report ``read()``'s values as a gauge family each time metrics are scraped."""
        self.registry.register(_Gauges(name, documentation, label, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
