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
        # bounded answers: the first problems and a count of the rest; long ids refused; JSON's own limit
        ("500 unknown keys", "POST", J, post(**{f"k{i}": 0 for i in range(500)}), 422, "and 490 more problems"),
        ("a 2,000-character style_id", "POST", J, {"json": {"style_id": "f" * 2000}}, 422, "at most 64 characters"),
        ("JSON over its own limit", "POST", J, {"content": b" " * 100_000, "headers": {"content-type": "application/json"}},
         413, "65536 bytes for JSON"),
        ("16-bit PNG style", "POST", S, upload("s16.png", (lambda buf: Image.fromarray(np.linspace(0, 65535, 400 * 400).astype(
            np.uint16).reshape(400, 400)).save(buf, format="PNG") or buf.getvalue())(io.BytesIO())), 201, ""),
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
        # videos that name other files (models/video_input.py): refused at upload, by content, whatever the name
        ("video: HLS playlist of a local file", "POST", f"{J}/{job}/stylize-video",
         upload("up.m3u8", b"#EXTM3U\n#EXTINF:1.0,\n/etc/passwd\n#EXT-X-ENDLIST\n", "application/x-mpegurl"), 422,
         "up.m3u8: an HLS playlist"),
        ("video: DASH manifest named .mp4", "POST", f"{J}/{job}/stylize-video",
         upload("clip.mp4", b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>'
                b"<Representation><BaseURL>file:/etc/passwd</BaseURL></Representation></AdaptationSet></Period></MPD>",
                "video/mp4"), 422, "clip.mp4: a DASH manifest"),
        ("video: ffconcat list", "POST", f"{J}/{job}/stylize-video",
         upload("list.mp4", b"ffconcat version 1.0\nfile 'output.mp4'\n", "video/mp4"), 422, "an ffconcat list"),
        ("video: concat list", "POST", f"{J}/{job}/stylize-video",
         upload("list.txt", b"file '/etc/passwd'\n", "text/plain"), 422, "a concat list"),
        ("video: HLS of a subfile: URL", "POST", f"{J}/{job}/stylize-video",
         upload("s.m3u8", b"#EXTM3U\n#EXTINF:1,\nsubfile,,start,0,end,0,,:/etc/passwd\n", "video/mp4"), 422,
         "an HLS playlist"),
        ("video: text", "POST", f"{J}/{job}/stylize-video", upload("t.mp4", b"just words", "video/mp4"), 422,
         "not a video file we read (text)"),
        ("video: empty", "POST", f"{J}/{job}/stylize-video", upload("e.mp4", b"", "video/mp4"), 422, "e.mp4 is empty"),
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


def raw_request(base_url: str, path: str, headers: dict[str, str], body_chunks=(), *, timeout: float = 10) -> tuple[int, int]:
    """Send a request by hand (headers, then body chunks until the server answers) and return
    (status, body bytes sent before the answer came). The server must answer without waiting
    for what it was promised: a read that waits for the body times out here."""
    import select
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as s:
        head = f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(head.encode() + b"\r\n")
        sent = 0
        for chunk in body_chunks:
            if select.select([s], [], [], 0)[0]:  # an answer is waiting: stop sending
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        reply = s.recv(4096)
    return int(reply.split(b" ", 2)[1]), sent


def test_key_and_size_are_settled_before_any_body_is_read(api, earlier):
    """Every route class that takes a body, with and without an Idempotency-Key: a request
    promising 20 GiB + 1 gets its 401 (no key) or 413 (a key) at once, nothing of the body
    read; a body streamed without a length is cut off at the route's limit."""
    huge = str(20 * 1024**3 + 1)
    key = api.headers["X-API-Key"]
    routes = ["/v1/jobs", "/v1/experiments", "/v1/styles", "/v1/content-sets", "/v1/content-sets/archive",
              f"/v1/jobs/{earlier['job']}/stylize", f"/v1/jobs/{earlier['job']}/stylize-video"]
    answers = {}
    for path in routes:
        for idem in ({}, {"Idempotency-Key": "fill-the-disk"}):
            base = {"Content-Type": "application/octet-stream", "Content-Length": huge, **idem}
            answers[path, bool(idem), "no key"] = raw_request(str(api.base_url), path, base)[0]
            answers[path, bool(idem), "a key"] = raw_request(str(api.base_url), path, {**base, "X-API-Key": key})[0]
    wrong = {k: v for k, v in answers.items() if v != (401 if k[2] == "no key" else 413)}
    assert not wrong, wrong

    # No length, a key and an Idempotency-Key: the body is cut off at the limit (2 MiB here).
    chunk = b"x" * 65536
    chunked = (b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(20 * 1024**3 // len(chunk)))
    status, sent = raw_request(str(api.base_url), "/v1/jobs", {"X-API-Key": key, "Idempotency-Key": "stream",
                                                                "Content-Type": "application/json",
                                                                "Transfer-Encoding": "chunked"}, chunked)
    assert status == 413 and sent < 16 * 1024 * 1024, (status, sent)
    assert api.get("/v1/ready").status_code == 200
