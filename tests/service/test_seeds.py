"""Experiments over several seeds, through the routes (FastAPI's TestClient on the local store,
the machine's Redis as the broker; no worker: the jobs' results are written as a worker would
write them): one job per variant and seed, made whole or not at all and counted in the quotas;
each measure's mean and 95% interval over the seeds; variants called different only where their
intervals do not overlap. tests/e2e/test_web.py trains one through the page."""

from __future__ import annotations

import json
import math

import pytest
import redis

from service.core import seeds
from service.core.queue import make_celery
from service.core.records import JobRecord, JobState
from tests.service.test_api import REDIS_DB, FailsAfter, client_for, settings  # noqa: F401 - the fixture
from tests.service.test_styles_and_variants import api, style_id  # noqa: F401 - the fixtures

TINY = {"steps": 3, "size": 32, "batch": 1}



def test_the_t_quantiles_are_students():
    from scipy import stats

    assert set(seeds.T_975) == set(range(1, seeds.MAX_SEEDS))
    for df, t in seeds.T_975.items():
        assert t == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4), df


def test_an_interval_is_the_mean_plus_or_minus_t_times_the_standard_error():
    i = seeds.interval([1.0, 2.0, 3.0])  # mean 2, sample sd 1
    half = 4.3027 / math.sqrt(3)
    assert i == pytest.approx({"mean": 2.0, "low": 2 - half, "high": 2 + half, "n": 3})
    assert seeds.interval([5.0]) == {"mean": 5.0, "low": None, "high": None, "n": 1}  # one seed: no interval
    assert seeds.seeds_for(7, 3) == [7, 8, 9]
    with pytest.raises(ValueError, match="between 1 and 8"):
        seeds.seeds_for(7, 9)


def test_the_summary_reads_finished_jobs_only_and_differences_need_separate_intervals():
    def job(state: JobState, **artifacts) -> JobRecord:
        return JobRecord(id="0" * 32, config={}, style_id="s", steps=3, state=state, artifacts=artifacts,
                         losses={"loss": 2.0})

    done = [job(JobState.succeeded, artifact_p2=10.0, eq_t1=30.0), job(JobState.succeeded, artifact_p2=11.0, eq_t1=40.0)]
    running = job(JobState.running, artifact_p2=99.0, eq_t1=99.0)
    summary = seeds.summarize([*done, running])
    assert list(summary) == ["artifact_p2", "eq_t1", "loss"]  # the probe's order, then the loss
    assert summary["artifact_p2"]["n"] == 2 and summary["artifact_p2"]["mean"] == 10.5
    other = seeds.summarize([job(JobState.succeeded, artifact_p2=-20.0, eq_t1=31.0),
                             job(JobState.succeeded, artifact_p2=-21.0, eq_t1=39.0)])
    found = {d["measure"]: d["differ"] for d in seeds.differences([("a", summary), ("b", other)])}
    # Far apart on period 2; overlapping on EQ-T; the loss is the same in every run (no spread: equal intervals).
    assert found == {"artifact_p2": True, "eq_t1": False, "loss": False}
    assert seeds.differences([("a", seeds.summarize(done[:1])), ("b", seeds.summarize(done[1:]))]) == []  # one seed each


def _queued(settings) -> list[str]:  # noqa: F811
    messages = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).lrange("train", 0, -1)
    return [json.loads(json.loads(m)["headers"]["argsrepr"].replace("'", '"'))[0] for m in reversed(messages)]


def _finish(services, job_id: str, **measures: float) -> None:
    """The job's end as its worker writes it: the probe's last row and the last loss."""
    def change(r: JobRecord) -> None:
        r.move(JobState.running)
        r.artifacts = {k: v for k, v in measures.items() if k != "loss"}
        r.losses = {"loss": measures["loss"]}
        r.step = r.steps
        r.move(JobState.succeeded)

    services.stores.jobs.update(job_id, change)


def test_two_variants_times_two_seeds_make_four_jobs_reported_as_intervals(settings, api, style_id):  # noqa: F811
    r = api.post("/v1/experiments", json={"style_id": style_id, "variants": ["deconv", "resize-nearest"], "seeds": 2,
                                          "seed": 7, **TINY})
    assert r.status_code == 201, r.text
    exp = r.json()
    assert exp["seeds"] == [7, 8] and exp["state"] == "running"
    runs = [v["runs"] for v in exp["variants"]]
    assert [[x["seed"] for x in rs] for rs in runs] == [[7, 8], [7, 8]]
    assert [v["id"] for v in exp["variants"]] == [rs[0]["job_id"] for rs in runs]  # each variant's page is its first seed's
    jobs = {x["job_id"]: api.get(f"/v1/jobs/{x['job_id']}").json() for rs in runs for x in rs}
    services = api.app.state.services
    assert len(jobs) == 4 and all(services.stores.jobs.get(job_id).experiment_id == exp["id"] for job_id in jobs)
    configs = [j["config"] for j in jobs.values()]
    assert all(c | {"decoder": None, "seed": None} == configs[0] | {"decoder": None, "seed": None} for c in configs)
    # Queued seed by seed: with one worker, every variant's first run ends before any second one.
    assert _queued(settings) == [runs[0][0]["job_id"], runs[1][0]["job_id"], runs[0][1]["job_id"], runs[1][1]["job_id"]]
    listed = api.get("/v1/experiments").json()[0]
    assert listed["id"] == exp["id"] and listed["seeds"] == 2

    results = {(0, 0): dict(artifact_p2=12.0, eq_t1=30.0, style_distance=2.0e6, loss=5.0),
               (0, 1): dict(artifact_p2=13.0, eq_t1=36.0, style_distance=2.2e6, loss=5.5),
               (1, 0): dict(artifact_p2=-30.0, eq_t1=33.0, style_distance=2.1e6, loss=5.2)}
    for (v, s), measures in results.items():
        _finish(services, runs[v][s]["job_id"], **measures)
    exp = api.get(f"/v1/experiments/{exp['id']}").json()
    assert exp["state"] == "running"  # one run is left
    deconv, nearest = exp["variants"]
    assert deconv["summary"]["artifact_p2"] == pytest.approx(seeds.interval([12.0, 13.0]))
    assert nearest["summary"]["artifact_p2"] == {"mean": -30.0, "low": None, "high": None, "n": 1}  # one seed done
    assert exp["differences"] == []  # nothing to tell until both have two seeds
    assert [x["state"] for x in nearest["runs"]] == ["succeeded", "queued"]
    assert nearest["runs"][0]["final"] == results[(1, 0)]

    _finish(services, runs[1][1]["job_id"], artifact_p2=-31.0, eq_t1=34.0, style_distance=2.3e6, loss=5.3)
    exp = api.get(f"/v1/experiments/{exp['id']}").json()
    assert exp["state"] == "succeeded"
    differ = {d["measure"]: d["differ"] for d in exp["differences"]}
    assert differ == {"artifact_p2": True, "eq_t1": False, "style_distance": False, "loss": False}
    assert all(d["a"] == "deconv" and d["b"] == "resize-nearest" for d in exp["differences"])

    # The demo's table of it: the probe's final period 2 over the seeds, within 80 columns.
    from rich.console import Console

    from service.cli.demo_table import WIDTH, service_table
    from service.cli.demo_service import demo_rows

    console = Console(width=WIDTH, record=True, file=open("/dev/null", "w"))
    console.print(service_table(demo_rows(exp, "chelsea"), "chelsea"))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80 and "over seeds" in next(line for line in lines if "variant" in line)
    assert any(line.strip().startswith("deconv ") and "+12.5 ± 6.4" in line for line in lines), "\n".join(lines)

    assert api.delete(f"/v1/experiments/{exp['id']}").status_code == 204  # every seed's job goes with it
    assert all(api.get(f"/v1/jobs/{job_id}").status_code == 404 for job_id in jobs)


def test_every_seeds_job_counts_and_is_made_or_none_is(settings, api, style_id):  # noqa: F811
    store, token = api.app.state.services.store, api.headers["X-API-Key"]
    body = {"style_id": style_id, "variants": ["deconv", "resize-nearest"], "seeds": 2, **TINY}
    tight = settings.model_copy(update={"quota_active_jobs": 3})
    with client_for(tight, store=store, token=token) as c:
        r = c.post("/v1/experiments", json=body)
        assert r.status_code == 429 and "asked for 4 more" in r.json()["detail"], r.text
        assert c.post("/v1/experiments", json={**body, "seeds": 1}).status_code == 201  # two jobs fit
    with client_for(settings, FailsAfter(make_celery(settings), 3), store=store, token=token) as c:
        before = {j["id"] for j in c.get("/v1/jobs").json()}
        r = c.post("/v1/experiments", json=body)
        assert r.status_code == 503 and "unreachable" in r.json()["detail"]
        assert {j["id"] for j in c.get("/v1/jobs").json()} == before and len(c.get("/v1/experiments").json()) == 1


@pytest.mark.parametrize("body, fragment", [
    ({"seeds": 0}, "seeds: Input should be greater than or equal to 1"),
    ({"seeds": 9}, "seeds: Input should be less than or equal to 8"),
    ({"seeds": 2, "seed": 2**32 - 1}, "seed + seeds - 1 must be at most"),
])
def test_bad_seed_counts_are_422_naming_the_field(api, style_id, body, fragment):
    r = api.post("/v1/experiments", json={"style_id": style_id, "variants": ["deconv", "resize-nearest"], **TINY, **body})
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    assert api.get("/v1/jobs").json() == []
