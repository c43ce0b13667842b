"""Client: the API with blocking calls (AsyncClient, in async_client.py, is the same with await)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from checkerless_client import calls, config
from checkerless_client.calls import Call, Emit, FileLike, Op, Sleep, StyleRef
from checkerless_client.errors import ApiUnreachable
from checkerless_client.results import ContentSet, Experiment, ExperimentBrief, Job, Page, Style, Stylization
from checkerless_client.retry import NO_RETRY, RetryEvent, RetryPolicy, retry_after
from checkerless_client.sending import (CHUNK, DEFAULT_TIMEOUT_S, KEEPALIVE_S, RETRIED_METHODS, api_error, first_key,
                                        new_idempotency_key, request_args)


class Client:
    """The checkerless API. `url`: CHECKERLESS_API_URL, else http://127.0.0.1:8000; `key`:
    CHECKERLESS_API_KEY, else the local key `checkerless serve` keeps (CHECKERLESS_DATA_DIR,
    default ./checkerless-data, file local-key). `retry` says how failed requests are retried
    (RetryPolicy), and `on_retry` is told of each retry (a RetryEvent) before its wait. `http`:
    an httpx.Client of your own to send with (its base_url, transport and headers; the key is
    then sent only if given). Use it as a context manager, or call close()."""

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, on_retry: Callable[[RetryEvent], None] | None = None,
                 max_connections: int = 100, http: httpx.Client | None = None):
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        if http is None:
            self.url, self.key = config.api_url(url), config.api_key(key)
            self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                      limits=httpx.Limits(max_connections=max_connections, keepalive_expiry=KEEPALIVE_S))
        else:
            self.url, self.key = (url or str(http.base_url)).rstrip("/"), key
            self._http = http
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --- the service --------------------------------------------------------------------------

    def health(self) -> dict:
        """GET /v1/health: {"status": "ok"} while the API answers (not retried)."""
        return self._run(calls.health())

    def ready(self) -> dict:
        """GET /v1/ready: {"status": "ready" or "not ready", and each part's state} (not retried)."""
        return self._run(calls.ready())

    def decoders(self) -> list[dict]:
        """The decoder names, what each layer does, how it overlaps, which is the default."""
        return self._run(calls.get_json("/v1/decoders"))

    def builtin_styles(self) -> list[dict]:
        """The styles every server has: name, id ('builtin:<name>'), title, thumbnail."""
        return self._run(calls.get_json("/v1/builtin-styles"))

    def webhook_secret(self) -> str:
        """Your webhook signing secret (for verify_webhook)."""
        return self._run(calls.webhook_secret())

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any other route (e.g. an experiment's difference image), with this client's key, retries
        and errors. kwargs: params, json, data, headers, idempotency_key."""
        return self._run(calls.raw(method, path, kwargs))

    # --- styles and content sets --------------------------------------------------------------

    def upload_style(self, image: FileLike, *, idempotency_key: str | None = None) -> Style:
        """Upload a style image: a path, its bytes, or (file name, bytes)."""
        return self._run(calls.upload_style(image, idempotency_key))

    def styles(self) -> list[Style]:
        """Your uploaded styles, newest first."""
        return self._run(calls.get_list("/v1/styles", Style))

    def delete_style(self, style: str | Style) -> None:
        self._run(calls.delete(f"/v1/styles/{calls.segment(style)}"))

    def upload_content_set(self, images: Iterable[FileLike], *, name: str | None = None,
                           idempotency_key: str | None = None) -> ContentSet:
        """A content set from image files (or zips of them), checked by the API at once: ready,
        with unreadable files listed in `skipped`."""
        return self._run(calls.upload_content_set(images, name, idempotency_key))

    def upload_archive(self, archive: str | os.PathLike, *, name: str | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       idempotency_key: str | None = None) -> ContentSet:
        """A content set from a tar, tar.gz or zip, streamed from disk (`progress(sent, total)`
        after each chunk); a worker then checks it (state validating: see wait_content_set)."""
        return self._run(calls.upload_archive(archive, name, progress, idempotency_key))

    def register_content_set(self, prefix: str, *, bucket: str | None = None, name: str | None = None,
                             idempotency_key: str | None = None) -> ContentSet:
        """Operators (an admin key): images under an S3 prefix as a content set, read in place."""
        return self._run(calls.register_content_set(prefix, bucket, name, idempotency_key))

    def content_sets(self) -> list[ContentSet]:
        """Your content sets, newest first."""
        return self._run(calls.get_list("/v1/content-sets", ContentSet))

    def content_set(self, content_set: str | ContentSet) -> ContentSet:
        return self._run(calls.get(f"/v1/content-sets/{calls.segment(content_set)}", ContentSet))

    def wait_content_set(self, content_set: str | ContentSet, *, poll_s: float = 1.0, timeout_s: float | None = None,
                         progress: Callable[[ContentSet], None] | None = None) -> ContentSet:
        """Until the set is ready or failed (each read passed to `progress`)."""
        return self._run(calls.wait_content_set(calls.segment(content_set), poll_s, timeout_s, progress))

    def delete_content_set(self, content_set: str | ContentSet) -> None:
        self._run(calls.delete(f"/v1/content-sets/{calls.segment(content_set)}"))

    # --- jobs ---------------------------------------------------------------------------------

    def submit(self, styles: StyleRef | Sequence[StyleRef], *, content_set: str | ContentSet | None = None,
               webhook_url: str | None = None, idempotency_key: str | None = None, **settings: Any) -> Job:
        """Submit a training job: one style or several (ids such as 'builtin:ihc', Style objects,
        or pathlib.Path image files, uploaded first), and any of the API's settings (decoder,
        size, steps, batch, seed, precision...). Sent with an Idempotency-Key (yours, or one made
        here), so a retry after a lost answer never makes a second job."""
        return self._run(calls.submit(styles, content_set, webhook_url, idempotency_key, settings))

    def job(self, job: str | Job) -> Job:
        return self._run(calls.get(f"/v1/jobs/{calls.segment(job)}", Job))

    def jobs(self, *, limit: int | None = None, cursor: str | None = None) -> Iterator[Job]:
        """Every job, newest first, page after page (`limit` a page) from `cursor` (or the start)."""
        return self._iterate(calls.every("/v1/jobs", Job, limit, cursor))

    def jobs_page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Job]:
        """One page of jobs, and the next page's cursor (None on the last)."""
        return self._run(calls.page("/v1/jobs", Job, limit, cursor))

    def wait(self, job: str | Job, *, poll_s: float = 1.0, timeout_s: float | None = None,
             progress: Callable[[Job], None] | None = None) -> Job:
        """Until the job has ended (succeeded, failed or cancelled); each read to `progress`."""
        return self._run(calls.wait_job(calls.segment(job), poll_s, timeout_s, progress))

    def watch(self, job: str | Job, *, poll_s: float = 1.0, timeout_s: float | None = None) -> Iterator[Job]:
        """The job as it is every `poll_s` seconds, up to and including its final state."""
        return self._iterate(calls.watch_job(calls.segment(job), poll_s, timeout_s))

    def cancel(self, job: str | Job) -> Job:
        """Ask a job to stop; it keeps its last checkpoint."""
        return self._run(calls.post(f"/v1/jobs/{calls.segment(job)}/cancel", Job))

    def delete_job(self, job: str | Job) -> None:
        """Delete a finished job and every file it stored."""
        self._run(calls.delete(f"/v1/jobs/{calls.segment(job)}"))

    def download(self, job: str | Job, what: str = "checkpoint", path: str | os.PathLike | None = None) -> bytes | Path:
        """A job's file: checkpoint, onnx, torchscript, report or preview. Its bytes, or with
        `path` streamed into that file (the Path is returned)."""
        return self._run(calls.download(calls.segment(job), what, path))

    # --- stylisations -------------------------------------------------------------------------

    def stylize_image(self, job: str | Job, image: FileLike, *, style: int | None = None,
                      mix: Sequence[float] | None = None, strength: float | None = None, colors: str | None = None,
                      poll_s: float = 0.5, timeout_s: float | None = None) -> bytes:
        """One image stylised by a finished job's network: the PNG's bytes (StylizationFailed if
        it failed). Options: style (an index) or mix (a weight per style), strength 0..1, colors
        (style, luminance, histogram)."""
        (png,) = self._run(calls.stylize(calls.segment(job), [image], calls.options_form(style, mix, strength, colors),
                                         poll_s, timeout_s))
        return png

    def stylize_images(self, job: str | Job, images: Sequence[FileLike], *, style: int | None = None,
                       mix: Sequence[float] | None = None, strength: float | None = None, colors: str | None = None,
                       poll_s: float = 0.5, timeout_s: float | None = None) -> list[bytes]:
        """Several images in one request: their PNGs, in order."""
        return self._run(calls.stylize(calls.segment(job), images, calls.options_form(style, mix, strength, colors),
                                       poll_s, timeout_s))

    def stylize_video(self, job: str | Job, video: FileLike, *, path: str | os.PathLike | None = None,
                      style: int | None = None, mix: Sequence[float] | None = None, strength: float | None = None,
                      colors: str | None = None, poll_s: float = 0.5, timeout_s: float | None = None,
                      progress: Callable[[Stylization], None] | None = None) -> bytes | Path:
        """A video stylised frame by frame (same frames, rate, size; audio kept): the mp4's bytes,
        or with `path` written there. `progress` sees each read (its progress: done, total frames)."""
        return self._run(calls.stylize_video(calls.segment(job), video, calls.options_form(style, mix, strength, colors),
                                             path, poll_s, timeout_s, progress))

    def request_stylization(self, job: str | Job, images: Sequence[FileLike], *, style: int | str | None = None,
                            mix: Sequence[float] | str | None = None, strength: float | str | None = None,
                            colors: str | None = None, idempotency_key: str | None = None) -> Stylization:
        """Queue images to stylise; returns at once (see wait_stylization and output)."""
        return self._run(calls.request_stylization(calls.segment(job), images,
                                                   calls.options_form(style, mix, strength, colors), idempotency_key))

    def request_video_stylization(self, job: str | Job, video: FileLike, *, style: int | str | None = None,
                                  mix: Sequence[float] | str | None = None, strength: float | str | None = None,
                                  colors: str | None = None, idempotency_key: str | None = None) -> Stylization:
        """Queue a video to stylise; returns at once."""
        return self._run(calls.request_video_stylization(calls.segment(job), video,
                                                         calls.options_form(style, mix, strength, colors),
                                                         idempotency_key))

    def stylization(self, stylization: str | Stylization) -> Stylization:
        return self._run(calls.get(f"/v1/stylizations/{calls.segment(stylization)}", Stylization))

    def wait_stylization(self, stylization: str | Stylization, *, poll_s: float = 0.5, timeout_s: float | None = None,
                         progress: Callable[[Stylization], None] | None = None) -> Stylization:
        """Until it has ended (succeeded, failed or cancelled: check `state`)."""
        return self._run(calls.wait_stylization(calls.segment(stylization), poll_s, timeout_s, progress))

    def cancel_stylization(self, stylization: str | Stylization) -> Stylization:
        return self._run(calls.post(f"/v1/stylizations/{calls.segment(stylization)}/cancel", Stylization))

    def output(self, stylization: str | Stylization, index: int = 0, path: str | os.PathLike | None = None) -> bytes | Path:
        """A finished stylisation's output `index` (a PNG, or a video's mp4): bytes, or written to `path`."""
        return self._run(calls.output(calls.segment(stylization), index, path))

    # --- experiments --------------------------------------------------------------------------

    def create_experiment(self, styles: StyleRef | Sequence[StyleRef], variants: Sequence[str | Sequence[str] | dict],
                          *, seeds: int = 1, content_set: str | ContentSet | None = None,
                          webhook_url: str | None = None, idempotency_key: str | None = None,
                          **settings: Any) -> Experiment:
        """Train two or more variants (decoder names, per-stage lists, or {decoder, downsample,
        loss_pooling}) alike, `seeds` times each; settings as for submit."""
        return self._run(calls.create_experiment(styles, variants, seeds, content_set, webhook_url, idempotency_key,
                                                 settings))

    def experiment(self, experiment: str | Experiment) -> Experiment:
        return self._run(calls.get(f"/v1/experiments/{calls.segment(experiment)}", Experiment))

    def experiments(self, *, limit: int | None = None, cursor: str | None = None) -> Iterator[ExperimentBrief]:
        """Every experiment, newest first, page after page."""
        return self._iterate(calls.every("/v1/experiments", ExperimentBrief, limit, cursor))

    def experiments_page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ExperimentBrief]:
        return self._run(calls.page("/v1/experiments", ExperimentBrief, limit, cursor))

    def wait_experiment(self, experiment: str | Experiment, *, poll_s: float = 1.0, timeout_s: float | None = None,
                        progress: Callable[[Experiment], None] | None = None) -> Experiment:
        """Until no job of it is queued or running; each read to `progress`."""
        return self._run(calls.wait_experiment(calls.segment(experiment), poll_s, timeout_s, progress))

    def delete_experiment(self, experiment: str | Experiment) -> None:
        """Delete a finished experiment, its jobs and their files."""
        self._run(calls.delete(f"/v1/experiments/{calls.segment(experiment)}"))

    # --- running operations -------------------------------------------------------------------

    def _run(self, op: Op) -> Any:
        try:
            step = next(op)
            while True:
                if isinstance(step, Call):
                    result = self._send(step)
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    result = None
                else:
                    raise TypeError(f"unexpected step {step!r}")
                step = op.send(result)
        except StopIteration as done:
            return done.value
        finally:
            op.close()

    def _iterate(self, op: Op) -> Iterator[Any]:
        try:
            step = next(op)
            while True:
                result = None
                if isinstance(step, Call):
                    result = self._send(step)
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                elif isinstance(step, Emit):
                    yield step.item
                step = op.send(result)
        except StopIteration:
            return
        finally:
            op.close()

    def _send(self, call: Call) -> Any:
        """One Call, sent again as the policy allows: its answer (or the Path it was saved to)."""
        policy = self.retry if call.retry else NO_RETRY
        key = first_key(call)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._attempt(call, key)
            except httpx.TransportError as e:
                wait = policy.after_error(attempt, e, repeatable=call.method in RETRIED_METHODS or key is not None)
                if wait is None:
                    raise ApiUnreachable(self.url, e) from None
                self._retrying(RetryEvent(call.method, call.path, attempt, wait, error=e))
                continue
            if response.status_code < 400 or response.status_code in call.answers:
                return call.save_to if call.save_to is not None else response
            after = retry_after(response.headers.get("Retry-After"), now=time.time())
            wait = policy.after_status(attempt, response.status_code, after)
            if wait is None:
                raise api_error(response, call, after)
            if response.status_code == 429 and key is not None:
                # The service keeps a key's 4xx answer (it would replay this 429), and a 429 made nothing.
                key = new_idempotency_key()
            self._retrying(RetryEvent(call.method, call.path, attempt, wait, status=response.status_code))

    def _retrying(self, event: RetryEvent) -> None:
        if self.on_retry is not None:
            self.on_retry(event)
        time.sleep(event.wait_s)

    def _attempt(self, call: Call, key: str | None) -> httpx.Response:
        args = request_args(call, self.key, key)
        with ExitStack() as opened:
            if call.files:
                args["files"] = [(name, (u.name, opened.enter_context(open(u.source, "rb"))
                                         if isinstance(u.source, Path) else u.source, u.content_type))
                                 for name, u in call.files]
            if call.content is not None:
                args["content"] = _file_chunks(call.content, call.sent)
            if call.save_to is None:
                return self._http.request(call.method, call.path, **args)
            with self._http.stream(call.method, call.path, **args) as response:
                if response.status_code >= 400:
                    response.read()
                    return response
                part = call.save_to.with_name(call.save_to.name + ".part")
                try:
                    with open(part, "wb") as f:
                        for chunk in response.iter_bytes(CHUNK):
                            f.write(chunk)
                    part.replace(call.save_to)
                finally:
                    part.unlink(missing_ok=True)
                return response


def _file_chunks(path: Path, sent: Callable[[int, int], None] | None) -> Iterator[bytes]:
    total, done = path.stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
            done += len(chunk)
            if sent is not None:
                sent(done, total)

