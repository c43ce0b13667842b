"""Experiment records: an A/B of decoders (and seeds), whose runs are jobs."""

from __future__ import annotations

from service.core.errors import Conflict
from service.core.keys import Keys, check_id
from service.core.records import ExperimentRecord
from service.core.stores.jobs import Jobs
from service.core.stores.record_store import EXPERIMENTS, RecordStore, visible


class Experiments:
    def __init__(self, records: RecordStore, jobs: Jobs):
        self.records = records
        self.store = records.store
        self.jobs = jobs

    def create(self, record: ExperimentRecord) -> ExperimentRecord:
        self.records.index(EXPERIMENTS, record)
        self.records.create(Keys.experiment(record.id), record)
        return record

    def get(self, experiment_id: str, scope: str | None = None) -> ExperimentRecord:
        key = Keys.experiment(check_id(experiment_id, "experiment"))
        return visible(self.records.read(key, ExperimentRecord, f"experiment {experiment_id!r}")[0], scope,
                       f"no experiment {experiment_id!r}")

    def list(self, scope: str | None = None, *, limit: int,
             cursor: str | None = None) -> tuple[list[ExperimentRecord], str | None]:
        """One page of experiments, newest first, and the next page's cursor (as Jobs.list)."""
        return self.records.page(EXPERIMENTS, Keys.experiment, ExperimentRecord, scope, limit, cursor)

    def delete(self, experiment_id: str, scope: str | None = None) -> int:
        """The experiment and every run of it, once none is running (Conflict otherwise)."""
        exp = self.get(experiment_id, scope)
        running = [v.get("label", v["decoder"]) for v in exp.variants
                   if not all(self.jobs.final_or_gone(j) for j in exp.runs(v))]
        if running:
            raise Conflict(f"variant(s) {', '.join(running)} still running; cancel them first")
        deleted = sum(self.jobs.delete(j) for j in exp.job_ids if self.jobs.exists(j))
        deleted += self.store.delete_prefix(Keys.experiment_prefix(exp.id))
        self.records.unindex(EXPERIMENTS, exp)
        return deleted
