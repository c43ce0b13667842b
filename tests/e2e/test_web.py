"""The web pages in headless Chromium (Playwright driving Debian's chromium) against a live
`checkerless serve`: submit an experiment of two seeds through the page, watch it finish, read
its measures over the seeds, zoom one view and see the other follow, stylise one's own image
with every variant; pick a built-in style by its thumbnail and a precision, follow the job on
its own page and stylise an image and a video there. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import skimage.data
from PIL import Image

from models.config import DEFAULTS
from tests.e2e.conftest import ROOT, TINY_JOBS, free_port, wait_for
from tests.e2e.test_serve import worker_pids

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data, port = tmp_path_factory.mktemp("web-data"), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | {
        "OMP_NUM_THREADS": "1", **TINY_JOBS}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/v1/ready").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=90, what="checkerless serve")
    yield url, (data / "local-key").read_text().strip()  # the page asks for the key once per tab
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium is needed: apt-get install chromium (scripts/test.sh does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_an_experiment_made_from_the_form(server, browser, tmp_path):
    """The A/B form in Chromium: an experiment of two seeds made from it, with the uploaded style
    and the settings typed, on a page of its own. Its runs are cancelled: the page on trained
    networks is the demo's (the next test), which trains the same pair of decoders."""
    server, key = server
    ARTIFACTS.mkdir(exist_ok=True)
    style = tmp_path / "style.png"
    Image.fromarray(skimage.data.immunohistochemistry()).resize((64, 64)).save(style)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept(key)))
    page.goto(f"{server}/")
    page.wait_for_selector("#decoders input[value=deconv]")

    # The A/B form starts at the product's claim: deconv against the default decoder.
    assert page.is_checked("#decoders input[value=deconv]") and page.is_checked(f"#decoders input[value={DEFAULTS.decoder}]")
    page.set_input_files("input[name=style]", str(style))
    # The form's defaults and limits are the training config's, read from the API's schema.
    from models.config import LIMITS

    assert page.input_value("input[name=steps]") == str(DEFAULTS.steps)
    assert page.get_attribute("input[name=size]", "max") == str(LIMITS["size"][1])
    page.fill("input[name=size]", "32")
    page.fill("input[name=steps]", "4")
    page.fill("input[name=batch]", "1")
    assert page.input_value("input[name=seeds]") == "1" and page.get_attribute("input[name=seeds]", "max") == "8"
    page.fill("input[name=seeds]", "2")  # each variant trains twice: seed, seed + 1
    page.click("button[type=submit]")
    page.wait_for_url("**/experiment.html?id=*", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "experiment-training.png"), full_page=True)

    exp_id = page.url.split("id=")[1]
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        exp = client.get(f"/v1/experiments/{exp_id}").json()
        assert exp["seeds"] == [exp["settings"]["seed"], exp["settings"]["seed"] + 1]
        assert [v["decoder"] for v in exp["variants"]] == ["deconv", DEFAULTS.decoder]
        assert {k: exp["settings"][k] for k in ("size", "steps", "batch")} == {"size": 32, "steps": 4, "batch": 1}
        for job_id in (r["job_id"] for v in exp["variants"] for r in v["runs"]):
            client.post(f"/v1/jobs/{job_id}/cancel")  # trained pages: the demo's test below
    # The style beside the stylised photos: the uploaded image itself (64 px), named.
    page.wait_for_function("[...document.querySelectorAll('#styles img')].length === 1 && "
                           "document.querySelector('#styles img').naturalWidth === 64")
    assert page.inner_text("#styles figcaption").startswith("style: ")
    assert not errors, errors
    assert len(asked) == 1 and "API key" in asked[0]


def test_the_demo_through_the_service_and_its_page_on_the_trained_pair(tmp_path, browser):
    """The README's demo as a user runs it, at --seeds 2: the embedded service started, four
    jobs trained (two decoders x two seeds), the scores and the page's address printed; then
    that page in Chromium, read on the trained networks: every measure over the seeds, the
    views zoomed together, one's own image through every variant; then the demo stopped as a
    user stops it, its server with it. A few minutes on a 2-core CPU: four training processes,
    which is the claim being tested."""
    own = tmp_path / "own.png"
    Image.fromarray(np.asarray(Image.fromarray(skimage.data.rocket()).resize((90, 60)))).save(own)
    port, out = free_port(), tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | TINY_JOBS
    demo = subprocess.Popen([sys.executable, "-m", "service.cli", "demo", "--steps", "2", "--size", "32", "--batch", "1",
                             "--port", str(port), "--out", str(out), "--json", "--seeds", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=(tmp_path / "demo.err").open("w"), text=True)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        printed: list[str] = []
        threading.Thread(target=lambda: printed.extend(demo.stdout), daemon=True).start()

        def scores() -> dict | None:
            try:
                return json.loads("".join(printed[:printed.index("}\n") + 1])) if "}\n" in printed else None
            except json.JSONDecodeError:
                return None

        result = wait_for(lambda: scores() or demo.poll() is not None, timeout=420, what="the demo's scores")
        assert isinstance(result, dict), (tmp_path / "demo.err").read_text()[-3000:]
        assert demo.poll() is None  # no --exit: it goes on serving the page
        assert result["state"] == "succeeded" and result["url"].startswith(f"http://127.0.0.1:{port}/ui/experiment.html?id=")
        deconv, nearest = result["variants"]
        for v in (deconv, nearest):  # --seeds 2: each variant trained twice, its final score as a mean and interval
            assert v["seeds"] == 2 and v["final_p2_low_db"] <= v["final_p2_mean_db"] <= v["final_p2_high_db"], v
        assert (deconv["decoder"], nearest["decoder"]) == ("deconv", DEFAULTS.decoder)  # the claim: deconv vs the default
        assert deconv["period2_db"] > nearest["period2_db"] + 10  # the checkerboard, measured
        assert deconv["init_p2_db"] > 0 > nearest["init_p2_db"]

        server, key = f"http://127.0.0.1:{port}", (out / "server" / "local-key").read_text().strip()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        asked: list[str] = []
        page.on("dialog", lambda d: (asked.append(d.message), d.accept(key)))
        page.goto(result["url"])
        # Both variants' images, the training over (all four runs).
        page.wait_for_function("document.querySelector('#state').textContent !== 'running' && "
                               "document.querySelector('#state').textContent !== ''", timeout=480_000)
        page.wait_for_function("document.querySelectorAll('#views .viewer img').length === 2 && "
                               "[...document.querySelectorAll('#views .viewer img')].every(i => i.complete && i.naturalWidth > 0)",
                               timeout=240_000)
        assert page.inner_text("#state") == "succeeded"
        assert page.inner_text("#styles figcaption") == "style: ihc"  # the demo's built-in style
        rows = page.locator("#scores tbody tr")
        assert rows.count() == 2 and "deconv" in rows.nth(0).inner_text()
        assert "dB" in page.inner_text("#views")  # every picture carries its scores

        # Style and content distance beside the artifact scores, at init and at the end, with what
        # measured them: the API's numbers, and one line per variant in each of their plots over training.
        exp = httpx.get(f"{server}/v1/experiments/{result['experiment']}", headers={"X-API-Key": key}).json()
        assert exp["seeds"] == [exp["settings"]["seed"], exp["settings"]["seed"] + 1]
        for i, v in enumerate(exp["variants"]):
            for k in ("style_distance", "content_distance"):
                cell = rows.nth(i).locator(f"td.{k.replace('_', '-')}").inner_text()
                shown = [float(x) for x in cell.split(" → ")]
                expected = [v["scores"]["init"][k], v["scores"]["final"][k]]
                assert shown == pytest.approx(expected, rel=5e-3) and min(shown) > 0, (k, cell, expected)
            assert v["quality_measure"] == "vgg19-max" and rows.nth(i).locator("td.quality-measure").inner_text() == "vgg19-max yardstick"
            # Period 8 and shift equivariance (EQ-T at shifts 1 to 4) beside periods 2 and 4.
            final = v["scores"]["final"]
            p8 = rows.nth(i).locator("td.period8").inner_text()
            assert float(p8) == pytest.approx(final["artifact_p8"], abs=0.051), (p8, final)
            eq = rows.nth(i).locator("td.eq-t").inner_text()
            assert eq == " · ".join(f"{k} px {final[f'eq_t{k}']:.1f}" for k in (1, 2, 3, 4)), (eq, final)
        plots = page.eval_on_selector_all("#curves svg.chart", """svgs => Object.fromEntries(svgs.map(s => [
            s.querySelector('text').textContent, [...s.querySelectorAll('polyline')].map(p => p.getAttribute('points').split(' ').length)]))""")
        for title in ("style distance (lower is better)", "content distance (lower is better)", "period-8 score (dB)",
                      "shift equivariance at 1 px, EQ-T (dB; higher is better)"):
            assert plots[title] == [2, 2], plots  # two variants, each probed at init and at the end (2 steps)

        # Over the seeds: each measure's mean ± half its 95% interval, as the API computed them, and
        # a variant marked different from another only where the API found their intervals apart.
        summary = page.locator("#seed-summary tbody tr")
        assert summary.count() == 2
        for i, v in enumerate(exp["variants"]):
            assert [r["state"] for r in v["runs"]] == ["succeeded", "succeeded"]
            assert summary.nth(i).locator("td").nth(1).inner_text() == "2 of 2"
            for k in ("artifact_p2", "artifact_p8", "eq_t1", "style_distance", "loss"):
                m = v["summary"][k]
                assert m["n"] == 2 and m["low"] <= m["mean"] <= m["high"], (k, m)
                mean, half = summary.nth(i).locator(f"td[data-measure={k}]").inner_text().removesuffix(" ◆").split(" ± ")
                assert float(mean) == pytest.approx(m["mean"], rel=6e-3, abs=5e-3)  # 3 significant digits, or 2 decimals
                assert float(half) == pytest.approx((m["high"] - m["low"]) / 2, rel=6e-3, abs=5e-3)
        differ = [d for d in exp["differences"] if d["differ"]]
        assert exp["differences"] and page.locator("#seed-summary td.differs").count() == 2 * len(differ)
        verdict = page.inner_text("#differences")
        if differ:  # each pair the API found apart, by name, and nothing else called different
            assert "No two variants differ" not in verdict, verdict
            for d in differ:
                assert f"{d['a']} and {d['b']} differ on" in verdict, (d, verdict)
        else:  # whether two seeds' intervals part depends on the seeds: both outcomes are checked
            assert verdict.startswith("No two variants differ on any measure at 2 seeds"), verdict
        # The 1-D spectrum: one line per variant, a point per frequency of the API's profile.
        page.wait_for_selector("#spectrum-profile svg polyline")
        lines = page.eval_on_selector_all("#spectrum-profile polyline", "ps => ps.map(p => [p.dataset.series, p.getAttribute('points').split(' ').length])")
        assert [name for name, _ in lines] == [v["label"] for v in exp["variants"]], lines
        assert [n for _, n in lines] == [len(v["spectrum_profile"]["freqs"]) for v in exp["variants"]] and lines[0][1] > 4, lines

        # Zoom one view: the other follows, pixel for pixel.
        viewers = page.locator("#views .viewer")
        viewers.nth(0).scroll_into_view_if_needed()  # below the tables: the wheel goes where the mouse is
        box = viewers.nth(0).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(6):
            page.mouse.wheel(0, -200)
        transforms = page.eval_on_selector_all("#views .viewer img", "imgs => imgs.map(i => i.style.transform)")
        assert transforms[0] == transforms[1] and "scale(" in transforms[0]
        assert float(transforms[0].split("scale(")[1].rstrip(")")) > 3
        rendering = page.eval_on_selector("#views .viewer img", "i => getComputedStyle(i).imageRendering")
        assert rendering in ("pixelated", "crisp-edges")  # no smoothing when zoomed
        page.screenshot(path=str(ARTIFACTS / "experiment-zoomed.png"), full_page=True)

        page.click("#modes button[data-mode=swipe]")
        page.wait_for_function("document.querySelectorAll('#swipe-viewer img').length === 2")
        page.fill("#swipe", "20")
        page.dispatch_event("#swipe", "input")
        assert "80%" in page.eval_on_selector("#swipe-top", "e => e.style.clipPath")
        swipe = page.eval_on_selector_all("#swipe-viewer img", "imgs => imgs.map(i => i.style.transform)")
        assert swipe[0] == swipe[1] == transforms[0]  # the swipe view keeps the zoom
        page.click("#modes button[data-mode=diff]")
        page.wait_for_function("[...document.querySelectorAll('#views .viewer img')].every(i => i.complete && i.naturalWidth > 0)")
        page.wait_for_function("[...document.querySelectorAll('#spectra img')].length >= 3 && "
                               "[...document.querySelectorAll('#spectra img')].every(i => i.complete && i.naturalWidth > 0)")

        # One's own image, through every variant.
        page.set_input_files("#own", str(own))
        page.wait_for_function("document.querySelectorAll('#own-views img').length === 2 && "
                               "[...document.querySelectorAll('#own-views img')].every(i => i.complete && i.naturalWidth === 90)",
                               timeout=120_000)
        page.click("#modes button[data-mode=side]")
        page.screenshot(path=str(ARTIFACTS / "experiment-done.png"), full_page=True)
        assert not errors, errors
        assert len(asked) == 1 and "API key" in asked[0]  # asked once, kept for the tab across pages
    finally:
        demo.send_signal(signal.SIGTERM)  # as `kill` stops it: its server goes too
        demo.wait(timeout=90)
    wait_for(lambda: not worker_pids(out / "server"), timeout=40, what="the demo's server to stop")
    assert "".join(printed).rstrip().endswith("}")  # with --json, stdout holds the scores alone


def test_an_archive_uploaded_from_the_page_is_validated_and_then_picked(server, browser, tmp_path):
    import io
    import tarfile

    server, key = server

    def tar(path: Path, members: dict[str, bytes]) -> Path:
        with tarfile.open(path, "w") as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return path

    def png(image) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).resize((48, 48)).save(buf, "PNG")
        return buf.getvalue()

    photos = tar(tmp_path / "photos.tar", {"rocket.png": png(skimage.data.rocket()), "coffee.png": png(skimage.data.coffee())})
    notes = tar(tmp_path / "notes.tar", {"notes.txt": b"no image here"})
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept(key))
    page.goto(f"{server}/ui/")
    page.wait_for_selector("#decoders input[value=deconv]")
    row = "#content-sets tbody tr"
    for archive, name in ((photos, "two photos"), (notes, "notes")):
        page.set_input_files("#archive-form input[name=archive]", str(archive))
        page.fill("#archive-form input[name=name]", name)
        page.click("#archive-form button[type=submit]")
        page.wait_for_function(f"document.querySelector('#archive-status').textContent.includes('{archive.name}: sent')")
    # The data worker of `checkerless serve` validates them; the list follows without a reload.
    page.wait_for_function(f"[...document.querySelectorAll('{row}')].some(r => r.innerText.includes('two photos')"
                           " && r.innerText.includes('ready'))", timeout=60_000)
    page.wait_for_function(f"[...document.querySelectorAll('{row}')].some(r => r.innerText.includes('notes')"
                           " && r.innerText.includes('failed: '))", timeout=60_000)
    set_id = page.get_attribute(f"{row}:has-text('two photos')", "data-set")
    cells = page.eval_on_selector_all(f"{row}[data-set='{set_id}'] td", "tds => tds.map(td => td.innerText)")
    size = f"{photos.stat().st_size / 1e6:.1f}"
    assert cells[3] == "ready" and cells[4].endswith(f"/{size} MB") and cells[5] == "2", cells  # of the whole archive; two images
    offered = page.eval_on_selector_all("select[name=content_set] option", "os => os.map(o => o.value)")
    assert offered == ["", set_id]  # ready sets only: not the failed one

    page.select_option("select[name=content_set]", set_id)
    page.uncheck(f"#decoders input[value={DEFAULTS.decoder}]")
    style = tmp_path / "style.png"
    Image.fromarray(skimage.data.immunohistochemistry()).resize((48, 48)).save(style)
    page.set_input_files("input[name=style]", str(style))
    for field, value in (("size", "32"), ("steps", "2"), ("batch", "1")):
        page.fill(f"input[name={field}]", value)
    page.click("#experiment-form button[type=submit]")
    page.wait_for_function("document.querySelector('#form-status').textContent.includes('queued')")
    prefix = page.inner_text("#form-status").split()[1]
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        (job,) = [j for j in client.get("/v1/jobs").json() if j["id"].startswith(prefix)]
        assert job["content_set_id"] == set_id
        client.post(f"/v1/jobs/{job['id']}/cancel")  # training on a set: tests/e2e of the worker and of training
    page.screenshot(path=str(ARTIFACTS / "content-sets.png"), full_page=True)
    assert not errors, errors


def _page(browser, key: str, errors: list[str], **kw):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, **kw)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept(key))
    return page


def _loaded(selector: str) -> str:
    """JS: every image under the selector has loaded (and there is at least one)."""
    return (f"[...document.querySelectorAll('{selector}')].length > 0 && "
            f"[...document.querySelectorAll('{selector}')].every(i => i.complete && i.naturalWidth > 0)")


def test_a_builtin_style_picked_by_its_thumbnail_trains_a_job_with_a_page_of_its_own(server, browser, tmp_path):
    """The newcomer's path: no file of one's own; a thumbnail picked, one decoder, submit; the
    job's page shows progress, curves, the style beside the outputs, and stylises a photo with
    the options the API takes (strength 0 gives the photo back), then a video, and a long one
    cancelled. Over a minute on a 2-core CPU: a real training job, then real stylisations on
    the warm stylise servers, each shown in the page."""
    server, key = server
    errors: list[str] = []
    page = _page(browser, key, errors)
    page.goto(f"{server}/ui/")
    page.wait_for_function(_loaded("#builtin-styles .thumb img"))
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        builtin = client.get("/v1/builtin-styles").json()
    assert page.locator("#builtin-styles .thumb").count() == len(builtin) >= 2
    # Decoder labels read as phrases, not "(none overlap)".
    labels = page.eval_on_selector_all("#decoders label", "ls => ls.map(l => l.innerText.trim())")
    assert any(t.startswith("deconv") and "uneven overlap" in t for t in labels), labels
    assert any(t.startswith("resize-nearest") and t.endswith("no overlap") for t in labels), labels
    assert not any("none overlap" in t for t in labels), labels
    # The new settings are advanced fields, with the schema's defaults.
    from models.vocabulary import PRECISIONS

    page.click("#advanced summary")
    assert page.input_value("input[name=stability_weight]") == str(DEFAULTS.stability_weight).removesuffix(".0")
    assert page.locator(f"#poolings [name=loss_pooling][value='{DEFAULTS.loss_pooling}']").count() == 1
    # The precision: a select of the API's choices, at its default; the newcomer asks for fp32.
    assert page.eval_on_selector_all("select[name=precision] option", "os => os.map(o => o.value)") == list(PRECISIONS)
    assert page.input_value("select[name=precision]") == DEFAULTS.precision
    page.select_option("select[name=precision]", "32")
    from models.vocabulary import STABILITY_SHIFTS

    assert page.eval_on_selector_all("select[name=stability_shift] option", "os => os.map(o => o.value)") == list(
        STABILITY_SHIFTS)
    assert page.input_value("select[name=stability_shift]") == DEFAULTS.stability_shift
    shift = next(s for s in STABILITY_SHIFTS if s != DEFAULTS.stability_shift)  # the newcomer asks for the other
    page.select_option("select[name=stability_shift]", shift)
    # Filtered ReLUs: a box ticked as the default is; the newcomer unticks it for a faster step.
    assert page.is_checked("input[name=filtered_relu]") is DEFAULTS.filtered_relu is True
    page.uncheck("input[name=filtered_relu]")

    # The first built-in is picked to start with; the newcomer picks another instead.
    first, other = builtin[0]["name"], builtin[1]["name"]
    assert page.get_attribute(f".thumb[data-style='builtin:{first}']", "aria-pressed") == "true"
    page.click(f".thumb[data-style='builtin:{first}']")
    page.click(f".thumb[data-style='builtin:{other}']")
    assert page.inner_text("#style-count") == "one style"
    page.uncheck(f"#decoders input[value={DEFAULTS.decoder}]")
    for name, value in (("size", "32"), ("steps", "3"), ("batch", "1")):
        page.fill(f"input[name={name}]", value)
    page.click("#experiment-form button[type=submit]")
    page.wait_for_function("document.querySelector('#form-status').textContent.includes('queued')")
    assert page.url.endswith("/ui/")  # one decoder: a plain job, the form stays
    page.click("#form-status a")  # the status links to the new job's page
    page.wait_for_url("**/job.html?id=*")
    job_id = page.url.split("id=")[1]
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        submitted = client.get(f"/v1/jobs/{job_id}").json()
        assert submitted["styles"][0]["id"] == f"builtin:{other}" and submitted["config"]["precision"] == "32"
        assert submitted["config"]["stability_shift"] == shift and submitted["config"]["filtered_relu"] is False

    page.wait_for_function("['succeeded', 'failed', 'cancelled'].includes(document.querySelector('#state').textContent)",
                           timeout=240_000)
    assert page.inner_text("#state") == "succeeded", (page.inner_text("#summary"), errors)
    assert "3 / 3" in page.inner_text("#summary")
    assert page.inner_text("table.settings tr:has(th:text-is('filtered ReLUs')) td") == "no"
    page.wait_for_function(_loaded("#views .viewer img") + " && " + _loaded("#styles img"), timeout=30_000)
    assert other in page.inner_text("#styles")
    curves = page.eval_on_selector_all("#curves svg.chart", """svgs => Object.fromEntries(svgs.map(s => [
        s.querySelector('text').textContent, [...s.querySelectorAll('polyline')].map(p => p.getAttribute('points').split(' ').length)]))""")
    assert len(curves["loss"]) == 1 and curves["loss"][0] >= 1, curves  # loss rows as the run logged them
    assert curves["style distance (lower is better)"] == [2], curves  # probed at init and at the end
    assert curves["period-8 score (dB)"] == [2], curves
    assert curves["shift equivariance EQ-T (dB; higher is better)"] == [2, 2, 2, 2], curves  # shifts of 1 to 4 px
    # Period 8 and EQ-T beside periods 2 and 4, the distances with what measured them, the precision asked.
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        done = client.get(f"/v1/jobs/{job_id}").json()
    assert float(page.inner_text("#period8")) == pytest.approx(done["artifacts"]["artifact_p8"], abs=0.051)
    assert page.inner_text("#eq-t").endswith(" · ".join(f"{k} px {done['artifacts'][f'eq_t{k}']:.1f}" for k in (1, 2, 3, 4)) + " dB")
    assert done["quality"]["quality_measure"] == "vgg19-max" and page.inner_text("#quality-measure") == "(vgg19-max yardstick)"
    precision = page.eval_on_selector_all("table.settings tr", "rs => rs.map(r => r.innerText)")
    assert any(r.startswith("precision\t32") for r in precision), precision

    # Stylise through the page at strength 0: the photo comes back (to rounding).
    photo = tmp_path / "photo.png"
    pixels = np.asarray(Image.fromarray(skimage.data.coffee()).resize((40, 30)))
    Image.fromarray(pixels).save(photo)
    page.wait_for_selector("#stylize .sb-strength")
    page.eval_on_selector("#stylize .sb-strength", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }")
    page.set_input_files("#own", str(photo))
    page.wait_for_function(_loaded("#own-views .viewer img") + " && document.querySelector('#own-views img').naturalWidth === 40",
                           timeout=120_000)
    assert "strength 0.00" in page.inner_text("#own-views")
    out = page.evaluate("""() => { const i = document.querySelector('#own-views img'), c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight; const x = c.getContext('2d'); x.drawImage(i, 0, 0);
        return [...x.getImageData(0, 0, c.width, c.height).data]; }""")
    out = np.asarray(out, dtype=np.int16).reshape(30, 40, 4)[..., :3]
    assert np.abs(out - pixels.astype(np.int16)).max() <= 1

    # A short video through the same box: progress, then the mp4 with its frame count and flicker.
    import imageio_ffmpeg

    clip, frame = tmp_path / "clip.mp4", np.asarray(Image.fromarray(skimage.data.coffee()).resize((32, 32)))
    writer = imageio_ffmpeg.write_frames(str(clip), (32, 32), fps=8, codec="libx264", macro_block_size=1)
    writer.send(None)
    for t in range(6):  # the picture moves a pixel a frame
        writer.send(np.ascontiguousarray(np.roll(frame, t, axis=1)))
    writer.close()
    page.set_input_files("#stylize .sb-video", str(clip))
    page.wait_for_function("document.querySelector('#own-video video')?.readyState >= 1", timeout=120_000)
    caption = page.inner_text("#own-video figcaption")
    assert "6 frames at 8.00 fps, 32×32" in caption and "flicker: input" in caption, caption
    page.screenshot(path=str(ARTIFACTS / "job-page.png"), full_page=True)

    # A longer video, cancelled from the page while it runs: it ends cancelled, its button gone.
    long_clip, wide = tmp_path / "long.mp4", np.asarray(Image.fromarray(skimage.data.coffee()).resize((64, 64)))
    writer = imageio_ffmpeg.write_frames(str(long_clip), (64, 64), fps=8, codec="libx264", macro_block_size=1)
    writer.send(None)
    for t in range(2000):  # long enough to be running still when the cancel reaches it on a loaded machine
        writer.send(np.ascontiguousarray(np.roll(wide, t, axis=1)))
    writer.close()
    page.set_input_files("#stylize .sb-video", str(long_clip))
    last = "#own-video figure.video-result:last-of-type"
    page.wait_for_function(f"document.querySelector('{last} figcaption')?.textContent.includes(', frame ')",
                           timeout=120_000)
    page.click(f"{last} .video-cancel")
    page.wait_for_function(f"document.querySelector('{last} figcaption').textContent === 'video: cancelled'",
                           timeout=60_000)
    assert page.locator(f"{last} .video-cancel").count() == 0 and page.locator(f"{last} video").count() == 0

    # The jobs table on the index links each job to its page, and shows how it ended.
    page.goto(f"{server}/ui/")
    row = f"#jobs tbody tr[data-job='{job_id}']"
    page.wait_for_selector(f"{row} a[href='job.html?id={job_id}']")
    assert "succeeded" in page.inner_text(row) and "3/3" in page.inner_text(row)
    assert not errors, errors


def test_two_styles_and_two_downsamplings_ticked_make_one_experiment_of_multi_style_variants(server, browser):
    """Two thumbnails: one network of two styles (style_ids, in the order picked). One decoder
    and two downsamplings ticked: an experiment whose variants differ only in the downsampling,
    named by their canonical labels. Cancelled at once: training them is the worker's tests'."""
    server, key = server
    errors: list[str] = []
    page = _page(browser, key, errors)
    page.goto(f"{server}/ui/")
    page.wait_for_function(_loaded("#builtin-styles .thumb img"))
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        builtin = [s["name"] for s in client.get("/v1/builtin-styles").json()]
        downsamples = [d["name"] for d in client.get("/v1/downsamples").json()]
    page.click(f".thumb[data-style='builtin:{builtin[2]}']")  # the first is picked already: two styles
    assert page.inner_text("#style-count").startswith("2 styles")
    assert page.eval_on_selector_all(".thumb[aria-pressed=true]", "bs => bs.map(b => b.dataset.order)") == ["0", "1"]
    page.uncheck(f"#decoders input[value={DEFAULTS.decoder}]")
    page.click("#advanced summary")
    other = next(d for d in downsamples if d != DEFAULTS.downsample)  # the default is ticked already
    page.check(f"#downsamples input[value='{other}']")
    for name, value in (("size", "32"), ("steps", "2"), ("batch", "1")):
        page.fill(f"input[name={name}]", value)
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url("**/experiment.html?id=*", timeout=30_000)
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        exp = client.get(f"/v1/experiments/{page.url.split('id=')[1]}").json()
        for v in exp["variants"]:
            client.post(f"/v1/jobs/{v['id']}/cancel")
    assert [s["id"] for s in exp["styles"]] == [f"builtin:{builtin[0]}", f"builtin:{builtin[2]}"]
    assert sorted(v["config"]["downsample"] for v in exp["variants"]) == sorted([DEFAULTS.downsample, other])
    assert {v["decoder"] for v in exp["variants"]} == {"deconv"} and len({v["label"] for v in exp["variants"]}) == 2
    # Both styles stand beside the (coming) outputs, each named.
    page.wait_for_function("document.querySelectorAll('#styles figure').length === 2")
    assert page.eval_on_selector_all("#styles figcaption", "fs => fs.map(f => f.innerText)") == \
        [f"style 0: {builtin[0]}", f"style 1: {builtin[2]}"]
    assert not errors, errors


def test_the_client_submits_a_job_in_a_precision_and_a_bad_one_is_one_line(server, tmp_path):
    """`checkerless jobs submit --precision` sends the setting; the API names what it takes."""
    from tests.test_cli import assert_one_line_error, cli

    server, key = server
    p = cli("jobs", "submit", "ihc", "--precision", "bf16", "--size", "32", "--steps", "2", "--batch", "1",
            "--api", server, "--key", key, "--json")
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)
    with httpx.Client(base_url=server, headers={"X-API-Key": key}) as client:
        client.post(f"/v1/jobs/{job['id']}/cancel")  # training it is the worker's tests'
    assert job["config"]["precision"] == "bf16"
    assert_one_line_error(cli("jobs", "submit", "ihc", "--precision", "fp16", "--api", server, "--key", key),
                          "precision: unknown precision 'fp16'; valid: auto, 32, bf16")
