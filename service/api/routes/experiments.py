from __future__ import annotations

from fastapi import APIRouter, File, Request, Response, UploadFile

from service.api.compare import DIFF_GAIN, difference_png, spectrum_png, spectrum_profile
from service.api.deps import PAGED, CurrentKey, PageDep, Services, ServicesDep, link_next
from service.api.json_body import JsonBodyRoute
from service.api.routes.jobs import (ColorsField, MixField, StrengthField, StyleField, public, stylization_public,
                                     stylize_options)
from service.api.schemas import ExperimentBrief, ExperimentCreate, ExperimentPublic
from service.api.uploads import check_image
from service.core import seeds
from service.core.errors import NotFound
from service.core.records import ExperimentRecord, JobRecord, JobState
from service.core.submit import create_experiment as create_jobs, request_stylize

router = APIRouter(tags=["experiments"], route_class=JsonBodyRoute)  # JSON bodies under MAX_JSON_BYTES


def _state(states: list[JobState]) -> str:
    if all(s == JobState.succeeded for s in states):
        return "succeeded"
    if any(s in (JobState.queued, JobState.running) for s in states):
        return "running"
    return "failed" if any(s == JobState.failed for s in states) else "cancelled"


def label(variant: dict) -> str:
    """A variant's canonical name (records made before variants had labels: the decoder)."""
    return variant.get("label", variant["decoder"])


def _run(job: JobRecord) -> dict:
    """One seed's job of a variant, in brief: enough to follow it and to read its result."""
    return {"job_id": job.id, "seed": job.config.get("seed"), "state": job.state.value, "step": job.step,
            "steps": job.steps, "error": job.error, "final": seeds.final_measures(job)}


def _runs(services: Services, exp: ExperimentRecord) -> list[list[JobRecord]]:
    """Each variant's jobs, seed by seed (NotFound if one is gone: the experiment is being deleted)."""
    found = services.stores.jobs.get_many(exp.job_ids)
    missing = [j for j in exp.job_ids if j not in found]
    if missing:
        raise NotFound(f"experiment {exp.id} is being deleted (job {missing[0]} is gone)")
    return [[found[j] for j in exp.runs(v)] for v in exp.variants]


def experiment_public(services: Services, exp: ExperimentRecord) -> dict:
    runs = _runs(services, exp)
    jobs = [per_seed[0] for per_seed in runs]  # each variant's first seed: its curves, panel and pictures
    variants = [public(services, j).model_dump(mode="json") for j in jobs]
    for v, stored, per_seed in zip(variants, exp.variants, runs):
        curve = v["artifact_curve"]  # the probe's first and last rows: artifact scores beside style and content distance
        v["scores"] = {"init": curve[0] if curve else None, "final": curve[-1] if curve else None}
        v["label"] = label(stored)
        v["runs"] = [_run(j) for j in per_seed]
        v["summary"] = seeds.summarize(per_seed)  # each measure's mean and 95% interval over the finished seeds
    panel_names = [p["name"] for p in jobs[0].panel] if all(j.panel for j in jobs) else []
    base = f"/v1/experiments/{exp.id}"
    for i, (v, job) in enumerate(zip(variants, jobs)):  # the 1-D spectrum of its first panel photo, once it has one
        item = job.panel[0] if job.panel else None
        v["spectrum_profile"] = None if item is None else {
            "photo": item["name"], **spectrum_profile(services.store, exp.id, item["key"], f"{item['name']}-{i}")}
    comparisons = []
    if panel_names:
        for i in range(len(jobs)):
            for k in range(i + 1, len(jobs)):
                for name in panel_names:
                    comparisons.append({
                        "a": variants[i]["label"], "b": variants[k]["label"], "panel": name,
                        "difference_url": f"{base}/difference/{name}?a={i}&b={k}", "gain": DIFF_GAIN,
                        "difference_spectrum_url": f"{base}/spectrum/{name}?a={i}&b={k}"})
    return {"id": exp.id, "created_at": exp.created_at.isoformat(),
            "state": _state([j.state for per_seed in runs for j in per_seed]),
            "style_id": exp.style_id, "styles": variants[0]["styles"], "content_set_id": exp.content_set_id,
            "settings": exp.settings, "seeds": exp.seeds or [jobs[0].config.get("seed")],
            "variants": variants, "panel": panel_names,
            "differences": seeds.differences([(v["label"], v["summary"]) for v in variants]),
            "spectra": {name: [f"{base}/spectrum/{name}?a={i}" for i in range(len(jobs))] for name in panel_names},
            "comparisons": comparisons}


@router.post("/experiments", status_code=201, response_model=None,
             responses={201: {"model": ExperimentPublic}})
def create_experiment(request: ExperimentCreate, services: ServicesDep, key: CurrentKey) -> dict:
    """Train two or more variants alike, once per seed: the same seeds (so the same shared initial weights
    and data order), the same settings, only the variant differs."""
    exp = create_jobs(services.stores, services.queue, key, style_ids=request.styles, content_set_id=request.content_set_id,
                      shared=request.train_settings(services.settings.checkpoint_every),
                      variants=request.variant_settings(), seeds=request.seeds,
                      limits=services.settings, webhook_url=request.webhook_url)
    return experiment_public(services, exp)


@router.get("/experiments", response_model=None,
            responses={200: {"model": list[ExperimentBrief], **PAGED[200]}})
def list_experiments(services: ServicesDep, key: CurrentKey, page: PageDep, request: Request,
                     response: Response) -> list[dict]:
    """Your experiments (an admin key: everyone's), newest first, a page at a time (ids, variants, state)."""
    experiments, cursor = services.stores.experiments.list(key.scope, limit=page.limit, cursor=page.cursor)
    jobs = services.stores.jobs.get_many([j for exp in experiments for j in exp.job_ids])
    out = []
    for exp in experiments:
        if any(j not in jobs for j in exp.job_ids):  # being deleted
            continue
        out.append({"id": exp.id, "created_at": exp.created_at.isoformat(),
                    "state": _state([jobs[j].state for j in exp.job_ids]),
                    "variants": [label(v) for v in exp.variants], "settings": exp.settings,
                    "seeds": len(exp.seeds) or 1})
    link_next(request, response, cursor)
    return out


@router.get("/experiments/{experiment_id}", response_model=None, responses={200: {"model": ExperimentPublic}})
def get_experiment(experiment_id: str, services: ServicesDep, key: CurrentKey) -> dict:
    """Per variant: state, progress, loss and probe curves, time per step, scores at init and at the end
    (period-2/4/8 artifact scores and shift equivariance beside style and content distance), outputs on the
    fixed panel, each seed's run and each measure's mean and 95% interval over the seeds; across variants:
    which measures' intervals do not overlap (differences), difference images and spectra."""
    return experiment_public(services, services.stores.experiments.get(experiment_id, key.scope))


@router.delete("/experiments/{experiment_id}", status_code=204)
def delete_experiment(experiment_id: str, services: ServicesDep, key: CurrentKey) -> Response:
    """Delete a finished experiment, its jobs and every object they stored."""
    services.stores.experiments.delete(experiment_id, key.scope)
    return Response(status_code=204)


def _panel_key(services: Services, exp: ExperimentRecord, index: int, name: str) -> tuple[str, str]:
    if not 0 <= index < len(exp.variants):
        raise NotFound(f"experiment {exp.id} has no variant {index}")
    job = services.stores.jobs.get(exp.variants[index]["job_id"])
    item = next((p for p in job.panel if p["name"] == name), None)
    if item is None:
        raise NotFound(f"variant {label(exp.variants[index])} has no panel image {name!r} yet ({job.state.value})")
    return item["key"], label(exp.variants[index])


@router.get("/experiments/{experiment_id}/difference/{name}", responses={200: {"content": {"image/png": {}}}})
def difference(experiment_id: str, name: str, services: ServicesDep, key: CurrentKey, a: int = 0, b: int = 1) -> Response:
    """|A - B| of two variants' outputs on a panel photo, amplified (the gain is in the experiment)."""
    exp = services.stores.experiments.get(experiment_id, key.scope)
    (ka, _), (kb, _) = _panel_key(services, exp, a, name), _panel_key(services, exp, b, name)
    return Response(difference_png(services.store, exp.id, ka, kb, f"{name}-{a}-{b}"), media_type="image/png")


@router.get("/experiments/{experiment_id}/spectrum/{name}", responses={200: {"content": {"image/png": {}}}})
def spectrum(experiment_id: str, name: str, services: ServicesDep, key: CurrentKey, a: int = 0,
             b: int | None = None) -> Response:
    """The log-power spectrum of variant a's output, or with b the difference spectrum a - b."""
    exp = services.stores.experiments.get(experiment_id, key.scope)
    ka, da = _panel_key(services, exp, a, name)
    if b is None:
        png = spectrum_png(services.store, exp.id, ka, f"{name}-{a}", title=f"{da} on {name}")
    else:
        kb, db = _panel_key(services, exp, b, name)
        png = spectrum_png(services.store, exp.id, ka, f"{name}-{a}-{b}", title=f"{da} - {db} on {name} (dB)", key_b=kb)
    return Response(png, media_type="image/png")


@router.post("/experiments/{experiment_id}/stylize", status_code=202)
def stylize_all(experiment_id: str, services: ServicesDep, key: CurrentKey,
                files: list[UploadFile] = File(...), style: StyleField = None, mix: MixField = None,
                strength: StrengthField = None, colors: ColorsField = None) -> list[dict]:
    """Stylise your own images with every variant, with the same options (style or mix, strength, colours):
    one stylisation per variant to poll."""
    options = stylize_options(style, mix, strength, colors)
    exp = services.stores.experiments.get(experiment_id, key.scope)
    images = [check_image(f.file.read(), name=f.filename or f"image {i}", max_pixels=services.settings.max_pixels)
              for i, f in enumerate(files)]
    pngs = [i.png for i in images]
    return [{"decoder": v["decoder"], "label": label(v),
             "stylization": stylization_public(request_stylize(services.stores, services.queue, key, v["job_id"], pngs,
                                                               services.settings, options))}
            for v in exp.variants]
