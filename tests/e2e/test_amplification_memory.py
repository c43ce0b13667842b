"""The API's peak memory under requests that once amplified (issue 25): JSON bodies of unknown
keys, ids of megabytes, and images at the default pixel limit whose conversion went through
float64 (a 16-bit grey PNG cost +1,063 MB, an RGBA one +489 MB). A real uvicorn process with the
default settings; before each request its peak RSS is reset (/proc/PID/clear_refs), and the
peak it reaches is compared with its RSS at rest just before. Each stays under 200 MB above
rest, and each answer is small."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from service.api.schemas import MAX_JSON_BYTES
from service.core.settings import Settings
from tests.e2e.conftest import bare_api

pytestmark = pytest.mark.slow
MB = 1024 * 1024
BUDGET = 200 * MB  # above the API's RSS at rest, for any one request here


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1]) * 1024


@pytest.fixture
def api(tmp_path):
    with bare_api(tmp_path / "data", timeout=300) as (client, pid):
        yield client, pid


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def at_the_pixel_limit() -> tuple[bytes, bytes]:
    """A 16-bit grey PNG and an RGBA PNG (gradients: small files, like the issue's 78 KB one),
    square, as large as the default pixel limit allows."""
    side = math.isqrt(Settings.model_fields["max_pixels"].default)
    ramp = np.linspace(0, 1, side)
    grey = png(Image.fromarray(((ramp[:, None] + ramp[None, :]) * 32767.5).astype(np.uint16)))
    rgba = np.empty((side, side, 4), np.uint8)
    rgba[..., 0] = (ramp * 255).astype(np.uint8)[None, :]
    rgba[..., 1] = (ramp * 255).astype(np.uint8)[:, None]
    rgba[..., 2] = 128
    rgba[..., 3] = (ramp[::-1] * 255).astype(np.uint8)[None, :]
    return grey, png(Image.fromarray(rgba, "RGBA"))


def json_body(text: str) -> dict:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def test_amplifying_requests_stay_within_the_apis_memory_budget(api):
    client, pid = api
    grey, rgba = at_the_pixel_limit()
    million_keys = "{" + ",".join(f'"k{i}":0' for i in range(1_000_000)) + "}"  # the 12 MB body
    # The largest body of unknown keys that the JSON limit lets through.
    keys_to_the_limit = million_keys[:million_keys.rindex(",", 0, MAX_JSON_BYTES)] + "}"
    cases = [
        ("JSON: a million unknown keys (12 MB)", "POST", "/v1/jobs", json_body(million_keys), 413),
        (f"JSON: {keys_to_the_limit.count(':'):,d} unknown keys ({len(keys_to_the_limit):,d} B)", "POST", "/v1/jobs",
         json_body(keys_to_the_limit), 422),
        ("style_id of 2,000 characters", "POST", "/v1/jobs", {"json": {"style_id": "f" * 2000}}, 422),
        ("style_id of 49 MB", "POST", "/v1/jobs", json_body('{"style_id": "' + "f" * 49_000_000 + '"}'), 413),
        ("an id of 8,000 characters in the path", "GET", "/v1/jobs/" + "f" * 8000, {}, 404),
        ("16-bit grey PNG at the pixel limit", "POST", "/v1/styles", {"files": {"file": ("g.png", grey)}}, 201),
        ("RGBA PNG at the pixel limit", "POST", "/v1/styles", {"files": {"file": ("a.png", rgba)}}, 201),
    ]
    # Warm: the routes and the image code loaded once, so the first case pays no imports.
    assert client.post("/v1/styles", files={"file": ("w.png", png(Image.new("I;16", (64, 64))))}).status_code == 201
    assert client.post("/v1/jobs", json={"style_id": "0" * 32}).status_code == 404

    rows, failures = [], []
    for what, method, path, kwargs, status in cases:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) starts again from the RSS now
        rest = status_kb(pid, "VmRSS")
        r = client.request(method, path, **kwargs)
        grown, kept = status_kb(pid, "VmHWM") - rest, status_kb(pid, "VmRSS") - rest
        rows.append(f"{what:42s} {r.status_code:4d} {len(r.content):8,d} B {grown / MB:+8.0f} MB {kept / MB:+8.0f} MB")
        if r.status_code != status or grown > BUDGET or (status >= 400 and len(r.content) > 4096):
            failures.append(f"{what}: {r.status_code} ({len(r.content)} bytes) {r.text[:300]}, +{grown / MB:.0f} MB")
    print(f"\nthe API's memory per request, above its RSS at rest (budget {BUDGET // MB} MB):\n"
          f"{'request':42s} {'status':>4s} {'answer':>10s} {'peak':>11s} {'kept':>11s}\n" + "\n".join(rows))
    assert not failures, "\n".join(failures)
    assert client.get("/v1/health").status_code == 200
