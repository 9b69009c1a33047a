"""Prometheus metrics: request counters here, job/stage/queue numbers read from Redis at scrape time."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request

from damagelens.jobs.store import JobStore
from damagelens_gateway.dispatch import Dispatcher

log = logging.getLogger(__name__)


class ClusterCollector:
    """Workers write counters to Redis; exporting them here gives one scrape for the whole cluster."""

    def __init__(self, jobs: JobStore, dispatcher: Dispatcher):
        self.jobs = jobs
        self.dispatcher = dispatcher

    def collect(self):
        try:
            stats = self.jobs.stats()
            queues = self.dispatcher.queue_lengths()
            running = self.jobs.running_counts()
        except Exception as exc:  # noqa: BLE001  (a scrape must not fail because Redis is down)
            log.warning("metrics: redis unavailable", extra={"error": str(exc)})
            up = GaugeMetricFamily("damagelens_redis_up", "Whether Redis answered the scrape.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("damagelens_redis_up", "Whether Redis answered the scrape.")
        up.add_metric([], 1)
        yield up
        submitted = CounterMetricFamily("damagelens_jobs_submitted", "Jobs accepted by the gateway.")
        submitted.add_metric([], stats.jobs_submitted)
        yield submitted
        finished = CounterMetricFamily("damagelens_jobs_finished", "Jobs that reached a terminal status.", labels=["status"])
        for status, count in sorted(stats.jobs_finished.items()):
            finished.add_metric([status.value], count)
        yield finished
        stages = CounterMetricFamily("damagelens_stages_finished", "Stage runs that reached a terminal status.", labels=["stage", "status"])
        for stage, by_status in stats.stages_finished.items():
            for status, count in sorted(by_status.items()):
                stages.add_metric([stage.value, status.value], count)
        yield stages
        depth = GaugeMetricFamily("damagelens_queue_depth", "Tasks waiting in each stage queue.", labels=["queue"])
        for queue, length in queues.items():
            depth.add_metric([queue], length)
        yield depth
        active = GaugeMetricFamily("damagelens_stages_running", "Stages a worker is running now, per queue.", labels=["queue"])
        for stage, count in running.items():
            active.add_metric([stage.value], count)
        yield active
        reaped = CounterMetricFamily(
            "damagelens_stages_reaped", "Running stages re-enqueued by the reaper because their worker died.", labels=["stage"]
        )
        for stage, count in stats.stages_reaped.items():
            reaped.add_metric([stage.value], count)
        yield reaped
        restored = CounterMetricFamily(
            "damagelens_messages_restored", "Unacknowledged messages of dead workers put back on their queue by the reaper."
        )
        restored.add_metric([], stats.messages_restored)
        yield restored
        resent = CounterMetricFamily("damagelens_messages_resent", "Queued stages whose lost message the reaper's audit sent again.")
        resent.add_metric([], stats.messages_resent)
        yield resent
        retries = CounterMetricFamily(
            "damagelens_retries", "Retries after transient errors, by kind (storage, redis, webhook).", labels=["kind"]
        )
        for kind, count in sorted(stats.retries.items()):
            retries.add_metric([kind], count)
        yield retries
        latency = HistogramMetricFamily("damagelens_stage_seconds", "Stage run time inside the worker.", labels=["stage"])
        for stage, lat in stats.stage_latency.items():
            buckets = [(f"{bound / 1000:g}", count) for bound, count in sorted(lat.buckets_ms.items())]
            buckets.append(("+Inf", lat.count))
            latency.add_metric([stage.value], buckets, lat.sum_seconds)
        yield latency


def build_registry(jobs: JobStore, dispatcher: Dispatcher) -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    requests = Counter("damagelens_http_requests", "HTTP requests.", ["method", "route", "status"], registry=registry)
    duration = Histogram("damagelens_http_request_seconds", "HTTP request duration.", ["method", "route"], registry=registry)
    registry.register(ClusterCollector(jobs, dispatcher))
    return registry, requests, duration


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        state = request.app.state
        method = request.method if request.method in HTTP_METHODS else "OTHER"  # any token parses: bound the labels
        state.http_requests.labels(method, path, str(response.status_code)).inc()
        state.http_duration.labels(method, path).observe(time.perf_counter() - start)
        return response
