"""The API process's memory stays flat under archive bombs: its peak RSS (VmHWM), measured
around the hostile uploads, grows by less than 100 MB. A real uvicorn process on a local store."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import bare_api
from tests.zips import bomb, zip_of

MB = 1024 * 1024


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def api(tmp_path):
    with bare_api(tmp_path / "data", timeout=120) as (client, pid):
        yield client, pid


def test_bombs_do_not_raise_the_apis_peak_memory(api):
    client, pid = api
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    photo = buf.getvalue()
    warm = client.post("/v1/content-sets", files=[("files", ("warm.zip", zip_of({"a.png": photo})))])
    assert warm.status_code == 201, warm.text
    idle = peak_rss(pid)

    # The case: a bzip2 member of 256 MiB whose headers claim 1,000 bytes.
    bz = bomb(256, claimed_size=1000, method=zipfile.ZIP_BZIP2)
    assert len(bz) < 2000
    r = client.post("/v1/content-sets", files=[("files", ("bz.zip", bz)), ("files", ("a.png", photo))])
    assert r.status_code == 201 and "bzip2" in r.json()["skipped"][0]["reason"], r.text
    # A deflate member of 1 GiB that claims 1,000 bytes.
    r = client.post("/v1/content-sets", files=[("files", ("lie.zip", bomb(1024, claimed_size=1000))),
                                               ("files", ("a.png", photo))])
    assert r.status_code == 201 and r.json()["skipped"][0]["name"] == "bomb.png", r.text
    # Six honest 250 MiB deflate bombs in one 1.5 MB request: each is cut at the member limit
    # (48 MiB), and together they pass the request's budget (256 MiB).
    one = bomb(250)
    r = client.post("/v1/content-sets", files=[("files", (f"b{i}.zip", one)) for i in range(6)])
    assert r.status_code == 413 and "unpack to more than" in r.json()["detail"], r.text

    grown = peak_rss(pid) - idle
    print(f"API peak RSS: idle {idle / MB:.0f} MB, after the bombs +{grown / MB:.0f} MB")
    assert grown < 100 * MB, f"peak RSS grew by {grown / MB:.0f} MB"
    assert client.get("/v1/health").status_code == 200
