"""A video upload is sniffed before anything is stored, by the worker's own check
(models/video_input.py): a playlist, a manifest, a list of files or text is a 422 saying what
it is, and nothing is kept; a real video is stored byte for byte. TestClient on the local store
and the embedded broker (no Redis)."""

from __future__ import annotations

import io
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.api.main import create_app
from service.core.keys import Keys
from service.core.records import JobState
from service.core.settings import Settings


def png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def world(tmp_path):
    """One owner with a finished job (marked so, as its worker would have)."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    services = app.state.services
    _, token = services.keys.create(name="a", admin=False)
    client = TestClient(app, headers={"X-API-Key": token})
    style = client.post("/v1/styles", files={"file": ("s.png", png(), "image/png")}).json()["id"]
    job_id = client.post("/v1/jobs", json={"style_id": style, "steps": 2}).json()["id"]
    services.stores.jobs.update(job_id, lambda r: (r.move(JobState.running), r.move(JobState.succeeded)))
    yield client, job_id, services
    client.close()


SECRET = "/srv/checkerless/stylizations/0123/output.mp4"  # what an attacker would point at
REFUSED = [
    ("up.m3u8", f"#EXTM3U\n#EXTINF:1.0,\n{SECRET}\n#EXT-X-ENDLIST\n".encode(), "up.m3u8: an HLS playlist"),
    ("clip.mp4", f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><BaseURL>{SECRET}</BaseURL>'
     .encode(), "clip.mp4: a DASH manifest"),
    ("list.mp4", f"ffconcat version 1.0\nfile '{SECRET}'\n".encode(), "list.mp4: an ffconcat list"),
    ("list.txt", f"file '{SECRET}'\n".encode(), "list.txt: a concat list"),
    ("notes.mp4", b"just some words", "notes.mp4: not a video file we read (text)"),
    ("empty.mp4", b"", "empty.mp4 is empty"),
]


@pytest.mark.parametrize("name, body, fragment", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_file_that_is_not_a_single_video_is_422_and_nothing_is_stored(world, tmp_path, name, body, fragment):
    client, job_id, services = world
    r = client.post(f"/v1/jobs/{job_id}/stylize-video", files=[("file", (name, body, "video/mp4"))])
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    assert services.stores.store.list("stylizations/") == []  # neither the upload nor a record


def test_a_real_video_passes_the_sniff_and_is_stored_as_sent(world, tmp_path):
    client, job_id, services = world
    clip = tmp_path / "clip.webm"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=48x40:rate=10", "-frames:v", "4", "-c:v", "libvpx", str(clip)],
                   check=True, capture_output=True)
    data = clip.read_bytes()
    r = client.post(f"/v1/jobs/{job_id}/stylize-video", files=[("file", ("clip.webm", data, "video/webm"))])
    assert r.status_code == 202 and r.json()["kind"] == "video", r.text
    assert services.stores.store.get_bytes(Keys.stylize_video_input(r.json()["id"])) == data
    assert Keys.stylize_video_input(r.json()["id"]) in services.stores.store.list("stylizations/")  # what the 422s lack
