"""Hostile and malformed uploads through the API (TestClient, local store): archives are
bounded by what they unpack to, whatever their headers say; bodies by their real size."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.api.main import create_app
from service.core.settings import Settings
from tests.zips import bomb, zip_of


def png(seed: int = 0, size: int = 40) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def api(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=4 * 1024 * 1024, max_content_images=6,
                        max_member_bytes=8 * 1024 * 1024, max_unpacked_bytes=20 * 1024 * 1024)
    app = create_app(settings)
    _, token = app.state.services.keys.create(name="test")
    with TestClient(app, headers={"X-API-Key": token}) as client:
        yield client


def upload(api, *files: tuple[str, bytes]):
    return api.post("/v1/content-sets", files=[("files", (name, data, "application/octet-stream")) for name, data in files])


def stored(api) -> list[str]:
    return api.app.state.services.store.list("contents")


def test_a_zip_of_images_is_unpacked_and_its_bad_members_listed(api):
    bz2 = zip_of({"sneaky.png": png(3)}, method=zipfile.ZIP_BZIP2)
    r = upload(api, ("photos.zip", zip_of({"a.png": png(1), "sub/b.png": png(2), "notes.txt": b"hello",
                                           "__MACOSX/._a.png": b"junk", ".hidden": b"x"})),
               ("more.zip", bz2), ("c.png", png(4)))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 3
    reasons = {s["name"]: s["reason"] for s in body["skipped"]}
    assert set(reasons) == {"notes.txt", "sneaky.png"}
    assert "compressed with bzip2; only stored and deflate" in reasons["sneaky.png"]


def test_a_member_whose_header_lies_about_its_size_is_refused_without_unpacking_it(api):
    r = upload(api, ("lie.zip", bomb(300, claimed_size=1000)), ("ok.png", png()))
    assert r.status_code == 201, r.text
    (skipped,) = r.json()["skipped"]
    assert skipped["name"] == "bomb.png" and "damaged in the zip" in skipped["reason"]


def test_a_member_over_the_member_limit_is_refused(api):
    r = upload(api, ("big.zip", bomb(12)), ("ok.png", png()))
    assert r.status_code == 201, r.text
    assert "unpacks to more than 8388608 bytes" in r.json()["skipped"][0]["reason"]


def test_many_small_bombs_in_one_request_are_413_and_nothing_is_kept(api):
    one = bomb(7)  # under the member limit; five of them are over the request's 20 MiB
    r = upload(api, ("ok.png", png()), *[(f"b{i}.zip", one) for i in range(5)])
    assert r.status_code == 413 and "unpack to more than 20971520 bytes" in r.json()["detail"], r.text
    assert stored(api) == []


def test_too_many_files_and_damaged_zips_are_422(api):
    r = upload(api, ("many.zip", zip_of({f"{i}.png": png(i, 8) for i in range(7)})))
    assert r.status_code == 422 and "more than 6 images" in r.json()["detail"]
    r = upload(api, ("cut.zip", zip_of({"a.png": png()})[:-30]))
    assert r.status_code == 422 and "damaged or not a zip" in r.json()["detail"]
    r = upload(api, ("empty.zip", zip_of({})))
    assert r.status_code == 422 and "no readable image" in r.json()["detail"]
    assert stored(api) == []


def test_an_oversized_body_is_413_with_or_without_content_length(api):
    big = b"x" * (5 * 1024 * 1024)
    r = api.post("/v1/styles", files={"file": ("s.png", big, "image/png")})
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the body is sent chunked
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="s.png"\r\n\r\n'
        for _ in range(5):
            yield bytes(1024 * 1024)
        yield b"\r\n" + boundary + b"--\r\n"

    r = api.post("/v1/styles", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"], r.text
    assert api.get("/v1/health").status_code == 200


def test_long_names_are_cut_where_stored_and_a_zip_directory_is_bounded(api):
    from service.core.content_sets import NAME_SHOWN

    long = "p" * 5000
    r = upload(api, ("long.zip", zip_of({f"{long}/a.png": png(1), f"{long}/b.png": png(2), f"{long}/n.txt": b"x"})))
    assert r.status_code == 201, r.text
    ((skipped),) = r.json()["skipped"]
    assert skipped["name"] == "p" * (NAME_SHOWN - 1) + "\u2026" and len(skipped["reason"]) < 400, skipped
    services = api.app.state.services
    manifest = services.stores.content_sets.get_manifest(r.json()["id"])
    assert [len(i.name) for i in manifest.images] == [NAME_SHOWN, NAME_SHOWN]
    # A directory larger than 4 KiB for each of the 6 images an upload may hold: refused before zipfile reads it.
    r = upload(api, ("names.zip", zip_of({f"{i}{'q' * 10_000}.png": png(i, 8) for i in range(4)})))
    assert r.status_code == 422 and "the zip's directory" in r.json()["detail"], r.text
    assert "refused unread" in r.json()["detail"]
    # A style's file name, as the form sent it (python-multipart takes header lines of up to 4 KiB).
    r = api.post("/v1/styles", files={"file": ("s" * 3000 + ".png", png(), "image/png")})
    assert r.status_code == 201 and len(r.json()["name"]) == NAME_SHOWN, r.text[:300]
