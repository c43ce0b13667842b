"""The client library against the real service, as a user's script drives it: a style trained
and a photo stylised (one tiny job), every page of 250 jobs, a submission whose answer is lost
retried into one job, a quota's 429 waited out, the API's errors as exceptions, experiments
read into their types, and a real webhook delivery's signature checked."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from datetime import timedelta

import httpx
import numpy as np
import onnxruntime
import pytest
import skimage.data
from PIL import Image

from checkerless_client import (ApiError, ApiUnreachable, AsyncClient, Client, ContentSet, Experiment, ExperimentBrief,
                                ExperimentRun, Job, RetryPolicy, Style, Stylization, Variant, verify_webhook)
from service.core.stores import Stores
from service.core.keys import new_id
from service.core.records import JobRecord, now
from service.core.storage import open_store
from tests.client.proxy import FlakyProxy
from tests.e2e.conftest import free_port, settings_of, wait_for
from service.cli.webhook_receiver import Receiver

TINY = {"size": 32, "batch": 1}


def png(width: int, height: int, name: str = "chelsea") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).resize((width, height)).save(buf, format="PNG")
    return buf.getvalue()


def video(path, frames: int = 5, size: tuple[int, int] = (32, 24)) -> None:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), size, fps=10, codec="libx264", macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    base = np.asarray(Image.fromarray(skimage.data.chelsea()).resize(size))
    for i in range(frames):
        writer.send(np.ascontiguousarray(np.roll(base, i, axis=1)))
    writer.close()


@pytest.mark.slow  # trains a network (3 steps) and exports it
def test_a_user_trains_a_style_and_stylises_a_photo_video_and_downloads_the_network(trainer, tmp_path):
    style_file = tmp_path / "ihc.png"
    style_file.write_bytes(png(48, 48, "immunohistochemistry"))
    receiver = Receiver()
    try:
        with Client(trainer.url, trainer.new_key()) as client:
            job = client.submit(style_file, decoder="deconv", steps=3, webhook_url=receiver.url, **TINY)
            assert isinstance(job, Job) and job.state == "queued" and job.decoder == "deconv" and not job.final
            assert job.styles[0]["name"] == "ihc.png" and job.config["steps"] == 3  # the file was uploaded first
            [style] = client.styles()
            assert isinstance(style, Style) and (style.id, style.width) == (job.style_id, 48)

            seen = list(client.watch(job, poll_s=0.5, timeout_s=300))  # each read, to the final one
            assert seen[-1].state == "succeeded" and all(not j.final for j in seen[:-1]), [j.state for j in seen]
            assert [j.step for j in seen] == sorted(j.step for j in seen) and seen[-1].step == 3
            progress = []
            done = client.wait(job.id, progress=progress.append)  # already over: one read
            assert [j.state for j in progress] == ["succeeded"] and done == progress[0]
            assert done.succeeded and done.attempts == 1 and done.history[0].outcome == "succeeded"
            assert done.finished_at > done.created_at and done.losses["loss"] > 0
            assert done.to_json()["id"] == job.id  # the API's JSON, whole

            photo = png(51, 37)
            out = client.stylize_image(done, photo)
            assert Image.open(io.BytesIO(out)).size == (51, 37)
            a, b = client.stylize_images(done, [photo, ("small.png", png(20, 30))], strength=0.5, colors="luminance")
            assert Image.open(io.BytesIO(a)).size == (51, 37) and Image.open(io.BytesIO(b)).size == (20, 30)
            assert a != out  # half the strength, the photo's colours: another picture

            clip = tmp_path / "clip.mp4"
            video(clip)
            frames = []
            mp4 = client.stylize_video(done, clip, path=tmp_path / "styled.mp4", progress=frames.append)
            assert mp4 == tmp_path / "styled.mp4" and mp4.read_bytes()[4:8] == b"ftyp"
            assert frames[-1].kind == "video" and frames[-1].progress == {"done": 5, "total": 5}
            assert isinstance(frames[-1], Stylization) and frames[-1].outputs[0]["frames"] == 5
            with pytest.raises(ApiError) as ended:  # it has ended: nothing to cancel
                client.cancel_stylization(frames[-1])
            assert ended.value.status == 409

            # The network, three ways: a checkpoint and a TorchScript file (zips of tensors), ONNX that runs.
            ckpt = client.download(done, "checkpoint")
            assert client.download(done.id, "checkpoint", tmp_path / "last.ckpt").read_bytes() == ckpt
            assert any(n.endswith("data.pkl") for n in zipfile.ZipFile(io.BytesIO(ckpt)).namelist())
            scripted = client.download(done, "torchscript")
            assert any(n.endswith("code/__torch__.py") or "/code/" in n for n in zipfile.ZipFile(io.BytesIO(scripted)).namelist())
            onnx = client.download(done, "onnx")
            session = onnxruntime.InferenceSession(onnx)
            x = np.random.default_rng(0).uniform(0, 255, (1, 3, 24, 40)).astype(np.float32)
            assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (1, 3, 24, 40)

            async def async_side() -> tuple:  # the asyncio client: a file streamed to disk, an image uploaded
                async with AsyncClient(trainer.url, client.key) as aio:
                    saved = await aio.download(done.id, "onnx", tmp_path / "net.onnx")
                    return saved.read_bytes(), await aio.stylize_image(done, photo)

            async_onnx, async_png = asyncio.run(async_side())
            assert async_onnx == onnx and Image.open(io.BytesIO(async_png)).size == (51, 37)

            # The job's webhook deliveries, signed by the worker with the owner's secret: checked here.
            secret = client.webhook_secret()
            delivered = wait_for(lambda: [r for r in receiver.received if json.loads(r["body"])["state"] == "succeeded"],
                                 timeout=60, what="the succeeded event's delivery")[0]
            signature = delivered["headers"]["Checkerless-Signature"]
            assert verify_webhook(delivered["body"], signature, secret)
            assert not verify_webhook(delivered["body"].replace(b"succeeded", b"failed"), signature, secret)
            assert not verify_webhook(delivered["body"], signature, secret + "x")
    finally:
        receiver.close()


def test_every_page_of_250_jobs_by_the_link_header(idle):
    """Jobs written straight into the store (as the API writes them), listed through the API."""
    key = idle.new_key()
    store = open_store(settings_of(idle.env))
    from service.core.auth import KeyStore

    owner = KeyStore(store).lookup(key).owner
    stores, base = Stores(store), now()
    ids = [stores.jobs.create(JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3}, style_id=new_id(),
                                        steps=3, created_at=base - timedelta(seconds=i))).id for i in range(250)]
    asked = []
    http = httpx.Client(base_url=idle.url, timeout=60, event_hooks={"request": [lambda r: asked.append(r.url)]})
    with http, Client(http=http, key=key) as client:
        listed = list(client.jobs(limit=100))
        assert [j.id for j in listed] == ids and all(isinstance(j, Job) for j in listed)
        # Three pages: the first asked for, then each page's Link rel="next" as the API wrote it.
        assert [u.params.get("limit") for u in asked] == ["100"] * 3 and asked[0].params.get("cursor") is None
        first = client.jobs_page(limit=100)
        second = client.jobs_page(limit=100, cursor=first.next_cursor)
        assert f"{asked[1].path}?{asked[1].query.decode()}" == first.next_url
        assert [j.id for j in first.items + second.items] == ids[:200]
        last = client.jobs_page(limit=100, cursor=second.next_cursor)
        assert len(last.items) == 50 and last.next_cursor is None and last.next_url is None
        assert [j.id for j in client.jobs(limit=100, cursor=second.next_cursor)] == ids[200:]
        assert len(list(client.jobs())) == 250  # the server's default page (100), followed the same way

    async def every_async() -> list[str]:
        async with AsyncClient(idle.url, key) as client:
            return [j.id async for j in client.jobs(limit=120)]

    assert asyncio.run(every_async()) == ids


def test_a_submission_whose_answer_is_lost_is_sent_again_and_makes_one_job(idle):
    """Through a proxy: first a 503 with Retry-After: 1, then the API makes the job but its answer
    is cut off on the way back, then the API answers again, from the Idempotency-Key."""
    key = idle.new_key()
    proxy = FlakyProxy(int(idle.url.rsplit(":", 1)[1]), ["503", "cut"])
    retries = []
    started = time.monotonic()
    try:
        with Client(proxy.url, key, on_retry=retries.append) as client:
            job = client.submit("builtin:ihc", steps=2, **TINY)
    finally:
        proxy.close()
    assert time.monotonic() - started >= 1.0  # the 503's Retry-After, waited
    assert [(r.status, type(r.error).__name__) for r in retries] == [(503, "NoneType"), (None, "RemoteProtocolError")]
    assert retries[0].wait_s == 1.0 and retries[0].attempt == 1 and retries[1].attempt == 2
    busy, cut, passed = proxy.seen
    assert (busy.action, cut.action, passed.action) == ("503", "cut", "pass")
    keys = {s.headers["idempotency-key"] for s in proxy.seen}
    assert len(keys) == 1  # one request, sent three times
    made = json.loads(cut.answer_body)  # the answer the client never got: the job was made then
    assert cut.answer_head.startswith("HTTP/1.1 201") and made["id"] == job.id
    assert "idempotent-replayed: true" in passed.answer_head.lower()  # the second time, told again
    with Client(idle.url, key) as direct:
        assert [j.id for j in direct.jobs()] == [job.id]
        direct.cancel(job)


def test_a_quotas_429_is_waited_out_and_then_raised_when_it_lasts(idle):
    """Two unfinished jobs an owner (this server's setting), Retry-After 1 s: a third submission
    waits until one of the two is cancelled."""
    with Client(idle.url, idle.new_key()) as other:
        first, second = other.submit("builtin:ihc", steps=2, **TINY), other.submit("builtin:ihc", steps=2, **TINY)
        retries = []

        def cancel_one(event) -> None:  # told before the client waits: meanwhile a job ends
            retries.append(event)
            other.cancel(first)

        with Client(idle.url, other.key, on_retry=cancel_one) as client:
            third = client.submit("builtin:ihc", steps=2, **TINY)
        assert [(r.status, r.wait_s, r.path) for r in retries] == [(429, 1.0, "/v1/jobs")]
        assert {j.id: j.state for j in other.jobs()} == {third.id: "queued", second.id: "queued", first.id: "cancelled"}

        # Still over the limit after the last attempt: the 429 itself, with the API's words.
        with Client(idle.url, other.key, retry=RetryPolicy(attempts=2)) as client:
            with pytest.raises(ApiError) as refused:
                client.submit("builtin:ihc", steps=2, **TINY)
        e = refused.value
        assert (e.status, e.retry_after) == (429, 1.0) and e.detail.startswith("quota: at most 2 unfinished jobs")
        assert str(e) == f"{e.detail} (HTTP 429)"
        # A Retry-After longer than the client will wait: raised at once, nothing waited.
        retries.clear()
        with Client(idle.url, other.key, retry=RetryPolicy(max_retry_after_s=0.5), on_retry=retries.append) as client:
            with pytest.raises(ApiError, match="quota"):
                client.submit("builtin:ihc", steps=2, **TINY)
        assert retries == []
        for job in (second, third):
            other.cancel(job)


def test_the_apis_errors_are_exceptions_with_its_status_and_detail(idle, tmp_path, monkeypatch):
    key = idle.new_key()
    with Client(idle.url, key) as client:
        with pytest.raises(ApiError) as missing:
            client.job("0" * 32)
        assert missing.value.status == 404 and missing.value.detail.startswith("no job")
        with pytest.raises(ApiError) as bad:
            client.submit("builtin:ihc", steps=-1, decoder="nope", **TINY)
        assert bad.value.status == 422 and {p["field"] for p in bad.value.errors} >= {"steps", "decoder"}
        with pytest.raises(ApiError) as text:
            client.upload_style(("notes.png", b"just some text"))
        assert text.value.status == 422 and "notes.png" in text.value.detail
        assert client.health() == {"status": "ok"} and client.ready()["status"] == "ready"

    # No key given: CHECKERLESS_API_URL and CHECKERLESS_API_KEY, else `serve`'s local key file.
    monkeypatch.setenv("CHECKERLESS_API_URL", idle.url)
    monkeypatch.delenv("CHECKERLESS_API_KEY", raising=False)
    monkeypatch.setenv("CHECKERLESS_DATA_DIR", str(tmp_path))
    with Client() as keyless, pytest.raises(ApiError) as unknown:
        keyless.styles()
    assert unknown.value.status == 401 and "API key" in unknown.value.detail
    (tmp_path / "local-key").write_text(key + "\n")
    with Client() as local:
        assert local.key == key and local.styles() == []
    monkeypatch.setenv("CHECKERLESS_API_KEY", key)
    (tmp_path / "local-key").unlink()
    with Client() as from_env:
        assert from_env.url == idle.url and from_env.styles() == []

    # Nothing listening: tried as the policy says, then one error saying so.
    retries = []
    down = f"http://127.0.0.1:{free_port()}"
    with Client(down, key, retry=RetryPolicy(attempts=3, backoff_s=0.01), on_retry=retries.append) as client:
        with pytest.raises(ApiUnreachable, match="cannot reach the API"):
            client.jobs_page()
    assert [type(r.error).__name__ for r in retries] == ["ConnectError", "ConnectError"]

    async def async_errors() -> tuple[ApiError, ApiUnreachable]:
        async with AsyncClient(idle.url, key) as aio, AsyncClient(down, key, retry=RetryPolicy(attempts=2, backoff_s=0.01),
                                                                  on_retry=retries.append) as nowhere:
            try:
                await aio.job("0" * 32)
            except ApiError as e:
                missing = e
            try:
                await nowhere.jobs_page()
            except ApiUnreachable as e:
                return missing, e

    retries.clear()
    missing, unreachable = asyncio.run(async_errors())
    assert missing.status == 404 and missing.detail.startswith("no job") and "ConnectError" in str(unreachable)
    assert len(retries) == 1


def test_content_sets_and_experiments_come_back_typed_and_as_the_schema_says(idle):
    """An experiment's answer is documented in the OpenAPI schema but built by hand: its keys are
    checked against that schema here, on a real answer."""
    schemas = httpx.get(f"{idle.url}/openapi.json").json()["components"]["schemas"]

    def keys(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    with Client(idle.url, idle.new_key()) as client:
        content = client.upload_content_set([("coffee.png", png(40, 40, "coffee")), ("notes.png", b"text")], name="two")
        assert isinstance(content, ContentSet) and (content.state, content.count, content.name) == ("ready", 1, "two")
        assert [s["name"] for s in content.skipped] == ["notes.png"] and content.progress.members == 2
        assert client.wait_content_set(content) == content and client.content_sets() == [content]

        exp = client.create_experiment("builtin:ihc", ["deconv", "resize-nearest"], content_set=content, steps=2, **TINY)
        assert isinstance(exp, Experiment) and exp.state == "running" and exp.content_set_id == content.id
        assert [type(v) for v in exp.variants] == [Variant, Variant]
        assert [v.label for v in exp.variants] == ["deconv", "resize-nearest"]
        assert all(isinstance(r, ExperimentRun) and r.state == "queued" for v in exp.variants for r in v.runs)
        [brief] = client.experiments()
        assert isinstance(brief, ExperimentBrief) and (brief.id, brief.seeds) == (exp.id, 1)

        raw = exp.to_json()
        assert set(raw) == keys("ExperimentPublic")
        for v in raw["variants"]:
            assert set(v) == keys("ExperimentVariant")
            assert all(set(r) == keys("ExperimentRun") for r in v["runs"])
        assert set(brief.to_json()) == keys("ExperimentBrief")

        for v in exp.variants:
            client.cancel(v.id)
        assert client.wait_experiment(exp, poll_s=0.2, timeout_s=30).state == "cancelled"
        client.delete_experiment(exp)
        client.delete_content_set(content)
        assert list(client.experiments()) == [] and client.content_sets() == []
