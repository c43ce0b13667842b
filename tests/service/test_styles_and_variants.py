"""Built-in styles, several styles per job and experiment variants beyond the decoder, through
the routes (FastAPI's TestClient on the local store, the machine's Redis as the broker; no
worker: tests/e2e/test_styles_options.py trains them)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from models.config import DEFAULTS, MAX_STYLES
from service.core import builtin_styles
from service.core.records import JobRecord
from tests.service.test_api import client_for, png, settings  # noqa: F401 - the fixture

EXPECTED_NAMES = ["ihc", "hubble", "colorwheel", "gravel", "brick"]


@pytest.fixture
def api(settings):  # noqa: F811
    with client_for(settings) as c:
        yield c


@pytest.fixture
def style_id(api) -> str:
    r = api.post("/v1/styles", files={"file": ("mine.png", png(), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_service_and_the_models_give_the_built_in_styles_the_same_names_and_pixels():
    from models.builtin_images import BUILTIN_STYLES

    assert list(builtin_styles.BUILTIN_STYLES) == list(BUILTIN_STYLES)
    for name, load in BUILTIN_STYLES.items():
        assert np.array_equal(np.asarray(builtin_styles.image(name)), np.asarray(load())), name


def test_built_in_styles_are_listed_with_thumbnails_without_a_key(api):
    anonymous = api.__class__(api.app)
    r = anonymous.get("/v1/builtin-styles")
    assert r.status_code == 200
    styles = r.json()
    assert [s["name"] for s in styles] == EXPECTED_NAMES
    assert all(s["id"] == f"builtin:{s['name']}" and s["title"] for s in styles)
    for s in styles:
        t = anonymous.get(s["thumbnail"])
        assert t.status_code == 200 and t.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(t.content))
        assert image.mode == "RGB" and max(image.size) == builtin_styles.THUMBNAIL_SIDE
    r = anonymous.get("/v1/builtin-styles/mona-lisa/thumbnail")
    assert r.status_code == 404 and "no built-in style 'mona-lisa'" in r.json()["detail"]
    assert "ihc, hubble" in r.json()["detail"]


def test_a_job_takes_a_built_in_style_and_several_styles(api, style_id):
    r = api.post("/v1/jobs", json={"style_id": "builtin:ihc", "steps": 3})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["style_id"] == "builtin:ihc"
    assert job["styles"] == [{"id": "builtin:ihc", "name": "ihc", "image_url": "/v1/builtin-styles/ihc/thumbnail"}]

    r = api.post("/v1/jobs", json={"style_ids": [style_id, "builtin:gravel"], "steps": 3})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["style_id"] == style_id
    assert job["styles"] == [{"id": style_id, "name": "mine.png", "image_url": f"/v1/styles/{style_id}/image"},
                             {"id": "builtin:gravel", "name": "gravel",
                              "image_url": "/v1/builtin-styles/gravel/thumbnail"}]
    assert api.get(f"/v1/jobs/{job['id']}").json()["styles"] == job["styles"]
    image = api.get(f"/v1/styles/{style_id}/image")
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (32, 32)
    # A style a queued job uses is kept.
    r = api.delete(f"/v1/styles/{style_id}")
    assert r.status_code == 409 and job["id"] in r.json()["detail"]


@pytest.mark.parametrize("body, status, fragment", [
    ({"style_id": "builtin:mona-lisa"}, 404, "no built-in style 'mona-lisa'"),
    ({"style_ids": ["builtin:ihc", "f" * 32]}, 404, "no style"),
    ({"style_id": "builtin:ihc", "style_ids": ["builtin:ihc"]}, 422, "not both"),
    ({}, 422, "name the style with style_id"),
    ({"style_ids": []}, 422, "style_ids"),
    ({"style_ids": ["builtin:ihc"] * (MAX_STYLES + 1)}, 422, f"at most {MAX_STYLES}"),
    ({"style_ids": ["builtin:ihc", "builtin:brick", "builtin:ihc"]}, 422, "'builtin:ihc' appears more than once"),
    ({"style_id": "builtin:ihc", "downsample": "maxpool"}, 422, "unknown downsample 'maxpool'"),
    ({"style_id": "builtin:ihc", "loss_pooling": "median"}, 422, "unknown loss pooling 'median'"),
    ({"style_id": "builtin:ihc", "stability_weight": -1}, 422, "stability_weight"),
])
def test_bad_styles_and_settings_are_clear_errors(api, body, status, fragment):
    r = api.post("/v1/jobs", json={"steps": 3, **body})
    assert r.status_code == status and fragment in r.json()["detail"], r.text


def test_the_new_train_settings_reach_the_jobs_config_with_the_defaults_when_unset(api):
    job = api.post("/v1/jobs", json={"style_id": "builtin:ihc", "steps": 3}).json()
    for name in ("downsample", "loss_pooling", "stability_weight"):
        assert job["config"][name] == getattr(DEFAULTS, name)
    job = api.post("/v1/jobs", json={"style_id": "builtin:ihc", "steps": 3, "downsample": ["blur-stride", "blur-stride"],
                                     "loss_pooling": "avg", "stability_weight": 0.5}).json()
    assert (job["config"]["downsample"], job["config"]["loss_pooling"], job["config"]["stability_weight"]) == \
        ("blur-stride", "avg", 0.5)
    fields = api.get("/openapi.json").json()["components"]["schemas"]["JobCreate"]["properties"]
    assert fields["downsample"]["default"] == DEFAULTS.downsample
    assert fields["loss_pooling"]["default"] == DEFAULTS.loss_pooling


def test_experiment_variants_vary_decoder_downsampling_or_pooling_and_nothing_else(api, style_id):
    body = {"style_ids": [style_id, "builtin:ihc"], "steps": 3, "seed": 7, "downsample": "resize-down",
            "variants": ["deconv", {"decoder": "deconv", "downsample": "blur-stride"},
                         {"decoder": ["resize-nearest", "deconv"], "loss_pooling": "avg"},
                         {"decoder": "deconv", "downsample": "stride-conv"}]}
    r = api.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    exp = r.json()
    # A label names what differs from the defaults (blur-stride is the default downsampling).
    assert DEFAULTS.downsample == "blur-stride"
    assert [v["label"] for v in exp["variants"]] == [
        "deconv / resize-down down", "deconv", "resize-nearest,deconv / resize-down down / avg-pool loss",
        "deconv / stride-conv down"]
    assert [s["id"] for s in exp["styles"]] == [style_id, "builtin:ihc"]
    varied = {"decoder": "x", "downsample": "x", "loss_pooling": "x"}
    configs = [v["config"] for v in exp["variants"]]
    assert all(c | varied == configs[0] | varied for c in configs) and configs[0]["seed"] == 7
    assert [(c["decoder"], c["downsample"], c["loss_pooling"]) for c in configs] == [
        ("deconv", "resize-down", "max"), ("deconv", "blur-stride", "max"), ("resize-nearest,deconv", "resize-down", "avg"),
        ("deconv", "stride-conv", "max")]
    assert all(v["styles"] == exp["variants"][0]["styles"] and len(v["styles"]) == 2 for v in exp["variants"])
    listed = api.get("/v1/experiments").json()
    assert listed[0]["variants"] == [v["label"] for v in exp["variants"]]


@pytest.mark.parametrize("variants, fragment", [
    (["deconv", {"decoder": "deconv"}], "variant 'deconv' appears more than once"),
    (["deconv", {"decoder": "deconv", "downsample": DEFAULTS.downsample}], "appears more than once"),
    (["deconv"], "at least two variants"),
    (["deconv", {"decoder": "deconv", "pooling": "avg"}], "pooling"),
    (["deconv", {"decoder": "deconv", "downsample": "nope"}], "unknown downsample 'nope'"),
])
def test_bad_variants_are_422(api, variants, fragment):
    r = api.post("/v1/experiments", json={"style_id": "builtin:ihc", "variants": variants})
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text


def test_a_job_stored_before_jobs_had_several_styles_reads_as_its_one_style():
    old = JobRecord.model_validate({"id": "a" * 32, "config": {}, "style_id": "b" * 32, "steps": 3})
    assert old.style_list == [{"id": "b" * 32, "name": None}]


def _panel_png(checkerboard: bool) -> bytes:
    y, x = np.mgrid[0:64, 0:64]
    smooth = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0)
    a = smooth + (25 * ((x + y) % 2 * 2 - 1) if checkerboard else 0)
    buf = io.BytesIO()
    Image.fromarray(np.repeat(np.clip(a, 0, 255).astype(np.uint8)[..., None], 3, axis=2)).save(buf, format="PNG")
    return buf.getvalue()


def test_each_variant_shows_the_radial_spectrum_of_its_panel_photo(api):
    from models.artifacts.spectra import radial_power_spectrum
    from service.core.keys import Keys
    from service.core.records import JobState

    exp = api.post("/v1/experiments", json={"style_id": "builtin:ihc", "steps": 3,
                                            "variants": ["deconv", "resize-nearest"]}).json()
    assert [v["spectrum_profile"] for v in exp["variants"]] == [None, None]  # nothing stylised yet
    services = api.app.state.services
    for v, checker in zip(exp["variants"], (True, False)):
        key = Keys.panel(v["id"], "chelsea")
        services.store.put_bytes(key, _panel_png(checker))

        def done(r, key=key) -> None:
            r.move(JobState.running)
            r.panel = [{"name": "chelsea", "key": key, "width": 64, "height": 64, "period2_db": 0.0,
                        "period4_db": 0.0}]
            r.move(JobState.succeeded)

        services.stores.jobs.update(v["id"], done)
    variants = api.get(f"/v1/experiments/{exp['id']}").json()["variants"]
    deconv, nearest = (v["spectrum_profile"] for v in variants)
    freqs, power = radial_power_spectrum(np.asarray(Image.open(io.BytesIO(_panel_png(True))).convert("RGB")))
    assert deconv["photo"] == "chelsea" and len(deconv["freqs"]) == len(deconv["power"]) == len(freqs)
    assert np.allclose(deconv["freqs"], freqs, atol=1e-6) and np.allclose(deconv["power"], power, rtol=1e-5)
    assert deconv["freqs"][0] == 0 and abs(deconv["freqs"][-1] - 2 ** 0.5 / 2) < 0.02
    assert deconv["power"][-1] > 100 * nearest["power"][-1]  # the checkerboard's corner ring
    assert api.get(f"/v1/experiments/{exp['id']}").json()["variants"][0]["spectrum_profile"] == deconv  # cached


def test_a_video_upload_has_its_own_body_limit(settings):  # noqa: F811
    """Videos are larger than images: max_video_bytes for the video route, max_upload_bytes for the rest."""
    roomy = settings.model_copy(update={"max_upload_bytes": 50_000, "max_video_bytes": 300_000})
    with client_for(roomy) as c:
        job = c.post("/v1/jobs", json={"style_id": "builtin:ihc", "steps": 3}).json()
        body = [("file", ("v.mp4", b"\0" * 100_000, "video/mp4"))]
        r = c.post(f"/v1/jobs/{job['id']}/stylize-video", files=body)  # past max_upload_bytes, within the video's
        assert r.status_code == 409 and "only a succeeded job can stylise" in r.json()["detail"]
        r = c.post(f"/v1/jobs/{job['id']}/stylize", files=[("files", ("a.png", b"\0" * 100_000, "image/png"))])
        assert r.status_code == 413 and "limit of 50000 bytes" in r.json()["detail"]
        r = c.post(f"/v1/jobs/{job['id']}/stylize-video", files=[("file", ("v.mp4", b"\0" * 400_000, "video/mp4"))])
        assert r.status_code == 413 and "limit of 300000 bytes" in r.json()["detail"]
