"""Prometheus metrics at /metrics (prometheus-client). What the records say (jobs by state,
training speed, stylise latency) and what the broker says (queue depth) are read at scrape
time, so they are true whichever process did the work; what only the API sees (uploads it
refused) is counted in the API process. One registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from service.core.stores import Stores
from service.core.keys import Keys
from service.core.queue import JobQueue
from service.core.records import JobState
from service.core.webhooks import delivery_totals

STYLIZE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))


class RecordCollector(Collector):
    def __init__(self, stores: Stores, queue: JobQueue):
        self.stores, self.queue = stores, queue

    def collect(self):
        records = list(self.stores.jobs.all())  # every record: counted, not paged
        by_state = GaugeMetricFamily("checkerless_jobs", "Training jobs by state.", labels=["state"])
        for state in JobState:
            by_state.add_metric([state.value], sum(r.state == state for r in records))
        yield by_state

        speed = GaugeMetricFamily("checkerless_step_seconds", "Seconds per training step of running jobs, by decoder "
                                  "(the mean over those jobs).", labels=["decoder"])
        running: dict[str, list[float]] = {}
        for r in records:
            if r.state == JobState.running and r.seconds_per_step:
                running.setdefault(r.config.get("decoder", "?"), []).append(r.seconds_per_step)
        for decoder, values in sorted(running.items()):
            speed.add_metric([decoder], sum(values) / len(values))
        yield speed

        latencies = [(s.finished_at - s.created_at).total_seconds() for s in self.stores.stylizations.all()
                     if s.state == JobState.succeeded and s.finished_at]
        buckets = [(str(b) if b != float("inf") else "+Inf", sum(x <= b for x in latencies)) for b in STYLIZE_BUCKETS]
        yield HistogramMetricFamily("checkerless_stylize_seconds", "Stylisations kept in the store: request to "
                                    "result, in seconds.", buckets=buckets, sum_value=sum(latencies))

        hooks = GaugeMetricFamily("checkerless_webhooks", "Webhook deliveries waiting (pending) and given up "
                                  "(failed).", labels=["state"])
        store = self.stores.store
        hooks.add_metric(["pending"], len(store.list(Keys.webhook_outbox_prefix())))
        hooks.add_metric(["failed"], len(store.list(Keys.webhook_failed_prefix())))
        yield hooks

        results = CounterMetricFamily("checkerless_webhook_deliveries", "Webhook delivery attempts by result: "
                                      "delivered, retry (failed, will be tried again), failed (given up).",
                                      labels=["result"])
        totals = delivery_totals(store)
        for result in ("delivered", "retry", "failed"):
            results.add_metric([result], totals.get(result, 0))
        yield results

        depth = GaugeMetricFamily("checkerless_queue_depth", "Messages waiting in each queue.", labels=["queue"])
        try:
            for name, count in self.queue.depths().items():
                depth.add_metric([name], count)
        except Exception:  # noqa: BLE001 - an unreachable broker: no depth, the rest still scraped
            pass
        yield depth


class Metrics:
    def __init__(self, stores: Stores, queue: JobQueue):
        self.registry = CollectorRegistry()
        self.registry.register(RecordCollector(stores, queue))
        self.refused = Counter("checkerless_uploads_refused", "Uploads refused (whole requests or files in them), "
                               "by reason.", ["reason"], registry=self.registry)

    def endpoint(self, _: Request) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4; charset=utf-8")
