"""What a Celery task does: supervise one child process and keep the job record true.

The task process never imports torch. It prepares a scratch folder (style, content,
the last stored checkpoint), starts `python -m workers.child` in its own session, and
polls it: progress into the record, new checkpoints into the store, cancel as a flag file
the training callback honours, then SIGTERM to the process group, then SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from service.config import Settings
from service.jobs import JobRecord, JobState, JobStore, Keys, NotFound, StylizeRecord, now
from service.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)
POLL_S = 0.5


def _spawn(kind: str, spec: dict, folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    with open(folder / "child.log", "ab") as log_file:  # the child keeps its own copy; ours closes here
        return subprocess.Popen([sys.executable, "-m", "workers.child", kind, str(folder / "spec.json")],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=os.getcwd())


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _error_text(folder: Path, rc: int) -> str:
    text = (folder / "error.txt").read_text().strip() if (folder / "error.txt").exists() else ""
    if text:
        return text
    if rc < 0:
        return f"the training process was killed by signal {-rc} (out of memory?)"
    return f"the training process exited with code {rc}; see the worker log"


def _stale(record: JobRecord, settings: Settings) -> bool:
    return record.heartbeat_at is None or now() - record.heartbeat_at > timedelta(seconds=settings.stale_after_s)


def run_train_job(settings: Settings, store: ObjectStore, job_id: str) -> JobState | None:
    jobs = JobStore(store)
    try:
        record = jobs.get(job_id)
    except NotFound:
        log.info("job %s was deleted before it ran", job_id)
        return None
    if record.final:
        return record.state
    if record.state == JobState.running and not _stale(record, settings):
        log.info("job %s is running elsewhere (fresh heartbeat); not running it twice", job_id)
        return None
    if jobs.cancel_requested(job_id):
        return jobs.finish(record, JobState.cancelled).state
    record.attempts += 1
    if record.attempts > settings.max_attempts:
        return jobs.finish(record, JobState.failed, error=(
            f"gave up after {settings.max_attempts} attempts: each ended without finishing (its worker or "
            f"training process died), the last at step {record.step}")).state

    folder = settings.work_dir / job_id / f"attempt-{record.attempts}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec = {"config": record.config, "device": settings.device,
            "style": str(store.download(Keys.style(record.style_id), folder / "style.png"))}
    if record.content_set_id:
        for key in store.list(Keys.content_prefix(record.content_set_id)):
            store.download(key, folder / "content" / key.rsplit("/", 1)[1])
        spec["content"] = str(folder / "content")
    if store.exists(Keys.checkpoint(job_id)):
        spec["resume"] = str(store.download(Keys.checkpoint(job_id), folder / "resume.ckpt"))

    record.state, record.error = JobState.running, None
    record.started_at = record.started_at or now()
    record.heartbeat_at = now()
    jobs.save(record)
    proc = _spawn("train", spec, folder)
    log.info("job %s attempt %d: child pid %d", job_id, record.attempts, proc.pid)

    ckpt, uploaded_mtime = folder / "run" / "last.ckpt", None
    started, cancel_at, termed, killed = time.monotonic(), None, False, False
    last_beat = time.monotonic()
    while True:
        rc = proc.poll()
        progress = _read_json(folder / "progress.json")
        if progress:
            if progress["losses"] and progress["step"] != record.step and (
                    progress["step"] % max(1, record.steps // 200) == 0 or progress["step"] == record.steps):
                record.loss_curve.append({"step": progress["step"], **progress["losses"]})
            probe = progress["artifacts"]
            if probe and (not record.artifact_curve or record.artifact_curve[-1]["step"] != probe["step"]):
                record.artifact_curve.append(probe)
            record.step = progress["step"]
            record.losses = progress["losses"] or record.losses
            record.artifacts = {k: v for k, v in probe.items() if k != "step"} or record.artifacts
            record.seconds_per_step = progress["seconds_per_step"] or record.seconds_per_step
            if spec.get("resume"):
                record.resumed_from_step = progress["start_step"]
        if ckpt.exists() and ckpt.stat().st_mtime_ns != uploaded_mtime:
            mtime = ckpt.stat().st_mtime_ns
            store.put_file(Keys.checkpoint(job_id), ckpt)
            uploaded_mtime = mtime
        if rc is not None:
            break
        t = time.monotonic()
        if t - last_beat >= settings.heartbeat_s:
            record.heartbeat_at = now()
            jobs.save(record)
            last_beat = t
            if cancel_at is None and jobs.cancel_requested(job_id):
                (folder / "cancel").touch()  # the training callback stops after this step
                cancel_at = t
        if t - started > settings.job_time_limit_s and cancel_at is None:
            record.error = f"stopped at the time limit of {settings.job_time_limit_s} s"
            (folder / "cancel").touch()
            cancel_at = t
        if cancel_at is not None and not termed and t - cancel_at > settings.cancel_grace_s:
            _signal_group(proc, signal.SIGTERM)
            termed = True
        if termed and not killed and t - cancel_at > 2 * settings.cancel_grace_s:
            _signal_group(proc, signal.SIGKILL)
            killed = True
        time.sleep(POLL_S)
    _signal_group(proc, signal.SIGKILL)  # nothing of the job may outlive it

    try:
        if cancel_at is not None and record.error is None:
            state = jobs.finish(record, JobState.cancelled).state
        elif cancel_at is not None:
            state = jobs.finish(record, JobState.failed, error=record.error).state
        elif rc == 0:
            result = _read_json(folder / "result.json") or {}
            report = {"job": record.model_dump(mode="json"), **{k: result.get(k) for k in
                      ("losses", "artifacts", "final", "seconds", "skipped")}}
            store.put_bytes(Keys.report(job_id), json.dumps(report).encode(), content_type="application/json")
            record.outputs = {"checkpoint": Keys.checkpoint(job_id), "report": Keys.report(job_id)}
            if result.get("preview"):
                store.put_file(Keys.preview(job_id), Path(result["preview"]), content_type="image/png")
                record.outputs["preview"] = Keys.preview(job_id)
            record.step = result.get("step", record.step)
            if result.get("artifacts"):
                record.artifacts = {k: v for k, v in result["artifacts"][-1].items() if k != "step"}
                record.artifact_curve = result["artifacts"]
            for item in result.get("panel", []):
                key = Keys.panel(job_id, item["name"])
                store.put_file(key, Path(item["path"]), content_type="image/png")
                record.panel.append({k: v for k, v in item.items() if k != "path"} | {"key": key})
            state = jobs.finish(record, JobState.succeeded).state
        else:
            state = jobs.finish(record, JobState.failed, error=_error_text(folder, rc)).state
    finally:
        shutil.rmtree(settings.work_dir / job_id, ignore_errors=True)
    log.info("job %s %s", job_id, state.value)
    return state


def run_stylize(settings: Settings, store: ObjectStore, request_id: str) -> JobState | None:
    jobs = JobStore(store)
    try:
        record: StylizeRecord = jobs.get_stylize(request_id)
    except NotFound:
        return None
    if record.state != JobState.queued:
        return record.state
    folder = settings.work_dir / f"stylize-{request_id}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        try:
            checkpoint = store.download(Keys.checkpoint(record.job_id), folder / "net.ckpt")
        except ObjectNotFound:
            record.state, record.error = JobState.failed, "the job has no trained network any more"
            return jobs.save_stylize(record).state
        inputs = [str(store.download(k, folder / k.rsplit("/", 1)[1])) for k in record.inputs]
        record.state = JobState.running
        jobs.save_stylize(record)
        proc = _spawn("stylize", {"checkpoint": str(checkpoint), "inputs": inputs}, folder)
        rc = proc.wait(timeout=settings.job_time_limit_s)
        if rc == 0:
            result = _read_json(folder / "result.json") or {"outputs": []}
            for i, out in enumerate(result["outputs"]):
                store.put_file(Keys.stylize_output(request_id, i), Path(out["path"]), content_type="image/png")
                record.outputs.append(Keys.stylize_output(request_id, i))
                record.sizes.append((out["width"], out["height"]))
            record.state = JobState.succeeded
        else:
            record.state, record.error = JobState.failed, _error_text(folder, rc)
        record.finished_at = now()
        return jobs.save_stylize(record).state
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def requeue_stale_jobs(settings: Settings, store: ObjectStore, send) -> list[str]:
    """Running jobs whose heartbeat stopped (their worker died) go back on the queue; the
    attempt count in the record stops a job that kills its worker every time."""
    jobs, requeued = JobStore(store), []
    for job_id in jobs.active_ids():
        try:
            record = jobs.get(job_id)
        except NotFound:
            continue
        recently = record.requeued_at and now() - record.requeued_at < timedelta(seconds=settings.stale_after_s)
        if record.state == JobState.running and _stale(record, settings) and not recently:
            record.requeued_at = now()  # the next sweep gives the new attempt time to start
            jobs.save(record)
            send(job_id)
            requeued.append(job_id)
            log.warning("job %s: no heartbeat for %.0f s; requeued", job_id, settings.stale_after_s)
    return requeued
