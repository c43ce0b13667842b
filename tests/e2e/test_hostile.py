"""Hostile and malformed requests, as a table: each gets its status and a message that says
what is wrong, and afterwards the API and the worker are healthy and every earlier job and
file is intact. The real API (uvicorn), Redis, moto's S3 server and a worker."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.e2e.conftest import wait_for
from tests.zips import bomb, zip_of

pytestmark = pytest.mark.slow
TINY = {"size": 32, "batch": 1}


def png(w: int = 48, h: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).resize((w, h)).save(buf, format="PNG")
    return buf.getvalue()


def noise_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker()


@pytest.fixture(scope="module")
def earlier(api, worker):
    """A job trained before the onslaught, and a digest of its checkpoint."""
    style = api.post("/v1/styles", files={"file": ("s.png", png(), "image/png")}).json()["id"]
    job = api.post("/v1/jobs", json={"style_id": style, **TINY, "steps": 2}).json()
    done = wait_for(lambda: (j := api.get(f"/v1/jobs/{job['id']}").json())["state"] in ("succeeded", "failed") and j,
                    timeout=240, what="the earlier job")
    assert done["state"] == "succeeded", done
    digest = hashlib.sha256(api.get(f"/v1/jobs/{job['id']}/checkpoint").content).hexdigest()
    return {"style": style, "job": job["id"], "digest": digest}


def many_files_zip(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(n):
            z.writestr(f"{i}.png", b"x")
    return buf.getvalue()


J, S = "/v1/jobs", "/v1/styles"
ZERO = "0" * 32


def cases(e: dict) -> list[tuple]:
    """(what, method, path, request keyword arguments, status, a fragment of the message)."""
    job = e["job"]
    post = lambda **body: {"json": {"style_id": e["style"], **TINY, **body}}  # noqa: E731
    upload = lambda name, data, ctype="image/png": {"files": {"file": (name, data, ctype)}}  # noqa: E731
    content = lambda *files: {"files": [("files", f) for f in files]}  # noqa: E731
    return [
        # keys
        ("no key", "GET", J, {"headers": {"X-API-Key": ""}}, 401, "needs an API key"),
        ("unknown key", "GET", J, {"headers": {"X-API-Key": "ck_guess"}}, 401, "unknown or revoked"),
        ("bearer garbage", "GET", J, {"headers": {"X-API-Key": "", "Authorization": "Bearer x y z"}}, 401, "unknown"),
        ("basic auth", "GET", J, {"headers": {"X-API-Key": "", "Authorization": "Basic dXNlcjpwYXNz"}}, 401, "needs an API key"),
        ("key in the URL", "GET", J + "?api_key=ck_x&key=ck_x", {"headers": {"X-API-Key": ""}}, 401, "needs an API key"),
        ("an 8 KB key", "GET", J, {"headers": {"X-API-Key": "k" * 8000}}, 401, "unknown or revoked"),
        # ids and paths
        ("path traversal", "GET", J + "/..%2F..%2Fetc%2Fpasswd", {}, 404, ""),
        ("dots as id", "GET", J + "/....", {}, 404, "no job"),
        ("33 hex digits", "GET", J + "/" + "a" * 33, {}, 404, "no job"),
        ("upper-case hex", "GET", J + "/" + "A" * 32, {}, 404, "no job"),
        ("unknown job", "GET", J + "/" + ZERO, {}, 404, "no job"),
        ("unknown file of a job", "GET", f"{J}/{job}/passwd", {}, 404, "no file 'passwd'"),
        ("panel that is not", "GET", f"{J}/{job}/panel/..%2F..%2Fstyle", {}, 404, ""),
        ("negative output index", "GET", f"/v1/stylizations/{ZERO}/outputs/-1", {}, 404, "no stylization"),
        ("index not a number", "GET", f"/v1/stylizations/{ZERO}/outputs/one", {}, 422, "index"),
        ("unknown experiment", "GET", f"/v1/experiments/{ZERO}/difference/chelsea", {}, 404, "no experiment"),
        ("unknown style", "POST", J, {"json": {"style_id": ZERO}}, 404, "no style"),
        ("quote in an id", "POST", J, {"json": {"style_id": "' OR 1=1 --"}}, 404, "no style"),
        ("method not allowed", "PUT", J, {"json": {}}, 405, "Method Not Allowed"),
        # fields
        ("body not JSON", "POST", J, {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
        ("body a list", "POST", J, {"json": [1, 2]}, 422, "valid dictionary"),
        ("steps a fraction", "POST", J, post(steps=1.5), 422, "steps"),
        ("size negative", "POST", J, post(size=-1), 422, "size"),
        ("size huge", "POST", J, post(size=10**12), 422, "size"),
        ("lr NaN", "POST", J, {"content": json.dumps({"style_id": e["style"], "lr": float("nan")}),
                               "headers": {"content-type": "application/json"}}, 422, "lr"),
        ("style weight infinite", "POST", J, {"content": json.dumps({"style_id": e["style"], "style_weight": float("inf")}),
                                              "headers": {"content-type": "application/json"}}, 422, "style_weight"),
        ("three decoder stages", "POST", J, post(decoder="deconv,deconv,deconv"), 422, "decoder"),
        ("empty decoder", "POST", J, post(decoder=""), 422, "decoder"),
        ("emoji decoder", "POST", J, post(decoder="deconv\U0001F600"), 422, "unknown decoder"),
        ("seed negative", "POST", J, post(seed=-1), 422, "seed"),
        ("seed past 32 bits", "POST", J, post(seed=2**40), 422, "seed"),
        ("unknown field", "POST", J, post(admin=True), 422, "admin"),
        ("JSON as text/plain", "POST", J, {"content": json.dumps({"style_id": e["style"]}),
                                          "headers": {"content-type": "text/plain"}}, 422, "valid dictionary"),
        ("body over the limit", "POST", J, {"content": b" " * (3 * 1024 * 1024),
                                           "headers": {"content-type": "application/json"}}, 413, "larger than the limit"),
        ("one variant", "POST", "/v1/experiments", post(variants=["deconv"]), 422, "at least two"),
        ("Idempotency-Key too long", "POST", J, {**post(), "headers": {"Idempotency-Key": "i" * 300}}, 400, "Idempotency-Key"),
        # uploads
        ("empty style", "POST", S, upload("s.png", b""), 422, "empty"),
        ("text as style", "POST", S, upload("s.png", b"hello"), 422, "not an image"),
        ("truncated PNG", "POST", S, upload("s.png", png()[:300]), 422, "cannot decode"),
        ("too many pixels", "POST", S, upload("big.png", noise_png(600, 600)), 422, "the limit is 250000"),
        ("SVG as style", "POST", S, upload("s.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"), 422, "not an image"),
        ("zip as style", "POST", S, upload("s.zip", zip_of({"a.png": png()}), "application/zip"), 422, "not an image"),
        ("no file field", "POST", S, {"data": {"other": "x"}}, 422, "file"),
        ("bzip2 member only", "POST", "/v1/content-sets", content(("b.zip", bomb(8, method=zipfile.ZIP_BZIP2))), 422, "bzip2"),
        ("zip of a zip", "POST", "/v1/content-sets", content(("z.zip", zip_of({"inner.zip": zip_of({"a.png": png()})}))), 422, "not an image"),
        ("too many files", "POST", "/v1/content-sets", content(("m.zip", many_files_zip(501))), 422, "more than 500 images"),
        ("damaged zip", "POST", "/v1/content-sets", content(("d.zip", zip_of({"a.png": png()})[:40])), 422, "damaged"),
        ("stylize without files", "POST", f"{J}/{job}/stylize", {}, 422, "files"),
        ("stylize text", "POST", f"{J}/{job}/stylize", content(("t.png", b"text")), 422, "not an image"),
    ]


def test_hostile_requests_get_clear_answers_and_break_nothing(api, worker, earlier):
    table = cases(earlier)
    assert len(table) >= 40
    failures = []
    for what, method, path, kwargs, status, fragment in table:
        r = api.request(method, path, **kwargs)
        detail = r.json().get("detail", "") if r.headers.get("content-type", "").startswith("application/json") else r.text
        if r.status_code != status or fragment not in json.dumps(detail):
            failures.append(f"{what}: {r.status_code} {detail!r}")
    assert not failures, "\n".join(failures)

    # A zip member named to escape: stored under our own key, listed by its name, nothing else.
    r = api.post("/v1/content-sets", files=[("files", ("t.zip", zip_of({"../../evil.png": png()})))])
    assert r.status_code == 201 and r.json()["count"] == 1, r.text

    # Everything still stands: the API, the earlier job and its file, and the worker.
    assert api.get("/v1/ready").status_code == 200
    assert api.get(f"{J}/{earlier['job']}").json()["state"] == "succeeded"
    assert hashlib.sha256(api.get(f"{J}/{earlier['job']}/checkpoint").content).hexdigest() == earlier["digest"]
    job = api.post(J, json={"style_id": earlier["style"], **TINY, "steps": 2}).json()
    done = wait_for(lambda: (j := api.get(f"{J}/{job['id']}").json())["state"] in ("succeeded", "failed") and j,
                    timeout=240, what="a job after the onslaught")
    assert done["state"] == "succeeded", done
