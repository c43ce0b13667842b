"""A user's path through several styles, stylise options and video, through the real service
(the HTTP API, Redis, moto's S3, a real worker and its warm stylise server): a two-style tiny
job (one uploaded style, one built-in) trained, stylised with each style and a 50/50 mix, at
strength 0, 0.5 and 1, with the photo's colours kept; a short generated video stylised with
the same frame count, rate and size; bad options and a bad video are clear errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.slow
PHOTO_SIZE = (40, 32)
# Full-range BT.601 chroma (what models/colour.py keeps): Cb, Cr rows.
CHROMA = np.array([[-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]])


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)


@pytest.fixture(scope="module")
def photo() -> bytes:
    return png_of(np.asarray(Image.fromarray(skimage.data.coffee()).resize(PHOTO_SIZE)))


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker()


@pytest.fixture(scope="module")
def two_style_job(api, worker) -> dict:
    style = png_of(np.asarray(Image.fromarray(skimage.data.immunohistochemistry()).resize((48, 48))))
    r = api.post("/v1/styles", files={"file": ("ihc.png", style, "image/png")})
    assert r.status_code == 201, r.text
    uploaded = r.json()["id"]
    r = api.post("/v1/jobs", json={"style_ids": [uploaded, "builtin:gravel"], "size": 32, "batch": 1, "steps": 6,
                                   "lr": 0.05})  # a few big steps: the two styles' norm parameters part
    assert r.status_code == 201, r.text
    job = wait_for(lambda: (j := api.get(f"/v1/jobs/{r.json()['id']}").json())["state"] in
                   ("succeeded", "failed", "cancelled") and j, timeout=300, what="the two-style job")
    assert job["state"] == "succeeded", job
    assert [(s["id"], s["name"]) for s in job["styles"]] == [(uploaded, "ihc.png"), ("builtin:gravel", "gravel")]
    # Every style on the panel photos, for the pages to show.
    assert [p["style"] for p in job["style_panels"]] == [0, 1]
    first, second = ({p["name"]: p["url"] for p in sp["panel"]} for sp in job["style_panels"])
    assert first.keys() == second.keys() == {p["name"] for p in job["panel"]}
    name = next(iter(first))
    a, b = (api.get(panel[name]) for panel in (first, second))
    assert a.status_code == b.status_code == 200 and np.abs(pixels(a.content) - pixels(b.content)).mean() > 1
    assert a.content == api.get(f"/v1/jobs/{job['id']}/panel/{name}").content
    assert api.get(f"/v1/jobs/{job['id']}/panel/{name}?style=2").status_code == 404
    return job


def stylize(api, job_id: str, image: bytes, **options) -> np.ndarray:
    r = api.post(f"/v1/jobs/{job_id}/stylize", files=[("files", ("coffee.png", image, "image/png"))],
                 data={k: str(v) for k, v in options.items()})
    assert r.status_code == 202, r.text
    assert r.json()["options"]["strength"] == float(options.get("strength", 1))
    done = wait_for(lambda: (s := api.get(f"/v1/stylizations/{r.json()['id']}").json())["state"] in
                    ("succeeded", "failed") and s, timeout=120, what="the stylisation")
    assert done["state"] == "succeeded", done
    (out,) = done["outputs"]
    assert (out["width"], out["height"]) == PHOTO_SIZE
    return pixels(api.get(out["url"]).content)


def test_a_two_style_job_stylises_with_each_style_and_a_mix(api, two_style_job, photo):
    job_id = two_style_job["id"]
    first, second = stylize(api, job_id, photo, style=0), stylize(api, job_id, photo, style=1)
    mix = stylize(api, job_id, photo, mix="0.5,0.5")
    assert np.array_equal(stylize(api, job_id, photo), first)  # no option: the first style
    gap = np.abs(first - second).mean()
    assert gap > 1  # the two styles' scale and shift make different pictures
    # The mix blends the norm parameters: a third picture, nearer each style than they are to each other.
    assert np.abs(mix - first).mean() < gap and np.abs(mix - second).mean() < gap
    assert np.abs(mix - first).mean() > 0.05 and np.abs(mix - second).mean() > 0.05


def test_strength_goes_from_the_photo_to_the_networks_output(api, two_style_job, photo):
    job_id = two_style_job["id"]
    original = pixels(photo)
    outs = {s: stylize(api, job_id, photo, strength=s) for s in (0, 0.5, 1)}
    assert np.abs(outs[0] - original).max() <= 1  # strength 0: the photo itself
    d = {s: np.abs(out - original).mean() for s, out in outs.items()}
    assert d[0] < d[0.5] < d[1] and abs(d[0.5] - d[1] / 2) < 0.1 * d[1] + 1


def test_luminance_colours_keep_the_photos_chroma_within_one_level(api, two_style_job, photo):
    job_id = two_style_job["id"]
    out, styled = stylize(api, job_id, photo, colors="luminance"), stylize(api, job_id, photo)
    original = pixels(photo)
    assert np.abs(out @ CHROMA.T - original @ CHROMA.T).max() <= 1.0
    assert np.abs(styled @ CHROMA.T - original @ CHROMA.T).max() > 5  # the style's own colours differ


@pytest.mark.parametrize("options, fragment", [
    ({"style": "2"}, "has 2 style(s), indexed 0 to 1"),
    ({"mix": "1,1,1"}, "mix has 3 weight(s)"),
    ({"mix": "0.5,x"}, "'x' is not a number"),
    ({"strength": "1.5"}, "strength must be a number between 0 and 1"),
    ({"colors": "sepia"}, "unknown colors 'sepia'"),
    ({"style": "0", "mix": "1,1"}, "not both"),
])
def test_bad_stylise_options_are_422_with_the_reason(api, two_style_job, photo, options, fragment):
    r = api.post(f"/v1/jobs/{two_style_job['id']}/stylize", files=[("files", ("a.png", photo, "image/png"))],
                 data=options)
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    r = api.post(f"/v1/jobs/{two_style_job['id']}/stylize-video", files=[("file", ("a.mp4", b"x" * 10, "video/mp4"))],
                 data=options)
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text


def _video(path, frames: int, size: tuple[int, int], fps: int) -> bytes:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    base = np.asarray(Image.fromarray(skimage.data.chelsea()).resize(size))
    for i in range(frames):
        writer.send(np.ascontiguousarray(np.roll(base, i, axis=1)))
    writer.close()
    return path.read_bytes()


def test_a_short_video_keeps_its_frames_rate_and_size_and_a_bad_one_fails_with_the_reason(api, two_style_job, photo,
                                                                                         tmp_path):
    """Through the API, and through `checkerless jobs stylize-video` (which calls the same route)."""
    from models.video import probe_video
    from tests.test_cli import assert_one_line_error, cli

    job_id, where = two_style_job["id"], ["--api", str(api.base_url), "--key", api.headers["X-API-Key"]]
    text = api.post(f"/v1/jobs/{job_id}/stylize-video", files=[("file", ("notes.mp4", b"not a video at all", "video/mp4"))])
    assert text.status_code == 422 and "not a video file we read (text)" in text.json()["detail"], text.text
    # An MP4's first box and nothing after it: past the upload's sniff, failed by the worker's ffmpeg.
    broken = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"not a video at all"
    bad = api.post(f"/v1/jobs/{job_id}/stylize-video", files=[("file", ("notes.mp4", broken, "video/mp4"))],
                   data={"mix": "0.5,0.5"})
    assert bad.status_code == 202 and bad.json()["kind"] == "video" and bad.json()["options"]["mix"] == [0.5, 0.5]
    _video(tmp_path / "in.mp4", frames=7, size=(48, 32), fps=12)
    p = cli("jobs", "stylize-video", job_id, tmp_path / "in.mp4", "--out", tmp_path / "out.mp4", "--mix", "1,3",
            "--strength", "0.8", "--json", *where)  # queued after the bad one: the worker survived it
    assert p.returncode == 0, p.stderr
    failed = api.get(f"/v1/stylizations/{bad.json()['id']}").json()
    assert failed["state"] == "failed" and failed["error"] and "Traceback" not in failed["error"], failed
    assert "video" in failed["error"] and "\n" not in failed["error"], failed
    done = api.get(f"/v1/stylizations/{json.loads(p.stdout)['id']}").json()
    assert done["state"] == "succeeded" and done["options"]["mix"] == [1, 3], done
    assert done["progress"] == {"done": 7, "total": 7}
    (out,) = done["outputs"]
    assert (out["width"], out["height"], out["frames"], out["fps"]) == (48, 32, 7, 12)
    assert set(done["flicker"]) == {"input", "output"}
    got = api.get(out["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    assert got.content == (tmp_path / "out.mp4").read_bytes()
    info = probe_video(tmp_path / "out.mp4")
    assert (info.frames, info.fps, info.width, info.height) == (7, 12, 48, 32)
    # Images through the CLI with options, and a bad option as one line.
    (tmp_path / "coffee.png").write_bytes(photo)
    p = cli("jobs", "stylize", job_id, tmp_path / "coffee.png", "--out", tmp_path / "o", "--style", "1", "--colors",
            "histogram", *where)
    assert p.returncode == 0 and (tmp_path / "o" / "coffee.png").is_file(), p.stderr
    assert_one_line_error(cli("jobs", "stylize", job_id, tmp_path / "coffee.png", "--style", "5", *where),
                          "has 2 style(s)", "HTTP 422")
