"""Prometheus metrics at /metrics (prometheus-client). What the store says (unfinished jobs and
their training speed, from the active jobs' records; jobs ended and stylise latency, from the
running totals of service/core/stores/totals.py) and what the broker says (queue depth) are
read at scrape time, so they are true whichever process did the work, and a scrape reads a few
records however many the store keeps. What only the API sees (uploads it refused) is counted in
the API process. One registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from service.core.stores import Stores
from service.core.keys import Keys
from service.core.queue import JobQueue
from service.core.records import FINAL_STATES, JobState
from service.core.stores import totals
from service.core.webhooks import delivery_totals


class RecordCollector(Collector):
    def __init__(self, stores: Stores, queue: JobQueue):
        self.stores, self.queue = stores, queue

    def collect(self):
        jobs = self.stores.jobs
        records = [r for r in jobs.get_many(jobs.active_ids()).values() if not r.final]  # the unfinished only
        by_state = GaugeMetricFamily("checkerless_jobs", "Unfinished training jobs by state.", labels=["state"])
        for state in (JobState.queued, JobState.running):
            by_state.add_metric([state.value], sum(r.state == state for r in records))
        yield by_state

        ended = CounterMetricFamily("checkerless_jobs_ended", "Training jobs ended, by state.", labels=["state"])
        counts = totals.jobs_ended(self.stores.store, jobs.all).by_state
        for state in sorted(FINAL_STATES, key=lambda s: s.value):
            ended.add_metric([state.value], counts.get(state.value, 0))
        yield ended

        speed = GaugeMetricFamily("checkerless_step_seconds", "Seconds per training step of running jobs, by decoder "
                                  "(the mean over those jobs).", labels=["decoder"])
        running: dict[str, list[float]] = {}
        for r in records:
            if r.state == JobState.running and r.seconds_per_step:
                running.setdefault(r.config.get("decoder", "?"), []).append(r.seconds_per_step)
        for decoder, values in sorted(running.items()):
            speed.add_metric([decoder], sum(values) / len(values))
        yield speed

        latency = totals.stylize_seconds(self.stores.store, self.stores.stylizations.all)
        yield HistogramMetricFamily("checkerless_stylize_seconds", "Succeeded stylisations: request to result, "
                                    "in seconds.", buckets=latency.cumulative(), sum_value=latency.sum)

        hooks = GaugeMetricFamily("checkerless_webhooks", "Webhook deliveries waiting (pending) and given up "
                                  "(failed).", labels=["state"])
        store = self.stores.store
        hooks.add_metric(["pending"], len(store.list(Keys.webhook_outbox_prefix())))
        hooks.add_metric(["failed"], len(store.list(Keys.webhook_failed_prefix())))
        yield hooks

        results = CounterMetricFamily("checkerless_webhook_deliveries", "Webhook delivery attempts by result: "
                                      "delivered, retry (failed, will be tried again), failed (given up).",
                                      labels=["result"])
        delivered = delivery_totals(store)
        for result in ("delivered", "retry", "failed"):
            results.add_metric([result], delivered.get(result, 0))
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
