"""`checkerless content-sets` as a user runs it, against the real API (uvicorn, moto's S3 over
HTTP, Redis): an archive streamed up, its validation followed with --wait while the set's
record moves as the validating worker moves it, prefixes registered, bad input refused."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time

import boto3
from PIL import Image
from skimage import data as samples

from service.core.content_sets import ContentSetState
from service.core.stores import Stores
from service.core.storage import open_store
from tests.e2e.conftest import api_key, free_port, settings_of
from tests.test_cli import assert_one_line_error, cli


def photos_tar(path):
    with tarfile.open(path, "w") as t:
        for name, image in (("astronaut.png", samples.astronaut()), ("coffee.png", samples.coffee())):
            buf = io.BytesIO()
            Image.fromarray(image).resize((64, 64)).save(buf, "PNG")
            info = tarfile.TarInfo(f"photos/{name}")
            info.size = buf.tell()
            t.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def store_of(env: dict[str, str]) -> Stores:
    return Stores(open_store(settings_of(env)))


def validate_soon(stores: Stores, set_id_of, *, error: str | None = None) -> threading.Thread:
    """Moves the set's record as the validating worker does: progress, then ready (or failed)."""
    def run() -> None:
        deadline = time.monotonic() + 60
        while (set_id := set_id_of()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        for members in (1, 2):
            time.sleep(0.8)
            stores.content_sets.update(set_id, lambda r: setattr(r.progress, "members", members))

        def end(r) -> None:
            r.state, r.error, r.count = (ContentSetState.failed, error, 0) if error else (ContentSetState.ready, None, 2)

        stores.content_sets.update(set_id, end)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_upload_and_wait_follows_validation_to_its_end(api, service_env, tmp_path):
    base, key = ["--api", str(api.base_url), "--key", api.headers["X-API-Key"]], []
    archive = photos_tar(tmp_path / "set.tar")
    stores = store_of(service_env)
    before = {r.id for r in stores.content_sets.list()}

    def new_set():
        return next(iter({r.id for r in stores.content_sets.list()} - before - set(key)), None)

    thread = validate_soon(stores, new_set)
    p = cli("content-sets", "upload", archive, "--name", "two photos", "--wait", "--json", *base)
    thread.join(timeout=60)
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout)
    assert (done["state"], done["count"], done["name"]) == ("ready", 2, "two photos")
    assert done["progress"]["total_bytes"] == archive.stat().st_size
    assert "sent" in p.stderr and "validating" in p.stderr  # bytes sent, then the validation's progress
    key.append(done["id"])

    thread = validate_soon(stores, new_set, error="no readable image among 2 members")
    p = cli("content-sets", "upload", archive, "--wait", *base)
    thread.join(timeout=60)
    assert p.returncode == 1 and "failed" in p.stdout and "no readable image among 2 members" in p.stdout, p.stdout

    listed = cli("content-sets", "list", "--json", *base)
    assert [s["state"] for s in json.loads(listed.stdout)] == ["failed", "ready"]
    assert cli("content-sets", "delete", done["id"], *base).returncode == 0
    assert_one_line_error(cli("content-sets", "show", done["id"], *base), "no content set", "HTTP 404")


def test_operators_register_a_prefix(api, service_env, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    bucket = service_env["CHECKERLESS_S3_BUCKET"]
    s3.put_object(Bucket=bucket, Key="datasets/tiny/a.png", Body=b"not checked until a worker reads it")
    admin = ["--api", str(api.base_url), "--key", api_key(service_env, admin=True)]
    p = cli("content-sets", "register", "datasets/tiny", "--json", *admin)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert (got["source"], got["prefix"], got["state"]) == ("prefix", "datasets/tiny/", "validating")
    assert_one_line_error(cli("content-sets", "register", "datasets/none", *admin), "no object under", "HTTP 400")
    assert_one_line_error(cli("content-sets", "register", "datasets/tiny", "--bucket", "no-such-bucket-here", *admin),
                          "does not exist")
    user = ["--api", str(api.base_url), "--key", api.headers["X-API-Key"]]
    assert_one_line_error(cli("content-sets", "register", "datasets/tiny", *user), "needs an admin key", "HTTP 403")


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.tar").write_bytes(b"")
    down = ["--api", f"http://127.0.0.1:{free_port()}"]
    assert_one_line_error(cli("content-sets", "upload", tmp_path / "missing.tar", *down), "missing.tar: no such file")
    assert_one_line_error(cli("content-sets", "upload", tmp_path / "empty.tar", *down), "the file is empty")
    assert_one_line_error(cli("content-sets", "upload", tmp_path / "notes.txt", *down), "not an archive",
                          "a tar, a tar.gz (gzip) or a zip")
    assert_one_line_error(cli("content-sets", "upload", photos_tar(tmp_path / "set.tar"), *down),
                          "cannot reach the API")
    assert_one_line_error(cli("content-sets", "list", *down), "cannot reach the API")
