"""The probe's measures through the API, for a job measured by today's probe (periods 2, 4 and 8,
shift equivariance, distances by the fixed yardstick), for one measured before the yardstick (its
distances by its own loss network) and for one stored before distances existed (its rows have
only the period-2/4 scores)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.api.main import create_app
from service.core.keys import new_id
from service.core.records import ExperimentRecord, JobRecord, JobState
from service.core.settings import Settings

from tests.conftest import service_redis_db

EQ = {"eq_t1": 31.5, "eq_t2": 36.0, "eq_t3": 31.9, "eq_t4": 44.2}
NEW_ROWS = [{"step": 0, "artifact_p2": 14.6, "artifact_p4": 5.5, "artifact_p8": -3.1, **EQ, "style_distance": 4.2e6,
             "content_distance": 1.2e5},
            {"step": 3, "artifact_p2": 12.9, "artifact_p4": -22.0, "artifact_p8": -9.4, **EQ, "style_distance": 1.5e6,
             "content_distance": 7.2e4}]
MIDDLE_ROWS = [{"step": 0, "artifact_p2": 14.6, "artifact_p4": 5.5, "style_distance": 4.2e6, "content_distance": 1.2e5},
               {"step": 3, "artifact_p2": 12.9, "artifact_p4": -22.0, "style_distance": 1.5e6, "content_distance": 7.2e4}]
OLD_ROWS = [{"step": 0, "artifact_p2": -3.9, "artifact_p4": -2.9}, {"step": 3, "artifact_p2": -34.3, "artifact_p4": -28.5}]


def job(owner: str, rows: list[dict]) -> JobRecord:
    return JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3}, style_id=new_id(), steps=3,
                     step=3, state=JobState.succeeded, artifact_curve=rows,
                     artifacts={k: v for k, v in rows[-1].items() if k != "step"})


def test_jobs_and_experiments_give_every_measure_and_say_what_measured_the_distances(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data", broker_url=f"redis://127.0.0.1:6379/{service_redis_db()}"))
    services = app.state.services
    key, token = services.keys.create(name="test")
    measured, middle, older = (services.stores.jobs.create(job(key.owner, rows)) for rows in (NEW_ROWS, MIDDLE_ROWS, OLD_ROWS))
    exp = services.stores.experiments.create(ExperimentRecord(
        id=new_id(), owner=key.owner, style_id=new_id(), settings={},
        variants=[{"decoder": "deconv", "job_id": measured.id}, {"decoder": "resize-nearest", "job_id": older.id}]))

    with TestClient(app, headers={"X-API-Key": token}) as c:
        j = c.get(f"/v1/jobs/{measured.id}").json()
        assert j["artifacts"] == {"artifact_p2": 12.9, "artifact_p4": -22.0, "artifact_p8": -9.4, **EQ}
        assert j["quality"] == {"style_distance": 1.5e6, "content_distance": 7.2e4, "quality_measure": "vgg19-max"}
        assert j["quality_measure"] == "vgg19-max"
        assert j["artifact_curve"] == NEW_ROWS  # the series
        j = c.get(f"/v1/jobs/{middle.id}").json()  # measured before the yardstick: said so
        assert j["artifacts"] == {"artifact_p2": 12.9, "artifact_p4": -22.0}
        assert j["quality"] == {"style_distance": 1.5e6, "content_distance": 7.2e4, "quality_measure": "run-loss-network"}
        assert j["quality_measure"] == "run-loss-network"
        j = c.get(f"/v1/jobs/{older.id}").json()
        assert j["artifacts"] == {"artifact_p2": -34.3, "artifact_p4": -28.5} and j["quality"] == {}
        assert j["quality_measure"] is None and j["artifact_curve"] == OLD_ROWS

        e = c.get(f"/v1/experiments/{exp.id}").json()
        variants = e["variants"]
        assert variants[0]["scores"] == {"init": NEW_ROWS[0], "final": NEW_ROWS[-1]}
        assert variants[1]["scores"] == {"init": OLD_ROWS[0], "final": OLD_ROWS[-1]}  # read as they were stored
        assert [v["quality_measure"] for v in variants] == ["vgg19-max", None]
        # An experiment made before several seeds: one run per variant, its summary without intervals.
        assert len(e["seeds"]) == 1 and [len(v["runs"]) for v in variants] == [1, 1]
        assert variants[0]["summary"]["eq_t1"] == {"mean": 31.5, "low": None, "high": None, "n": 1}
        assert e["differences"] == []
