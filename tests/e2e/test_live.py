"""The live page (/ui/live.html) in headless Chromium against the real service (the API under
uvicorn, Redis, moto's S3, a worker exporting ONNX): a tiny two-style job is trained once; its
page links to the live page, which fetches the job's ONNX file with the user's key and runs it
in onnxruntime-web (WebAssembly: headless Chromium without a GPU has no WebGPU adapter).

What the user sees is checked against the server's own fp32 stylisation of the same pixels
(POST /v1/jobs/{id}/stylize): an image file at strength 1 with the network's colours, with the
photo's luminance kept, the colour histogram at strength 0.5, the second style through the mix
input; strength 0 gives the photo back; the snapshot is the canvas as a PNG. The webcam path runs
on Chromium's fake camera: frames are stylised, fps is shown (and a slow network says so), and
a frame matches the server's stylisation of it; a video file likewise. A page screenshot is kept in test-artifacts/."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.e2e.conftest import wait_for
from tests.e2e.test_web import ARTIFACTS, CHROMIUM_ARGS

pytestmark = pytest.mark.slow
PHOTO_SIZE = (64, 48)  # (width, height): not a multiple of 4, the network pads
MIN_PSNR = 40.0  # dB; the bar. In practice the page and the server differ by 1 level at most
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


@pytest.fixture(scope="module")
def job(api, start_worker) -> dict:
    # fp32 stylising on the server (this CPU has bf16 units: "auto" would pick bf16), and the
    # ONNX export the live page needs (the e2e default makes none).
    start_worker(CHECKERLESS_EXPORT_FORMATS='["onnx"]', CHECKERLESS_STYLIZE_PRECISION="32")
    r = api.post("/v1/jobs", json={"style_ids": ["builtin:ihc", "builtin:colorwheel"], "size": 32, "batch": 1,
                                   "steps": 2, "lr": 0.05})  # big steps: the two styles' norms part
    assert r.status_code == 201, r.text
    job = wait_for(lambda: (j := api.get(f"/v1/jobs/{r.json()['id']}").json())["state"] in
                   ("succeeded", "failed", "cancelled") and j, timeout=240, what="the two-style job")
    assert job["state"] == "succeeded", job
    assert "onnx" in job["links"], job["links"]
    return job


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium is needed: apt-get install chromium (scripts/test.sh does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS + FAKE_CAMERA)
        yield b
        b.close()


@pytest.fixture
def page(browser, api):
    context = browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept(api.headers["X-API-Key"]))  # the key, asked once per tab
    yield page
    context.close()
    assert not errors, errors


def stylize_on_server(api, job_id: str, image: bytes, **options) -> np.ndarray:
    r = api.post(f"/v1/jobs/{job_id}/stylize", files=[("files", ("photo.png", image, "image/png"))],
                 data={k: str(v) for k, v in options.items()})
    assert r.status_code == 202, r.text
    done = wait_for(lambda: (s := api.get(f"/v1/stylizations/{r.json()['id']}").json())["state"] in
                    ("succeeded", "failed") and s, timeout=120, what="the server's stylisation")
    assert done["state"] == "succeeded", done
    return pixels(api.get(done["outputs"][0]["url"]).content)


def canvas(page, selector: str) -> np.ndarray:
    h, w, data = page.evaluate("""sel => { const c = document.querySelector(sel);
        return [c.height, c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""", selector)
    return np.asarray(data, dtype=np.float64).reshape(h, w, 4)[..., :3]


def frames(page) -> int:
    return int(page.get_attribute("#output", "data-frames") or 0)


def stopped(page) -> tuple[np.ndarray, np.ndarray]:
    """Stop a playing source; the loop ends after the frame in hand, and then the canvases hold
    one frame and its output: (frame, output)."""
    page.click("#stop")

    def settled() -> bool:
        n = frames(page)
        time.sleep(0.5)
        return frames(page) == n

    wait_for(settled, timeout=30, what="the last frame")
    return canvas(page, "#input"), canvas(page, "#output")


def as_png(rgb: np.ndarray) -> bytes:
    png = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(png, format="PNG")
    return png.getvalue()


def set_option(page, selector: str, value: str) -> None:
    """Change a control as the user would (its input/change events), then wait for the next frame."""
    before = frames(page)
    page.evaluate("""([sel, v]) => { const el = document.querySelector(sel); el.value = v;
        el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }""", [selector, value])
    page.wait_for_function(f"+document.querySelector('#output').dataset.frames > {before}")


def open_live(page, api, job_id: str) -> None:
    page.goto(f"{api.base_url}/ui/job.html?id={job_id}")
    page.click("#live-link")  # the job page's "Run in this browser"
    page.wait_for_url(f"**/ui/live.html?id={job_id}")
    page.wait_for_function("document.body.dataset.state === 'ready' || document.body.dataset.state === 'error'",
                           timeout=60_000)
    assert page.get_attribute("body", "data-state") == "ready", page.inner_text("#status")
    assert page.get_attribute("body", "data-backend") == "wasm"  # no GPU here: the WASM fallback


def test_an_image_file_stylised_in_the_page_matches_the_server(page, api, job, tmp_path):
    photo_png = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).resize(PHOTO_SIZE).save(photo_png, format="PNG")
    photo_file = tmp_path / "coffee.png"
    photo_file.write_bytes(photo_png.getvalue())
    photo = pixels(photo_png.getvalue())

    open_live(page, api, job["id"])
    # Two sliders, named after the job's styles: the export's `mix` input.
    assert page.locator("#styles-mix input.mix").count() == 2
    page.select_option("#resolution", "original")  # the file's own 64x48, as the server stylises it
    page.set_input_files("#image-file", str(photo_file))
    page.wait_for_function("+document.querySelector('#output').dataset.frames >= 1")
    assert page.get_attribute("#output", "data-size") == "64x48"
    assert np.array_equal(canvas(page, "#input"), photo)  # the photo's pixels reach the network unchanged
    fps = float(page.get_attribute("#fps", "data-fps"))
    assert fps > 0 and page.inner_text("#fps").endswith("fps")

    out = canvas(page, "#output")
    server = stylize_on_server(api, job["id"], photo_png.getvalue())
    assert psnr(out, server) >= MIN_PSNR and np.abs(out - server).max() <= 2, (psnr(out, server), np.abs(out - server).max())
    assert np.abs(out - photo).mean() > 5  # stylised: not the photo

    # The snapshot: a PNG of exactly what the canvas shows.
    with page.expect_download() as download:
        page.click("#snapshot")
    assert download.value.suggested_filename == f"{job['id']}-live.png"
    snap = Path(download.value.path()).read_bytes()
    assert snap.startswith(b"\x89PNG") and np.array_equal(pixels(snap), out)

    # The options, computed in the page as the server computes them.
    set_option(page, "#colors", "luminance")
    lum = canvas(page, "#output")
    server_lum = stylize_on_server(api, job["id"], photo_png.getvalue(), colors="luminance")
    assert psnr(lum, server_lum) >= MIN_PSNR, psnr(lum, server_lum)
    set_option(page, "#colors", "histogram")
    set_option(page, "#strength", "0.5")
    hist = canvas(page, "#output")
    server_hist = stylize_on_server(api, job["id"], photo_png.getvalue(), colors="histogram", strength=0.5)
    assert psnr(hist, server_hist) >= MIN_PSNR, psnr(hist, server_hist)
    assert np.abs(hist - lum).mean() > 1  # the modes differ, so matching each says something
    set_option(page, "#strength", "0")
    assert np.array_equal(canvas(page, "#output"), photo)  # strength 0: the photo itself

    # The second style through the export's mix input, against the server's style 1.
    set_option(page, "#strength", "1")
    set_option(page, "#colors", "style")
    before = frames(page)
    page.click("#styles-mix button.only[data-style='1']")
    page.wait_for_function(f"+document.querySelector('#output').dataset.frames > {before}")
    second = canvas(page, "#output")
    server_second = stylize_on_server(api, job["id"], photo_png.getvalue(), style=1)
    assert psnr(second, server_second) >= MIN_PSNR, psnr(second, server_second)
    assert np.abs(second - out).max() > 2, "the two styles give the same picture: the mix is not reaching the network"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-page.png"), full_page=True)


def test_the_webcam_is_stylised_live(page, api, job):
    open_live(page, api, job["id"])
    page.select_option("#resolution", "128")
    page.click("#camera")
    page.wait_for_function("+document.querySelector('#output').dataset.frames >= 8", timeout=60_000)
    assert page.get_attribute("#output", "data-size") == "171x128"  # the fake camera's 640x480, at 128 px
    fps = float(page.get_attribute("#fps", "data-fps"))
    assert fps > 0
    # A network under 5 fps says so (after its first frames) and offers a lower resolution.
    assert page.locator("#slow").is_visible() == (fps < 5), (fps, page.inner_text("#slow"))
    frame, out = stopped(page)
    assert frame.std() > 10  # the fake camera's moving picture, not a black frame
    server = stylize_on_server(api, job["id"], as_png(frame))
    assert psnr(out, server) >= MIN_PSNR, psnr(out, server)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-webcam.png"), full_page=True)


def test_a_video_file_is_stylised_frame_by_frame(page, api, job, tmp_path):
    """A video chosen from disk (WebM: Chromium plays VP8 without licensed codecs) plays through
    the network, at its own size when asked: frames go by, and the frame in hand when stopped is stylised
    as the server stylises it."""
    import subprocess

    import imageio_ffmpeg

    clip = tmp_path / "clip.webm"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc=size=64x48:rate=10", "-frames:v", "30", "-c:v", "libvpx", "-b:v", "200k",
                    str(clip)], check=True, capture_output=True)
    open_live(page, api, job["id"])
    page.select_option("#resolution", "original")  # the clip's own 64x48 (the default draws it at 256 px)
    page.set_input_files("#video-file", str(clip))
    page.wait_for_function("+document.querySelector('#output').dataset.frames >= 5", timeout=60_000)
    assert page.get_attribute("#output", "data-size") == "64x48"
    assert float(page.get_attribute("#fps", "data-fps")) > 0
    frame, out = stopped(page)
    assert frame.std() > 10  # testsrc's bars, not a black frame
    assert psnr(out, stylize_on_server(api, job["id"], as_png(frame))) >= MIN_PSNR


def test_a_server_without_onnxruntime_web_is_said_on_the_page(page, api, job):
    """What a server where scripts/setup.sh never ran answers (the API's own 404 text, checked
    in tests/test_live_vendor.py), and what the page then shows."""
    page.route("**/ui/vendor/ort/**", lambda route: route.fulfill(
        status=404, body="onnxruntime-web is not installed; run scripts/setup.sh"))
    page.goto(f"{api.base_url}/ui/live.html?id={job['id']}")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "onnxruntime-web is not installed" in page.inner_text("#status")
    assert "scripts/setup.sh" in page.inner_text("#status")


def test_only_the_runtime_files_are_served(api):
    r = api.get("/ui/vendor/ort/ort.wasm.min.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    r = api.get("/ui/vendor/ort/ort-wasm-simd-threaded.wasm")
    assert r.status_code == 200 and r.headers["content-type"] == "application/wasm" and r.content[:4] == b"\0asm"
    assert api.get("/ui/vendor/ort/package.json").status_code == 404
    assert api.get("/ui/node_modules/onnxruntime-web/package.json").status_code == 404
    live = api.get("/ui/live.html")  # cross-origin isolated: WebAssembly threads
    assert live.headers["cross-origin-embedder-policy"] == "require-corp"
