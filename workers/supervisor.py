"""What a Celery task does: supervise one child process and keep the job record true.

The task process never imports torch. It begins an attempt (a compare-and-set on the job
record, so two deliveries of one job never both run it), prepares a scratch folder, starts
`python -m workers.child` in its own session and polls it:
- every heartbeat: the child's progress into the record, which also renews the attempt's
  lease and tells of a cancel; a supervisor that cannot renew for `lease_s` (the store is
  down) stops its child, so a sweeper that requeues the job never makes two run at once;
- new checkpoints go to the store from a thread of their own, never on the heartbeat's path;
- a stop (cancel, time limit, the worker asked to shut down) is the STOP file, then SIGTERM,
  then SIGKILL to the child's process group;
- whatever happens in here, the child is stopped before the task returns (try/finally).
A child killed by a signal (the OOM killer), stopped because its worker is shutting down, or
ended by the store failing under it (EXIT_RETRY: its content set is streamed from the store,
workers/content_stream.py) is requeued and resumes from its last checkpoint; the attempt limit
ends a job that dies every time, with each attempt's reason kept in its history.

Stylisations run in the worker's warm stylise servers instead of a child per request, one for
images and one for videos (workers/warm_stylize.py owns them; `run_stylize` below keeps the
record true around them, takes a video's turn in the video lane, and stops a cancelled one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from service.core import protocol
from service.core.builtin_styles import builtin_name, is_builtin
from service.core.errors import LostLease, NotFound
from service.core.jobs import JobStore
from service.core.lease import Start, exhausted, gave_up, hold, stale
from service.core.keys import Keys
from service.core.records import JobRecord, JobState, StylizeRecord
from service.core.settings import Settings
from service.core.storage import ObjectNotFound, ObjectStore, StoreError
from workers.gpus import GpuSlots
from workers.content_stream import stream_spec
from workers.warm_stylize import video_lane, warm_stylizer

log = logging.getLogger(__name__)
POLL_S = 0.5


# --- the child process ----------------------------------------------------------------------


def spawn(kind: str, spec: protocol.TrainSpec, folder: Path, gpus: list[str] | None = None) -> subprocess.Popen:
    """The child, in its own session; given `gpus` (the slots its task holds), it sees only those."""
    folder.mkdir(parents=True, exist_ok=True)
    protocol.write(folder / protocol.SPEC, spec)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else None
    with open(folder / protocol.LOG, "ab") as log_file:  # the child keeps its own copy; ours closes here
        return subprocess.Popen([sys.executable, "-m", "workers.child", kind, str(folder / protocol.SPEC)],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
                                env=env)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_now(proc: subprocess.Popen) -> None:
    """SIGKILL to the child's whole group, and reap it: nothing of the job outlives this."""
    signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log.error("child %d did not die after SIGKILL", proc.pid)


def error_text(folder: Path, rc: int) -> str:
    text = (folder / protocol.ERROR).read_text().strip() if (folder / protocol.ERROR).exists() else ""
    if text:
        return text
    if rc < 0:
        return f"the training process was killed by signal {-rc} (out of memory?)"
    return f"the training process exited with code {rc}; see the worker log"


def draining(settings: Settings) -> bool:
    """Our Celery worker was asked to stop (see workers/tasks.py): its pool processes are our
    parent's children, so the marker is named by our parent's pid (or by ours, in a worker
    that runs its tasks as threads)."""
    return drain_marker(settings, os.getppid()).exists() or drain_marker(settings, os.getpid()).exists()


def drain_marker(settings: Settings, worker_pid: int) -> Path:
    return settings.work_dir / f"drain-{worker_pid}"


# --- checkpoints, off the heartbeat's path -----------------------------------------------------


class CheckpointUploader:
    """Uploads the newest checkpoint the child wrote, in a thread of its own; a newer one
    replaces one still waiting. Each is hard-linked first, so the child may write the next.
    After each upload `on_stored()` runs (the record names it as the job's checkpoint)."""

    def __init__(self, store: ObjectStore, key: str, folder: Path, on_stored: Callable[[], None] = lambda: None):
        self.store, self.key, self.folder, self.on_stored = store, key, folder, on_stored
        self._pending: Path | None = None
        self._busy = False
        self._seen: int | None = None
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)
        self._thread.start()

    def offer(self, ckpt: Path) -> None:
        try:
            mtime = ckpt.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._seen:
            return
        self._seen, self._count = mtime, self._count + 1
        staged = self.folder / f"upload-{self._count}.ckpt"
        try:
            os.link(ckpt, staged)
        except FileNotFoundError:  # replaced between stat and link: the next poll sees the new one
            self._seen = None
            return
        with self._cond:
            if self._pending is not None:
                self._pending.unlink(missing_ok=True)
            self._pending = staged
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                path, self._pending, self._busy = self._pending, None, True
            try:
                self.store.put_file(self.key, path)
                path.unlink(missing_ok=True)
                self.on_stored()
            except Exception as e:  # noqa: BLE001 - the store, or naming the upload in the record: again
                log.warning("checkpoint upload failed (%s); will retry", e)
                time.sleep(1)
                with self._cond:
                    if self._pending is None and not self._closed:
                        self._pending = path  # nothing newer arrived: retry this one
                    else:
                        path.unlink(missing_ok=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def idle(self) -> bool:
        """Every checkpoint offered so far is stored."""
        with self._cond:
            return self._pending is None and not self._busy

    def close(self, *, discard: bool = False) -> None:
        with self._cond:
            if discard and self._pending is not None:
                self._pending.unlink(missing_ok=True)
                self._pending = None
            self._closed = True
            self._cond.notify_all()


class LeaseKeeper:
    """Heartbeats in a thread of their own: `renew()` every `every_s` seconds. The supervisor
    reads `age()` (seconds since the last successful renewal) and `lost` (the record says the
    attempt is no longer ours), and never waits on a store call that hangs."""

    def __init__(self, renew: Callable[[], object], every_s: float, name: str):
        self._renew, self.every_s = renew, every_s
        self.record: object | None = None
        self.lost: LostLease | None = None
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.record = self._renew()
                self._renewed = time.monotonic()
            except LostLease as e:
                self.lost = e
                return
            except (StoreError, NotFound) as e:
                log.warning("heartbeat failed (%s)", e)

    def age(self) -> float:
        return time.monotonic() - self._renewed

    def stop(self) -> None:
        self._stop.set()


# --- training -------------------------------------------------------------------------------


def _prepare(store: ObjectStore, record: JobRecord, settings: Settings, folder: Path) -> protocol.TrainSpec:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return protocol.TrainSpec(
        config=record.config, style=_styles(store, record, folder), max_pixels=settings.max_pixels,
        device=settings.device, devices=record.devices, exports=list(settings.export_formats),
        probe_size=settings.probe_size,
        # streamed as it trains, through the worker's cache
        content=stream_spec(store, settings, record.content_set_id, folder) if record.content_set_id else None,
        resume=(str(store.download(record.checkpoint_key, folder / "resume.ckpt"))
                if store.exists(record.checkpoint_key) else None))


def _styles(store: ObjectStore, record: JobRecord, folder: Path) -> str | list[str]:
    """What the child's train(style=...) takes: per style, a built-in's name (resolved there by
    models.data.load_style) or the uploaded image downloaded here; one style as itself."""
    styles = record.style_list
    specs = []
    for i, s in enumerate(styles):
        if is_builtin(s["id"]):
            specs.append(builtin_name(s["id"]))
        else:
            specs.append(str(store.download(Keys.style(s["id"]), folder / ("style.png" if len(styles) == 1
                                                                           else f"style-{i}.png"))))
    return specs[0] if len(specs) == 1 else specs


def _retry(what: str, fn: Callable[[], JobRecord], *, for_s: float) -> JobRecord | None:
    """A final write, retried while the store is unreachable; None if it never got through
    (the job then looks dead to the sweeper, which requeues it: no outcome is lost)."""
    deadline = time.monotonic() + for_s
    while True:
        try:
            return fn()
        except StoreError as e:
            if time.monotonic() > deadline:
                log.error("could not record %s: %s", what, e)
                return None
            time.sleep(1)


def run_train_job(settings: Settings, store: ObjectStore, job_id: str, *, worker: str,
                  requeue: Callable[[str], None], slots: GpuSlots | None = None) -> JobState | None:
    """One delivery of a job. On a worker with GPU slots, the job's `devices` GPUs are held
    (waiting, still queued, while other jobs hold them) from before its attempt starts until
    its child is gone; a CPU worker runs any number of devices as processes."""
    jobs = JobStore(store)
    if draining(settings):  # our worker is shutting down: leave the job to another one
        requeue(job_id)
        return None
    if slots is None or not slots.gpus:
        return _attempt(settings, store, jobs, job_id, worker=worker, requeue=requeue, gpus=None)
    try:
        devices = jobs.get(job_id).devices
    except NotFound:
        return None
    if devices > len(slots.gpus):
        reason = (f"the job asks for {devices} GPUs and its worker has {len(slots.gpus)}; "
                  "a job's GPUs must all be on one worker")
        try:
            return jobs.fail_if_queued(job_id, reason).state
        except NotFound:
            return None

    def give_up() -> bool:  # while waiting for GPUs: the worker is stopping, or another delivery took the job
        try:
            return draining(settings) or jobs.get(job_id).state != JobState.queued
        except NotFound:
            return True

    with slots.hold(devices, give_up=give_up) as gpus:
        if gpus is None:
            if draining(settings):
                requeue(job_id)
            return None
        return _attempt(settings, store, jobs, job_id, worker=worker, requeue=requeue, gpus=gpus)


def _attempt(settings: Settings, store: ObjectStore, jobs: JobStore, job_id: str, *, worker: str,
             requeue: Callable[[str], None], gpus: list[str] | None) -> JobState | None:
    decision, record = jobs.start_attempt(job_id, worker=worker, max_attempts=settings.max_attempts,
                                          stale_after_s=settings.stale_after_s)
    if decision != Start.run:
        log.info("job %s: %s", job_id, decision.value)
        return record.state if record is not None else None
    attempt = record.attempts
    folder = settings.work_dir / job_id / f"attempt-{attempt}"
    try:
        return _supervise(settings, store, jobs, record, folder, requeue, gpus)
    except LostLease as e:
        log.warning("job %s attempt %d: %s; stopped", job_id, attempt, e)
        return None
    finally:
        # Our attempt's folder only: where workers share a scratch folder (several on one
        # machine), the attempt that took over from a lost lease may be writing beside it.
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the job's folder, once no attempt is left in it


def _supervise(settings: Settings, store: ObjectStore, jobs: JobStore, record: JobRecord, folder: Path,
               requeue: Callable[[str], None], gpus: list[str] | None) -> JobState | None:
    job_id, attempt = record.id, record.attempts
    # Heartbeats begin with the attempt: preparing it (the style, the content, the checkpoint to
    # resume from) can take longer than the stale timeout, and the job must not look dead meanwhile.
    lease = LeaseKeeper(
        lambda: jobs.heartbeat(job_id, attempt, protocol.read(folder / protocol.PROGRESS, protocol.TrainProgress)),
        settings.heartbeat_s, name=f"heartbeat-{job_id[:8]}")
    try:
        spec = _prepare(store, record, settings, folder)
    except ObjectNotFound as e:  # its style or content set was deleted: retrying cannot help
        lease.stop()
        reason = f"an input of the job is gone from the store ({e.key})"
        gone = _retry(f"job {job_id} failed", lambda: jobs.end_attempt(job_id, attempt, JobState.failed, reason=reason),
                      for_s=settings.lease_s)
        return gone.state if gone is not None else None
    except BaseException:
        lease.stop()
        raise
    if lease.lost is not None or lease.age() > settings.lease_s:  # no child may start for a job no longer ours
        lease.stop()
        raise lease.lost or LostLease(f"job {job_id}: no heartbeat for {lease.age():.0f} s while preparing")
    proc = spawn("train", spec, folder, gpus)
    uploader = CheckpointUploader(store, Keys.attempt_checkpoint(job_id, attempt), folder,
                                  on_stored=lambda: _name_checkpoint(store, jobs, job_id, attempt))
    log.info("job %s attempt %d: child pid %d", job_id, attempt, proc.pid)
    ckpt = folder / protocol.RUN / protocol.CHECKPOINT
    stop_reason: str | None = None  # cancel, drain, time limit
    stop_at = termed = rc = None
    started = time.monotonic()
    ended = False
    try:
        # Until the child has ended and its last checkpoint is stored, heartbeats go on.
        while not (rc is not None and uploader.idle()):
            rc = proc.poll() if rc is None else rc
            uploader.offer(ckpt)
            if lease.lost is not None:
                raise lease.lost
            if lease.age() > settings.lease_s:
                log.error("job %s: no heartbeat for %.0f s; stopping the child so no other worker runs it "
                          "alongside; the sweeper requeues it", job_id, lease.age())
                return None  # finally stops the child
            t = time.monotonic()
            if rc is None:
                if stop_reason is None and getattr(lease.record, "cancel_requested_at", None) is not None:
                    stop_reason = "cancel"
                if stop_reason is None and draining(settings):
                    stop_reason = "drain"
                if stop_reason is None and t - started > settings.job_time_limit_s:
                    stop_reason = "time limit"
                if stop_reason is not None and stop_at is None:
                    (folder / protocol.STOP).touch()  # the training callback stops after this step, with a checkpoint
                    stop_at = t
                if stop_at is not None and termed is None and t - stop_at > settings.cancel_grace_s:
                    signal_group(proc, signal.SIGTERM)
                    termed = t
                if termed is not None and t - stop_at > 2 * settings.cancel_grace_s:
                    signal_group(proc, signal.SIGKILL)
            time.sleep(POLL_S)
        ended = True
    finally:
        lease.stop()
        stop_now(proc)
        # After losing the lease, nothing more is uploaded: a late upload could overwrite the
        # checkpoint of the attempt that took over.
        uploader.close(discard=not ended)
    progress = protocol.read(folder / protocol.PROGRESS, protocol.TrainProgress)
    # The child has ended and its last checkpoint is stored. If the store fails now, the
    # writes below give up within the lease and the sweeper requeues the job from that checkpoint.
    end = lambda state, reason=None, counted=True: _retry(  # noqa: E731
        f"job {job_id} {state.value}", lambda: jobs.end_attempt(job_id, attempt, state, reason=reason, counted=counted),
        for_s=settings.lease_s)
    if progress:
        record = _retry("progress", lambda: jobs.heartbeat(job_id, attempt, progress), for_s=settings.lease_s)
        if record is None:
            return None
    if stop_reason == "cancel":
        final = end(JobState.cancelled)
    elif stop_reason == "time limit":
        final = end(JobState.failed, f"stopped at the time limit of {settings.job_time_limit_s} s")
    elif stop_reason == "drain" or (rc is not None and (rc < 0 or rc == protocol.EXIT_RETRY)):
        drained = stop_reason == "drain"
        reason = ("its worker was asked to stop; requeued to resume from its last checkpoint"
                  if drained else error_text(folder, rc))
        final = end(JobState.queued, reason, counted=not drained)
        if final is not None:
            requeue(job_id)
    elif rc == protocol.EXIT_OK:
        final = _finish_succeeded(store, jobs, job_id, attempt, folder, settings)
    else:
        final = end(JobState.failed, error_text(folder, rc))
    state = final.state if final is not None else None
    log.info("job %s attempt %d: %s", job_id, attempt, state.value if state else "left for the sweeper")
    return state


def _name_checkpoint(store: ObjectStore, jobs: JobStore, job_id: str, attempt: int) -> None:
    """The attempt's stored checkpoint becomes the job's, and the one it replaces goes; an
    attempt that no longer holds the job deletes its own upload instead (the lease's loss
    stops the supervisor at its next poll)."""
    key = Keys.attempt_checkpoint(job_id, attempt)
    try:
        replaced = jobs.name_checkpoint(job_id, attempt, key)
    except LostLease:
        store.delete(key)
        return
    if replaced is not None:
        store.delete(replaced)


def _finish_succeeded(store: ObjectStore, jobs: JobStore, job_id: str, attempt: int, folder: Path,
                      settings: Settings) -> JobRecord | None:
    result = protocol.read(folder / protocol.RESULT, protocol.TrainResult)
    if result is None:  # exit 0 and no result: not a run to call succeeded
        return _retry(f"job {job_id} failed", lambda: jobs.end_attempt(
            job_id, attempt, JobState.failed, reason="the training process ended without its result"),
            for_s=settings.lease_s)

    def upload() -> None:
        if result.preview:
            store.put_file(Keys.preview(job_id), Path(result.preview), content_type="image/png")
        for item in result.panel:
            store.put_file(Keys.panel(job_id, item.name), Path(item.path), content_type="image/png")
        for style, panel in enumerate(result.style_panels, start=1):
            for item in panel:
                store.put_file(Keys.panel(job_id, item.name, style), Path(item.path), content_type="image/png")
        for fmt, path in result.exports.items():
            store.put_file(Keys.export(job_id, fmt), Path(path), content_type="application/octet-stream")

    def apply(r: JobRecord) -> None:
        r.outputs = {"checkpoint": r.checkpoint_key, "report": Keys.report(job_id)}
        if result.preview:
            r.outputs["preview"] = Keys.preview(job_id)
        r.outputs.update({fmt: Keys.export(job_id, fmt) for fmt in result.exports})
        r.step = result.step
        if result.probe:
            r.artifacts = result.probe[-1].measures()
            r.artifact_curve = [row.to_dict() for row in result.probe]
        r.panel = [item.shown() | {"key": Keys.panel(job_id, item.name)} for item in result.panel]
        r.style_panels = [[item.shown() | {"key": Keys.panel(job_id, item.name, style)} for item in panel]
                          for style, panel in enumerate(result.style_panels, start=1)]

    def finish() -> JobRecord:
        upload()
        current = jobs.get(job_id)
        apply(current)
        report = {"job": current.model_dump(mode="json"), "losses": result.losses, "final": result.final,
                  "artifacts": [row.to_dict() for row in result.probe], "seconds": result.seconds,
                  "skipped": [dataclasses.asdict(s) for s in result.skipped]}
        store.put_bytes(Keys.report(job_id), json.dumps(report).encode(), content_type="application/json")
        return jobs.end_attempt(job_id, attempt, JobState.succeeded, result=apply)

    return _retry(f"job {job_id} succeeded", finish, for_s=settings.lease_s)


# --- stylising --------------------------------------------------------------------------------


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
    jobs = JobStore(store)
    try:
        record = jobs.get_stylize(request_id)
    except NotFound:
        return None
    fresh = record.state == JobState.running and not stale(record.heartbeat_at, settings.stale_after_s)
    if record.kind != "video" or record.final or fresh:  # images; or nothing to run (start_stylize says so)
        return _stylize(settings, store, jobs, request_id, requeue)
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
        return _stylize(settings, store, jobs, request_id, requeue)
    finally:
        lane.release(request_id)


def _stylize(settings: Settings, store: ObjectStore, jobs: JobStore, request_id: str,
             requeue: Callable[[str], None]) -> JobState | None:
    decision, record = jobs.start_stylize(request_id, max_attempts=settings.max_attempts,
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

        done = _retry(f"stylization {what}", lambda: jobs.update_stylize(request_id, at_our_attempt),
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
            checkpoint, digest = warm.checkpoints.fetch(store, jobs.get(record.job_id).checkpoint_key,
                                                        folder / "net.ckpt")
        except (ObjectNotFound, NotFound):
            return fail("the job has no trained network any more")
        if video:  # under its own suffix, for whoever looks: ffmpeg is told the sniffed container
            inputs = [str(store.download(record.inputs[0], folder / f"input{record.source_suffix}"))]
        else:
            inputs = [str(store.download(k, folder / k.rsplit("/", 1)[1])) for k in record.inputs]
        limit_s = settings.video_time_limit_s if video else settings.stylize_time_limit_s
        lease = LeaseKeeper(lambda: jobs.stylize_heartbeat(request_id, attempt, ticket.progress if ticket else None),
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


# --- the sweeper --------------------------------------------------------------------------------


def sweep(settings: Settings, store: ObjectStore, *, send_train: Callable[[str], None] | None = None,
          send_stylize: Callable[[str], None] | None = None,
          train_queue_empty: Callable[[], bool] | None = None) -> list[str]:
    """Running jobs and stylisations whose heartbeat stopped (their worker died, or lost the
    store) go back on the queue; the attempt count stops one that kills its worker every time.
    A job queued for resend_queued_after_s while the train queue is empty lost its message (a
    publish refused after its requeue, a broker that lost its data): it is sent again. Stylise
    workers also delete stylisations past their keeping time."""
    jobs, sent = JobStore(store), []
    if send_train is not None:
        queued = []
        for job_id in jobs.active_ids("jobs"):
            if jobs.requeue_if_stale(job_id, stale_after_s=settings.stale_after_s):
                log.warning("job %s: no heartbeat for %.0f s; requeued", job_id, settings.stale_after_s)
                queued.append(job_id)
        # Only when nothing waits in the queue: a long queue is not a lost message, and each
        # sweep that sent duplicates to it would make it longer.
        if train_queue_empty is not None and train_queue_empty():
            for job_id in jobs.active_ids("jobs"):
                if jobs.claim_resend(job_id, after_s=settings.resend_queued_after_s):
                    log.warning("job %s: queued for %.0f s with no message in the queue; sent again", job_id,
                                settings.resend_queued_after_s)
                    queued.append(job_id)
        sent += _send_each(queued, send_train)
    if send_stylize is not None:
        jobs.delete_old_stylizations(older_than_s=settings.stylization_keep_s)
        requeued = [i for i in jobs.active_ids("stylizations")
                    if jobs.requeue_stylize_if_stale(i, stale_after_s=settings.stale_after_s,
                                                     max_attempts=settings.max_attempts)]
        sent += _send_each(requeued, send_stylize)
    return sent


def _send_each(ids: list[str], send: Callable[[str], None]) -> list[str]:
    """Each id sent on its own: a refused send leaves that one queued (a job is sent again by a
    later sweep) and does not stop the rest."""
    sent = []
    for item_id in ids:
        try:
            send(item_id)
            sent.append(item_id)
        except Exception as e:  # noqa: BLE001 - the broker refused or is unreachable
            log.error("%s could not be sent (%s); a later sweep sends it again", item_id, e)
    return sent
