"""The training task: one delivery of a job, supervised as a child process, with the job record
kept true.

The task process never imports torch. It begins an attempt (a compare-and-set on the job
record, so two deliveries of one job never both run it), prepares a scratch folder, starts
the child (workers/child.py) in its own session, forked warm on the CPU, a new
`python -m workers.child` on GPUs (workers/child_process.py), and polls it:
- every heartbeat: the child's progress into the record, which also renews the attempt's
  lease and tells of a cancel; a supervisor that cannot renew for half the stale timeout (the
  store is slow or down) pauses its child (SIGSTOP), lets it go on if a renewal gets through
  and stops it at the whole, so a sweeper that requeues the job never makes two run at once;
- new checkpoints go to the store from a thread of their own, never on the heartbeat's path;
- a stop (cancel, time limit, the worker asked to shut down) is the STOP file, then SIGTERM,
  then SIGKILL to the child's process group;
- whatever happens in here, the child is stopped before the task returns (try/finally).
A child killed by a signal (the OOM killer), stopped because its worker is shutting down, or
ended by the store failing under it (EXIT_RETRY: its content set is streamed from the store,
workers/content_stream.py) is requeued and resumes from its last checkpoint; the attempt limit
ends a job that dies every time, with each attempt's reason kept in its history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from service.core import protocol
from service.core.builtin_styles import builtin_name, is_builtin
from service.core.errors import LostLease, NotFound
from service.core.keys import Keys
from service.core.lease import Hold, Start, hold_of
from service.core.records import JobRecord, JobState
from service.core.settings import Settings
from service.core.storage import ObjectNotFound, ObjectStore
from service.core.stores import Stores
from workers.checkpoint_upload import CheckpointUploader
from workers.child_process import error_text, signal_group, spawn, stop_now
from workers.content_stream import stream_spec
from workers.drain import draining
from workers.gpus import GpuSlots
from workers.lease_keeping import POLL_S, LeaseKeeper, write_final

log = logging.getLogger(__name__)


def _prepare(store: ObjectStore, record: JobRecord, settings: Settings, folder: Path) -> protocol.TrainSpec:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return protocol.TrainSpec(
        config=record.config, style=_styles(store, record, folder), max_pixels=settings.max_pixels,
        device=settings.device, devices=record.devices, exports=list(settings.export_formats),
        probe_size=settings.probe_size, preview_size=settings.preview_size,
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


def run_train_job(settings: Settings, store: ObjectStore, job_id: str, *, worker: str,
                  requeue: Callable[[str], None], slots: GpuSlots | None = None) -> JobState | None:
    """One delivery of a job. On a worker with GPU slots, the job's `devices` GPUs are held
    (waiting, still queued, while other jobs hold them) from before its attempt starts until
    its child is gone; a CPU worker runs any number of devices as processes."""
    stores = Stores(store)
    if draining(settings):  # our worker is shutting down: leave the job to another one
        requeue(job_id)
        return None
    if slots is None or not slots.gpus:
        return _attempt(settings, store, stores, job_id, worker=worker, requeue=requeue, gpus=None)
    try:
        devices = stores.jobs.get(job_id).devices
    except NotFound:
        return None
    if devices > len(slots.gpus):
        reason = (f"the job asks for {devices} GPUs and its worker has {len(slots.gpus)}; "
                  "a job's GPUs must all be on one worker")
        try:
            return stores.jobs.fail_if_queued(job_id, reason).state
        except NotFound:
            return None

    def give_up() -> bool:  # while waiting for GPUs: the worker is stopping, or another delivery took the job
        try:
            return draining(settings) or stores.jobs.get(job_id).state != JobState.queued
        except NotFound:
            return True

    with slots.hold(devices, give_up=give_up) as gpus:
        if gpus is None:
            if draining(settings):
                requeue(job_id)
            return None
        return _attempt(settings, store, stores, job_id, worker=worker, requeue=requeue, gpus=gpus)


def _attempt(settings: Settings, store: ObjectStore, stores: Stores, job_id: str, *, worker: str,
             requeue: Callable[[str], None], gpus: list[str] | None) -> JobState | None:
    decision, record = stores.jobs.start_attempt(job_id, worker=worker, max_attempts=settings.max_attempts,
                                                 stale_after_s=settings.stale_after_s)
    if decision != Start.run:
        log.info("job %s: %s", job_id, decision.value)
        return record.state if record is not None else None
    attempt = record.attempts
    folder = settings.work_dir / job_id / f"attempt-{attempt}"
    try:
        return _supervise(settings, store, stores, record, folder, requeue, gpus)
    except LostLease as e:
        log.warning("job %s attempt %d: %s; stopped", job_id, attempt, e)
        return None
    finally:
        # Our attempt's folder only: where workers share a scratch folder (several on one
        # machine), the attempt that took over from a lost lease may be writing beside it.
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the job's folder, once no attempt is left in it


def _supervise(settings: Settings, store: ObjectStore, stores: Stores, record: JobRecord, folder: Path,
               requeue: Callable[[str], None], gpus: list[str] | None) -> JobState | None:
    job_id, attempt = record.id, record.attempts
    # Heartbeats begin with the attempt: preparing it (the style, the content, the checkpoint to
    # resume from) can take longer than the stale timeout, and the job must not look dead meanwhile.
    lease = LeaseKeeper(
        lambda: stores.jobs.heartbeat(job_id, attempt, protocol.read(folder / protocol.PROGRESS, protocol.TrainProgress)),
        settings.heartbeat_s, name=f"heartbeat-{job_id[:8]}")
    try:
        spec = _prepare(store, record, settings, folder)
    except ObjectNotFound as e:  # its style or content set was deleted: retrying cannot help
        lease.stop()
        reason = f"an input of the job is gone from the store ({e.key})"
        gone = write_final(f"job {job_id} failed", lambda: stores.jobs.end_attempt(job_id, attempt, JobState.failed, reason=reason),
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
                                  on_stored=lambda: _name_checkpoint(store, stores, job_id, attempt))
    log.info("job %s attempt %d: child pid %d", job_id, attempt, proc.pid)
    ckpt = folder / protocol.RUN / protocol.CHECKPOINT
    stop_reason: str | None = None  # cancel, drain, time limit
    stop_at = termed = rc = None
    started = time.monotonic()
    ended = paused = False
    try:
        # Until the child has ended and its last checkpoint is stored, heartbeats go on.
        while not (rc is not None and uploader.idle()):
            rc = proc.poll() if rc is None else rc
            uploader.offer(ckpt)
            if lease.lost is not None:
                raise lease.lost
            hold = hold_of(lease.age(), lease_s=settings.lease_s, stale_after_s=settings.stale_after_s)
            if hold == Hold.lapsed:
                log.error("job %s: no heartbeat for %.0f s; stopping the child so no other worker runs it "
                          "alongside; the sweeper requeues it", job_id, lease.age())
                return None  # finally stops the child
            if rc is None and (hold == Hold.in_doubt) != paused:
                paused = not paused
                signal_group(proc, signal.SIGSTOP if paused else signal.SIGCONT)
                log.warning("job %s: %s", job_id, f"no heartbeat for {lease.age():.1f} s; child paused until one gets through"
                            if paused else "heartbeat renewed; child resumed")
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
    end = lambda state, reason=None, counted=True: write_final(  # noqa: E731
        f"job {job_id} {state.value}", lambda: stores.jobs.end_attempt(job_id, attempt, state, reason=reason, counted=counted),
        for_s=settings.lease_s)
    if progress:
        record = write_final("progress", lambda: stores.jobs.heartbeat(job_id, attempt, progress), for_s=settings.lease_s)
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
        final = _finish_succeeded(store, stores, job_id, attempt, folder, settings)
    else:
        final = end(JobState.failed, error_text(folder, rc))
    state = final.state if final is not None else None
    log.info("job %s attempt %d: %s", job_id, attempt, state.value if state else "left for the sweeper")
    return state


def _name_checkpoint(store: ObjectStore, stores: Stores, job_id: str, attempt: int) -> None:
    """The attempt's stored checkpoint becomes the job's, and the one it replaces goes; an
    attempt that no longer holds the job deletes its own upload instead (the lease's loss
    stops the supervisor at its next poll), unless the record still names that object: an
    earlier upload of this attempt, which the attempt that took over resumes from until its
    own first checkpoint replaces (and deletes) it."""
    key = Keys.attempt_checkpoint(job_id, attempt)
    try:
        replaced = stores.jobs.name_checkpoint(job_id, attempt, key)
    except LostLease:
        try:
            named = stores.jobs.get(job_id).checkpoint
        except NotFound:
            named = None
        if named != key:
            store.delete(key)
        return
    if replaced is not None:
        store.delete(replaced)


def _finish_succeeded(store: ObjectStore, stores: Stores, job_id: str, attempt: int, folder: Path,
                      settings: Settings) -> JobRecord | None:
    result = protocol.read(folder / protocol.RESULT, protocol.TrainResult)
    if result is None:  # exit 0 and no result: not a run to call succeeded
        return write_final(f"job {job_id} failed", lambda: stores.jobs.end_attempt(
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
        current = stores.jobs.get(job_id)
        apply(current)
        report = {"job": current.model_dump(mode="json"), "losses": result.losses, "final": result.final,
                  "artifacts": [row.to_dict() for row in result.probe], "seconds": result.seconds,
                  "timing": result.timing, "skipped": [dataclasses.asdict(s) for s in result.skipped]}
        store.put_bytes(Keys.report(job_id), json.dumps(report).encode(), content_type="application/json")
        return stores.jobs.end_attempt(job_id, attempt, JobState.succeeded, result=apply)

    return write_final(f"job {job_id} succeeded", finish, for_s=settings.lease_s)
