"""The probe's quality numbers through the API, for a job measured with them and for one stored
before they existed (its rows have only the artifact scores)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.api.main import create_app
from service.core.keys import new_id
from service.core.records import ExperimentRecord, JobRecord, JobState
from service.core.settings import Settings

NEW_ROWS = [{"step": 0, "artifact_p2": 14.6, "artifact_p4": 5.5, "style_distance": 4.2e6, "content_distance": 1.2e5},
            {"step": 3, "artifact_p2": 12.9, "artifact_p4": -22.0, "style_distance": 1.5e6, "content_distance": 7.2e4}]
OLD_ROWS = [{"step": 0, "artifact_p2": -3.9, "artifact_p4": -2.9}, {"step": 3, "artifact_p2": -34.3, "artifact_p4": -28.5}]


def job(owner: str, rows: list[dict]) -> JobRecord:
    return JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3}, style_id=new_id(), steps=3,
                     step=3, state=JobState.succeeded, artifact_curve=rows,
                     artifacts={k: v for k, v in rows[-1].items() if k != "step"})


def test_jobs_and_experiments_give_style_and_content_distance_beside_the_artifact_scores(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data", broker_url="redis://127.0.0.1:6379/14"))
    services = app.state.services
    key, token = services.keys.create(name="test")
    measured, older = services.jobs.create(job(key.owner, NEW_ROWS)), services.jobs.create(job(key.owner, OLD_ROWS))
    exp = services.jobs.create_experiment(ExperimentRecord(
        id=new_id(), owner=key.owner, style_id=new_id(), settings={},
        variants=[{"decoder": "deconv", "job_id": measured.id}, {"decoder": "resize-nearest", "job_id": older.id}]))

    with TestClient(app, headers={"X-API-Key": token}) as c:
        j = c.get(f"/v1/jobs/{measured.id}").json()
        assert j["artifacts"] == {"artifact_p2": 12.9, "artifact_p4": -22.0}
        assert j["quality"] == {"style_distance": 1.5e6, "content_distance": 7.2e4}
        assert j["artifact_curve"] == NEW_ROWS  # the series
        j = c.get(f"/v1/jobs/{older.id}").json()
        assert j["artifacts"] == {"artifact_p2": -34.3, "artifact_p4": -28.5} and j["quality"] == {}
        assert j["artifact_curve"] == OLD_ROWS

        variants = c.get(f"/v1/experiments/{exp.id}").json()["variants"]
        assert variants[0]["scores"] == {"init": NEW_ROWS[0], "final": NEW_ROWS[-1]}
        assert variants[1]["scores"] == {"init": OLD_ROWS[0], "final": OLD_ROWS[-1]}  # read as they were stored
