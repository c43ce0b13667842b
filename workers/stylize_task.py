"""The stylise task: one stylisation request, run in the worker's warm stylise servers (one for
images and one for videos; workers/warm_stylize.py owns them). This keeps the record true around
them, takes a video's turn in the video lane, and stops a cancelled one."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from service.core.errors import LostLease, NotFound
from service.core.keys import Keys
from service.core.lease import Start, exhausted, gave_up, hold, stale
from service.core.records import JobState, StylizeRecord
from service.core.settings import Settings
from service.core.storage import ObjectNotFound, ObjectStore
from service.core.stores import Stores
from workers.lease_keeping import POLL_S, LeaseKeeper, write_final
from workers.warm_stylize import video_lane, warm_stylizer

log = logging.getLogger(__name__)


def run_stylize(settings: Settings, store: ObjectStore, request_id: str, *,
                requeue: Callable[[str], None], hand_back: Callable[[str], None] | None = None) -> JobState | None:
    """One stylisation request, served by this worker process's warm stylise server for its
    kind, images or video (workers/warm_stylize.py). A video first takes its turn in the video
    lane: one video at a time per worker process, turns by owner; one that finds the lane taken
    goes back on the queue through `hand_back` (a delayed send), untouched: still queued, no
    attempt counted. The request's own faults (a bad image or checkpoint, a video over the work
    limits) fail it; a server that dies under it (a crash, a kill, the OOM killer) sends it back
    to the queue, up to the attempt limit; past the time limit the server is killed and the
    request fails; a cancel stops it at the next heartbeat."""
    stores = Stores(store)
    try:
        record = stores.stylizations.get(request_id)
    except NotFound:
        return None
    fresh = record.state == JobState.running and not stale(record.heartbeat_at, settings.stale_after_s)
    if record.kind != "video" or record.final or fresh:  # images; or nothing to run (start_stylize says so)
        return _stylize(settings, store, stores, request_id, requeue)
    lane = video_lane(settings)
    if not lane.take(request_id, record.owner):
        log.info("stylization %s: the video lane is taken; it asks again in %.1f s", request_id,
                 settings.stylize_video_retry_s)
        try:
            (hand_back or requeue)(request_id)
        except Exception as e:  # noqa: BLE001 - the known limit: queued with no message (docs/reliability.md)
            log.error("stylization %s: could not be sent again (%s)", request_id, e)
        return record.state
    try:
        return _stylize(settings, store, stores, request_id, requeue)
    finally:
        lane.release(request_id)


def _stylize(settings: Settings, store: ObjectStore, stores: Stores, request_id: str,
             requeue: Callable[[str], None]) -> JobState | None:
    decision, record = stores.stylizations.start(request_id, max_attempts=settings.max_attempts,
                                                 stale_after_s=settings.stale_after_s)
    if decision != Start.run:
        log.info("stylization %s: %s", request_id, decision.value)
        return record.state if record is not None else None
    attempt = record.attempts
    folder = settings.work_dir / f"stylize-{request_id}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    video = record.kind == "video"
    warm = warm_stylizer(settings, "video" if video else "images")

    def end(change: Callable[[StylizeRecord], None], what: str) -> JobState | None:
        def at_our_attempt(r: StylizeRecord) -> None:
            hold(r, attempt, "stylization")
            change(r)

        done = write_final(f"stylization {what}", lambda: stores.stylizations.update(request_id, at_our_attempt),
                           for_s=settings.lease_s)
        return done.state if done else None

    def fail(reason: str) -> JobState | None:
        return end(lambda r: r.move(JobState.failed, error=reason), "failed")

    def retry(reason: str) -> JobState | None:
        def change(r: StylizeRecord) -> None:
            if r.cancel_requested_at is not None:  # asked to stop meanwhile: not run again
                r.move(JobState.cancelled)
            elif exhausted(r.attempts, settings.max_attempts):
                r.move(JobState.failed, error=gave_up(r.attempts, reason))
            else:
                r.move(JobState.queued, error=f"attempt {r.attempts}: {reason}; queued again")

        state = end(change, "requeued")
        if state == JobState.queued:
            try:
                requeue(request_id)
            except Exception as e:  # noqa: BLE001 - the known limit: queued with no message (docs/reliability.md)
                log.error("stylization %s: could not be sent again (%s)", request_id, e)
        return state

    ticket = None
    try:
        try:
            checkpoint, digest = warm.checkpoints.fetch(store, stores.jobs.get(record.job_id).checkpoint_key,
                                                        folder / "net.ckpt")
        except (ObjectNotFound, NotFound):
            return fail("the job has no trained network any more")
        if video:  # under its own suffix, for whoever looks: ffmpeg is told the sniffed container
            inputs = [str(store.download(record.inputs[0], folder / f"input{record.source_suffix}"))]
        else:
            inputs = [str(store.download(k, folder / k.rsplit("/", 1)[1])) for k in record.inputs]
        limit_s = settings.video_time_limit_s if video else settings.stylize_time_limit_s
        lease = LeaseKeeper(lambda: stores.stylizations.heartbeat(request_id, attempt, ticket.progress if ticket else None),
                            settings.heartbeat_s, name=f"heartbeat-{request_id[:8]}")
        started = time.monotonic()
        try:
            ticket = warm.submit(request_id, checkpoint=checkpoint, digest=digest, inputs=inputs, out_dir=folder,
                                 options=record.options, kind=record.kind)
            while not ticket.wait(POLL_S / 10):
                if lease.lost is not None:
                    raise lease.lost
                if lease.age() > settings.lease_s:
                    return None  # finally drops the answer; the sweeper requeues it once the store answers
                if time.monotonic() - started > limit_s:
                    warm.kill(ticket, f"a request ran past the time limit of {limit_s} s")
                    return fail(f"stopped at the time limit of {limit_s} s")
                if getattr(lease.record, "cancel_requested_at", None) is not None:
                    if video:  # the lane's server holds this video alone: stop its work now, start a fresh one
                        warm.kill(ticket, "its video was cancelled", restart=True)
                    # an image request shares its server's round with others: its answer is dropped (finally)
                    return end(lambda r: r.move(JobState.cancelled), "cancelled")
        finally:
            lease.stop()
        if ticket.died is not None:
            return retry(ticket.died.reason)
        answer = ticket.answer or {}
        if not answer.get("ok"):
            return fail(answer.get("error") or "the stylise server gave no reason")
        keys, sizes = [], []
        for i, out in enumerate(answer["outputs"]):
            key = Keys.stylize_video_output(request_id) if video else Keys.stylize_output(request_id, i)
            store.put_file(key, Path(out["path"]), content_type="video/mp4" if video else "image/png")
            keys.append(key)
            sizes.append((out["width"], out["height"]))

        def succeed(r: StylizeRecord) -> None:
            r.outputs, r.sizes = keys, sizes
            if video:
                out = answer["outputs"][0]
                r.video = {k: out[k] for k in ("frames", "fps", "has_audio", "flicker")}
                r.progress = {"done": out["frames"], "total": out["frames"]}
            r.move(JobState.succeeded)

        return end(succeed, "succeeded")
    except (LostLease, NotFound) as e:
        log.warning("stylization %s: %s", request_id, e)
        return None
    finally:
        if ticket is not None and not ticket.wait(0):
            if video:  # nobody wants the rest of this video: free the lane's server for the next one
                warm.kill(ticket, "its supervisor stopped waiting for it")
            warm.abandon(ticket)  # the server may still answer: what it writes is dropped
        shutil.rmtree(folder, ignore_errors=True)
