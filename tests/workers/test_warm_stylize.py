"""The warm stylise server and its owner, with real server processes (torch in them, never in
this test's worker side): reuse, batching, the LRU of networks, restarts (a kill, the RSS
limit, the time limit), and the local checkpoint cache."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.core.settings import Settings
from service.core.storage import LocalStore, ObjectNotFound
from workers.warm_stylize import CheckpointCache, WarmStylizer, sha256_file

def make_checkpoint(path: Path, *, decoder: str = "deconv", seed: int = 0) -> Path:
    """A real checkerless checkpoint of an untrained network (models/checkpoint.py's format)."""
    import torch

    from models.config import TrainConfig
    from models.transformer_net import TransformerNet

    torch.manual_seed(seed)
    config = TrainConfig(decoder=decoder)
    net = TransformerNet(decoder=config.decoder_stages)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "checkerless": {"format": 1, "config": config.to_dict(), "decoder": config.decoder,
                                "style_name": "test", "style_png": b"\x89PNG", "content": "builtin", "step": 0,
                                "versions": {}}}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("ckpt")
    return [(p, sha256_file(p)) for p in (make_checkpoint(folder / "a.ckpt", seed=0),
                                          make_checkpoint(folder / "b.ckpt", seed=1))]


def settings_for(tmp_path: Path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path, device="cpu", **overrides)


def request(warm: WarmStylizer, tmp_path: Path, name: str, checkpoint: tuple[Path, str], size=(24, 16)):
    folder = tmp_path / name
    folder.mkdir()
    image = folder / "in.png"
    w, h = size
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(image)
    return warm.submit(name, checkpoint=checkpoint[0], digest=checkpoint[1], inputs=[str(image)], out_dir=folder)


def done(ticket, timeout: float = 120) -> dict:
    assert ticket.wait(timeout), "no answer from the stylise server"
    assert ticket.died is None, ticket.died
    assert ticket.answer["ok"], ticket.answer
    out = ticket.answer["outputs"][0]
    assert Image.open(out["path"]).size == (out["width"], out["height"])
    return ticket.answer


def test_a_second_request_reuses_the_server_and_its_network(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    try:
        first = done(request(warm, tmp_path, "r1", checkpoints[0]))
        second = done(request(warm, tmp_path, "r2", checkpoints[0], size=(40, 30)))
        assert first["cache"] == "miss" and second["cache"] == "hit"
        assert first["stats"]["pid"] == second["stats"]["pid"] and warm.starts == 1
        assert second["outputs"][0]["width"] == 40 and second["outputs"][0]["height"] == 30
        status = warm.status()
        assert [r["cache"] for r in status["recent"]] == ["miss", "hit"]
        assert status["stats"]["hits"] == 1 and status["stats"]["misses"] == 1
    finally:
        warm.close()


def test_the_server_stylises_in_the_precision_its_spec_names(tmp_path, checkpoints):
    """auto by default (bf16 where the CPU has bf16 matrix units, for a network without low-pass
    filters: the server's status; a network of today's defaults, with them, in fp32 on a CPU);
    a `stylize_precision` setting names another. The fp32 server's PNG is what stylize_tensor
    gives in fp32, to the pixel."""
    import torch

    from models.checkpoint import load_network
    from models.hardware import cpu_has_bf16_units
    from models.images import load_tensor
    from models.stylize import stylize_tensor

    class WithPrecision(Settings):  # the field a deployment sets (CHECKERLESS_STYLIZE_PRECISION)
        stylize_precision: str = "32"

    auto = "bf16" if cpu_has_bf16_units() else "32"
    for name, settings, expected in (("auto", settings_for(tmp_path / "a"), auto),
                                     ("fp32", WithPrecision(data_dir=tmp_path / "b", device="cpu"), "32")):
        warm = WarmStylizer(settings)
        try:
            answer = done(request(warm, tmp_path, name, checkpoints[0]))
            assert answer["stats"]["precision"] == expected
            assert answer["precision"] == "32"  # the checkpoint's network has today's filtered ReLUs
            assert warm.status()["server"]["precision"] == expected
        finally:
            warm.close()
    net, _ = load_network(checkpoints[0][0])
    expected = stylize_tensor(net, load_tensor(tmp_path / "fp32" / "in.png"), precision="32")
    got = np.asarray(Image.open(answer["outputs"][0]["path"]))
    assert np.array_equal(got, expected.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def test_requests_waiting_together_are_served_as_one_batch(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    try:
        # Sent while the fresh server still imports torch: all three wait in its inbox.
        tickets = [request(warm, tmp_path, f"r{i}", checkpoints[i % 2]) for i in range(3)]
        answers = [done(t) for t in tickets]
        assert {a["batch"] for a in answers} == {1} and {a["batch_size"] for a in answers} == {3}
        # Grouped by network: one load each; the two requests of network a ran back to back.
        assert [a["cache"] for a in answers] == ["miss", "miss", "hit"]
        assert [a["stats"]["requests"] for a in answers] == [1, 3, 2]
        assert max(a["stats"]["misses"] for a in answers) == 2
    finally:
        warm.close()


def test_the_lru_evicts_when_the_budget_holds_one_network(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path, stylize_cache_bytes=10_000_000))  # one network is ~6.7 MB
    try:
        answers = [done(request(warm, tmp_path, f"r{i}", checkpoints[i % 2])) for i in range(4)]
        assert [a["cache"] for a in answers] == ["miss"] * 4
        stats = answers[-1]["stats"]
        assert stats["evictions"] == 3 and len(stats["loaded"]) == 1 and stats["bytes"] <= 10_000_000
        assert stats["loaded"][0]["digest"] == checkpoints[1][1]
        assert len({a["stats"]["pid"] for a in answers}) == 1  # one server all along
    finally:
        warm.close()


def test_a_killed_server_fails_what_it_held_and_the_next_request_gets_a_new_one(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    try:
        ticket = request(warm, tmp_path, "r1", checkpoints[0])
        os.kill(ticket.server.pid, signal.SIGKILL)  # mid-request: it is still importing torch
        assert ticket.wait(30) and ticket.died is not None
        assert "killed by signal 9" in ticket.died.reason and not ticket.died.killed_by_us
        again = done(request(warm, tmp_path, "r2", checkpoints[0]))
        assert again["stats"]["pid"] != ticket.server.pid and warm.starts == 2
        assert warm.status()["restarts"]["died"] == 1
    finally:
        warm.close()


def test_a_server_past_its_rss_limit_is_restarted_between_requests(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path, stylize_server_max_rss_bytes=1))
    try:
        first = done(request(warm, tmp_path, "r1", checkpoints[0]))
        second = done(request(warm, tmp_path, "r2", checkpoints[0]))
        assert first["stats"]["pid"] != second["stats"]["pid"]
        assert second["cache"] == "miss"  # a fresh server starts empty
        assert warm.status()["restarts"]["rss"] >= 1 and warm.starts == 2
    finally:
        warm.close()


def test_a_prestarted_server_past_its_rss_limit_is_replaced_at_once(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path, stylize_server_max_rss_bytes=1))
    try:
        warm.prestart()
        first_pid = warm.server.pid
        first = done(request(warm, tmp_path, "r1", checkpoints[0]))
        assert first["stats"]["pid"] == first_pid and warm.starts == 2  # the replacement is starting already
        assert warm.server is not None and warm.server.pid != first_pid
    finally:
        warm.close()


def test_a_server_started_from_a_thread_outlives_that_thread(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    answers = []
    try:
        t = threading.Thread(target=lambda: answers.append(done(request(warm, tmp_path, "r1", checkpoints[0]))))
        t.start()
        t.join(120)
        time.sleep(1)  # had the thread been its parent for PR_SET_PDEATHSIG, SIGKILL would have come by now
        again = done(request(warm, tmp_path, "r2", checkpoints[0]))
        assert again["stats"]["pid"] == answers[0]["stats"]["pid"] and again["cache"] == "hit"
        assert warm.starts == 1 and warm.status()["restarts"]["died"] == 0
    finally:
        warm.close()


def test_kill_stops_the_server_and_says_why(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    try:
        ticket = request(warm, tmp_path, "r1", checkpoints[0])
        warm.kill(ticket, "a request ran past the time limit of 1 s")
        assert ticket.died is not None and ticket.died.killed_by_us
        assert "time limit" in ticket.died.reason
        assert warm.status()["restarts"]["killed"] == 1
        done(request(warm, tmp_path, "r2", checkpoints[0]))
    finally:
        warm.close()


def test_a_bad_input_fails_its_request_and_the_server_goes_on(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    try:
        folder = tmp_path / "bad"
        folder.mkdir()
        (folder / "in.png").write_bytes(b"not an image")
        bad = warm.submit("bad", checkpoint=checkpoints[0][0], digest=checkpoints[0][1],
                          inputs=[str(folder / "in.png")], out_dir=folder)
        assert bad.wait(120) and bad.died is None
        assert not bad.answer["ok"] and bad.answer["user_error"] and "in.png" in bad.answer["error"]
        good = done(request(warm, tmp_path, "good", checkpoints[0]))
        assert good["stats"]["pid"] == bad.server.pid
    finally:
        warm.close()


def test_a_playlist_sent_as_a_video_is_refused_by_the_server_itself(tmp_path, checkpoints):
    """Defence in depth: the API refuses a playlist at upload; one that reaches the stylise server
    anyway (sent straight to it here) is refused there too, with the reason, and nothing written."""
    import subprocess

    import imageio_ffmpeg

    secret = tmp_path / "private" / "secret.mp4"
    secret.parent.mkdir()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=red:size=48x40:rate=10", "-frames:v", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(secret)], check=True, capture_output=True)
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "input.mp4").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n")
    warm = WarmStylizer(settings_for(tmp_path))
    try:
        bad = warm.submit("bad", checkpoint=checkpoints[0][0], digest=checkpoints[0][1],
                          inputs=[str(folder / "input.mp4")], out_dir=folder, kind="video")
        assert bad.wait(120) and bad.died is None
        assert not bad.answer["ok"] and bad.answer["user_error"], bad.answer
        assert "input.mp4: an HLS playlist" in bad.answer["error"], bad.answer
        assert sorted(p.name for p in folder.iterdir()) == ["input.mp4"]  # no output, no temporary file
    finally:
        warm.close()


def test_an_idle_server_exits_and_the_next_request_starts_one(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path, stylize_server_idle_s=1))
    try:
        first = done(request(warm, tmp_path, "r1", checkpoints[0]))
        deadline = time.monotonic() + 30
        while warm.server is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert warm.server is None and warm.status()["restarts"]["idle"] == 1
        second = done(request(warm, tmp_path, "r2", checkpoints[0]))
        assert second["stats"]["pid"] != first["stats"]["pid"]
    finally:
        warm.close()


def test_concurrent_submissions_from_threads_all_get_their_own_answer(tmp_path, checkpoints):
    warm = WarmStylizer(settings_for(tmp_path))
    answers: dict[str, dict] = {}
    try:
        done(request(warm, tmp_path, "warm-up", checkpoints[0]))

        def one(i: int) -> None:
            answers[f"t{i}"] = done(request(warm, tmp_path, f"t{i}", checkpoints[i % 2], size=(16 + i, 16)))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(answers) == [f"t{i}" for i in range(6)]
        assert all(answers[f"t{i}"]["outputs"][0]["width"] == 16 + i for i in range(6))
        assert warm.starts == 1
    finally:
        warm.close()


# --- the lanes: videos beside images, the video limits, turns by owner, cancel -------------------

# A video may have at most 160 frames of 64x64, a smaller frame counting as 64x64.
SMALL = {"max_video_frames": 400, "max_video_frame_pixels": 64 * 64 * 160, "video_pixel_floor": 64 * 64}


def make_clip(path: Path, *, size: tuple[int, int] = (64, 64), frames: int = 8, fps: int = 10) -> Path:
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size={size[0]}x{size[1]}:rate={fps}", "-frames:v", str(frames), "-c:v", "libx264",
                    "-pix_fmt", "yuv444p", str(path)], check=True, capture_output=True)
    return path


def video(warm: WarmStylizer, tmp_path: Path, name: str, checkpoint: tuple[Path, str], clip: Path):
    folder = tmp_path / name
    folder.mkdir()
    return warm.submit(name, checkpoint=checkpoint[0], digest=checkpoint[1], inputs=[str(clip)], out_dir=folder,
                       kind="video")


def until(predicate, timeout: float = 120, what: str = "it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_video_limits_name_the_limit_and_the_videos_numbers():
    from workers.stylize_server import video_frame_cap, video_over_limits

    limits = {"max_frames": 400, "max_frame_pixels": 64 * 64 * 160, "pixel_floor": 64 * 64}
    assert video_frame_cap(16, 16, limits) == (160, "work") and video_frame_cap(1, 1, limits) == (160, "work")
    assert video_frame_cap(128, 64, limits) == (80, "work")
    assert video_over_limits(64, 64, 160, limits) is None
    assert video_over_limits(128, 64, 81, limits) == (
        "the video has more than 80 frames of 128x64 = 8,192 pixels: over the limit of 655,360 frames x pixels a "
        "video (CHECKERLESS_MAX_VIDEO_FRAME_PIXELS), which at this size allows 80 frames: send a shorter or smaller one")
    plenty = {"max_frames": 400, "max_frame_pixels": 10**12, "pixel_floor": 1}
    assert video_over_limits(8, 8, 401, plenty) == (
        "the video has more than 400 frames; the limit is 400 frames a video (CHECKERLESS_MAX_VIDEO_FRAMES): "
        "send a shorter one")
    assert "allows none" in video_over_limits(2000, 2000, 1, {**plenty, "max_frame_pixels": 10**6})


def test_a_video_over_the_work_limit_is_refused_before_any_frame_and_one_at_it_runs(tmp_path, checkpoints):
    """1-pixel-like frames count as the floor: 161 frames of 16x16 are over 160 x 64x64."""
    warm = WarmStylizer(settings_for(tmp_path, **SMALL), "video")
    try:
        over = video(warm, tmp_path, "over", checkpoints[0], make_clip(tmp_path / "over.mp4", size=(16, 16), frames=161))
        assert over.wait(120) and over.died is None and not over.answer["ok"] and over.answer["user_error"], over.answer
        assert over.answer["error"] == (
            "the video has more than 160 frames of 16x16, each counted as 4,096 pixels, the per-frame floor: over the "
            "limit of 655,360 frames x pixels a video (CHECKERLESS_MAX_VIDEO_FRAME_PIXELS), which at this size "
            "allows 160 frames: send a shorter or smaller one")
        assert over.progress is None and not any((tmp_path / "over").iterdir())  # not a frame stylised, nothing written
        at = video(warm, tmp_path, "at", checkpoints[0], make_clip(tmp_path / "at.mp4", size=(16, 16), frames=160))
        assert at.wait(120) and at.answer["ok"], at.answer
        assert at.answer["outputs"][0]["frames"] == 160 and at.server is over.server  # the server went on
        status = json.loads((tmp_path / "work" / f"stylize-video-server-{os.getpid()}.json").read_text())
        assert status["lane"] == "video" and [r["ok"] for r in status["recent"]] == [False, True]
    finally:
        warm.close()


def test_the_reported_video_of_29970_one_pixel_frames_is_refused_by_the_default_limits(tmp_path, checkpoints):
    """Issue 25: a 1x1 video of 29,970 frames held the one stylise server for 5.5 minutes."""
    warm = WarmStylizer(settings_for(tmp_path), "video")
    try:
        clip = make_clip(tmp_path / "one.mp4", size=(1, 1), frames=29_970, fps=30)
        ticket = video(warm, tmp_path, "one", checkpoints[0], clip)
        assert ticket.wait(120) and ticket.died is None and not ticket.answer["ok"], ticket.answer
        assert ticket.answer["error"] == ("the video has more than 18,000 frames; the limit is 18,000 frames a video "
                                          "(CHECKERLESS_MAX_VIDEO_FRAMES): send a shorter one")
    finally:
        warm.close()


def test_an_image_is_answered_while_a_video_holds_the_video_lane_and_a_killed_video_server_restarts(tmp_path,
                                                                                                    checkpoints):
    settings = settings_for(tmp_path, **SMALL)
    images, videos = WarmStylizer(settings, "images"), WarmStylizer(settings, "video")
    try:
        done(request(images, tmp_path, "warm-up", checkpoints[0]))  # the image lane warm, as a worker prestarts it
        long = video(videos, tmp_path, "long", checkpoints[0], make_clip(tmp_path / "long.mp4", frames=160))
        until(lambda: long.progress and long.progress["done"] > 0, what="the video's first frames")
        image = done(request(images, tmp_path, "image", checkpoints[0]))
        assert not long.wait(0), "the video ended before the image: this test shows nothing"
        assert image["stats"]["pid"] == images.server.pid != long.server.pid
        # A cancelled video: its lane's server killed and a fresh one started at once, which serves the next.
        videos.kill(long, "its video was cancelled", restart=True)
        assert long.died is not None and long.died.killed_by_us and "cancelled" in long.died.reason
        assert videos.server is not None and videos.server.pid != long.server.pid
        short = video(videos, tmp_path, "short", checkpoints[0], make_clip(tmp_path / "short.mp4", size=(32, 32),
                                                                           frames=6))
        assert short.wait(120) and short.answer["ok"] and short.answer["outputs"][0]["frames"] == 6, short.answer
        assert videos.starts == 2 and videos.status()["restarts"]["killed"] == 1
        assert images.starts == 1  # untouched by the video lane's restart
    finally:
        images.close()
        videos.close()


def test_the_video_lane_goes_in_turns_by_owner_and_forgets_those_that_stopped_asking():
    from workers.warm_stylize import VideoLane

    lane = VideoLane(forget_s=0.5)
    assert lane.take("a1", "alice")
    assert not lane.take("a2", "alice") and not lane.take("b1", "bob")  # one video at a time
    lane.release("a1")
    assert not lane.take("a2", "alice")  # bob has had no turn yet
    assert lane.take("b1", "bob")
    assert not lane.take("a2", "alice")
    lane.release("b1")
    assert lane.take("a2", "alice")
    lane.release("a2")
    assert lane.take("c1", "carol")  # the lane free and nobody waiting: hers at once
    lane.release("c1")
    assert lane.take("a3", "alice") is True and not lane.take("d1", "dave")
    lane.release("a3")
    time.sleep(0.6)  # dave stopped asking (cancelled, or taken by another worker): not waited for
    assert lane.take("a4", "alice")


def test_videos_take_turns_by_owner_go_back_untouched_and_a_cancelled_one_frees_the_lane(tmp_path, checkpoints):
    """run_stylize with the real servers and a local store: while alice's video runs, her second one
    and bob's go back on the queue (still queued, no attempt); alice's first, cancelled, ends
    cancelled with the video server restarted; then bob's goes before alice's second."""
    from service.core.errors import Conflict, NotFound
    from service.core.stores import Stores
    from service.core.keys import Keys, new_id
    from service.core.records import JobRecord, JobState, StylizeRecord
    from workers.stylize_task import run_stylize
    from workers.warm_stylize import LANES, warm_stylizer

    settings = settings_for(tmp_path, heartbeat_s=0.2, **SMALL)
    store = LocalStore(tmp_path / "store")
    stores, job_id = Stores(store), new_id()
    # A trained job: its record names its checkpoint (a record from before checkpoints per
    # attempt, here: the checkpoint at its old key).
    stores.jobs.create(JobRecord(id=job_id, config={"steps": 1}, style_id=new_id(), steps=1))
    store.put_file(Keys.checkpoint(job_id), checkpoints[0][0])

    def clip_request(owner: str, size: tuple[int, int], frames: int) -> str:
        request_id = new_id()
        key = Keys.stylize_video_input(request_id)
        store.put_file(key, make_clip(tmp_path / f"{request_id}.mp4", size=size, frames=frames))
        stores.stylizations.create(StylizeRecord(id=request_id, owner=owner, job_id=job_id, inputs=[key], kind="video",
                                                 source_suffix=".mp4"))
        return request_id

    handed: list[str] = []
    run = lambda i: run_stylize(settings, store, i, requeue=handed.append, hand_back=handed.append)  # noqa: E731
    try:
        a1 = clip_request("alice", (64, 64), 160)
        ended: dict[str, JobState | None] = {}
        t = threading.Thread(target=lambda: ended.update(a1=run(a1)))
        t.start()
        until(lambda: stores.stylizations.get(a1).progress.get("done", 0) > 0, what="alice's first video to run")
        a2, b1 = clip_request("alice", (16, 16), 4), clip_request("bob", (16, 16), 4)
        assert run(a2) == JobState.queued and run(b1) == JobState.queued and handed == [a2, b1]
        assert [stores.stylizations.get(i).attempts for i in (a2, b1)] == [0, 0]
        with pytest.raises(NotFound):
            stores.stylizations.request_cancel(a1, "bob")  # another owner's: as if it did not exist
        server = warm_stylizer(settings, "video").server.pid
        assert stores.stylizations.request_cancel(a1, "alice").state == JobState.running  # flagged; its worker stops it
        t.join(60)
        assert ended["a1"] == JobState.cancelled and stores.stylizations.get(a1).state == JobState.cancelled
        with pytest.raises(Conflict):
            stores.stylizations.request_cancel(a1, "alice")
        lane = warm_stylizer(settings, "video")
        assert lane.server is not None and lane.server.pid != server and lane.status()["restarts"]["killed"] == 1
        assert run(a2) == JobState.queued and handed[-1] == a2  # bob has had no turn: his goes first
        for i in (b1, a2):
            assert run(i) == JobState.succeeded, stores.stylizations.get(i).error
        assert [stores.stylizations.get(i).attempts for i in (a2, b1)] == [1, 1]
        # A queued one is cancelled at once, and its delivery then does nothing.
        a3 = clip_request("alice", (16, 16), 4)
        assert stores.stylizations.request_cancel(a3, "alice").state == JobState.cancelled
        assert run(a3) == JobState.cancelled and stores.stylizations.get(a3).attempts == 0
    finally:
        for lane_name in LANES:
            warm_stylizer(settings, lane_name).close()


# --- the checkpoint cache (no server) -------------------------------------------------------------


def test_checkpoints_are_downloaded_once_per_stored_version(tmp_path):
    store = LocalStore(tmp_path / "store")
    cache = CheckpointCache(tmp_path / "cache", budget_bytes=10_000)
    store.put_bytes("jobs/a/checkpoint/last.ckpt", b"one" * 100)
    path, digest = cache.fetch(store, "jobs/a/checkpoint/last.ckpt", tmp_path / "r1" / "net.ckpt")
    assert path.read_bytes() == b"one" * 100 and cache.misses == 1
    _, again = cache.fetch(store, "jobs/a/checkpoint/last.ckpt", tmp_path / "r2" / "net.ckpt")
    assert again == digest and cache.hits == 1 and cache.misses == 1
    store.put_bytes("jobs/a/checkpoint/last.ckpt", b"two" * 100)  # a new version of the object
    path, changed = cache.fetch(store, "jobs/a/checkpoint/last.ckpt", tmp_path / "r3" / "net.ckpt")
    assert changed != digest and path.read_bytes() == b"two" * 100 and cache.misses == 2
    with pytest.raises(ObjectNotFound):
        cache.fetch(store, "jobs/gone/checkpoint/last.ckpt", tmp_path / "r4" / "net.ckpt")


def test_the_checkpoint_cache_keeps_to_its_budget_and_requests_keep_their_copy(tmp_path):
    store = LocalStore(tmp_path / "store")
    cache = CheckpointCache(tmp_path / "cache", budget_bytes=2500)
    held = []
    for i in range(4):
        store.put_bytes(f"jobs/{i}/checkpoint/last.ckpt", bytes([i]) * 1000)
        held.append(cache.fetch(store, f"jobs/{i}/checkpoint/last.ckpt", tmp_path / f"r{i}" / "net.ckpt")[0])
    kept = list((tmp_path / "cache").glob("**/*.ckpt"))
    assert 0 < len(kept) < 4 and sum(p.stat().st_size for p in kept) <= 2500, kept  # some evicted, within budget
    assert (tmp_path / "cache" / "bytes").exists()  # the cache's byte counter (workers/disk_cache.py)
    assert all(p.read_bytes() == bytes([i]) * 1000 for i, p in enumerate(held))  # evicted or not


def test_the_s3_version_is_its_etag(s3_endpoint, tmp_path):
    import uuid

    from service.core.storage import S3Store

    store = S3Store(bucket=f"warm-{uuid.uuid4().hex[:10]}", endpoint_url=s3_endpoint, access_key="test",
                    secret_key="test", create_bucket=True)
    store.put_bytes("k/one", b"abc")
    first = store.version("k/one")
    assert first == store.get_versioned("k/one")[1]
    store.put_bytes("k/one", b"abcd")
    assert store.version("k/one") != first
    with pytest.raises(ObjectNotFound):
        store.version("k/none")
    cache = CheckpointCache(tmp_path / "cache", budget_bytes=10_000)
    cache.fetch(store, "k/one", tmp_path / "a")
    cache.fetch(store, "k/one", tmp_path / "b")
    assert (cache.hits, cache.misses) == (1, 1)


def test_leftovers_of_gone_owners_are_removed_and_the_living_kept(tmp_path):
    """A worker starting up removes the status files and server folders of processes that are
    gone (a worker killed before it could), never a living one's."""
    import subprocess
    import sys

    from workers.warm_stylize import _remove_leftovers

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    living = os.getppid()
    for pid in (gone.pid, living):
        (tmp_path / f"stylize-server-{pid}").mkdir()
        (tmp_path / f"stylize-video-server-{pid}.json").write_text("{}")
    (tmp_path / "stylize-server-notapid").mkdir()
    _remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"stylize-server-{living}", f"stylize-video-server-{living}.json", "stylize-server-notapid"])
