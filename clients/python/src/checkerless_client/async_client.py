"""AsyncClient: Client's methods with await (and `async for` for jobs(), experiments() and
watch()). Both run the same operations (calls.py); see Client for what each method does."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
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


class AsyncClient:
    """Client, with await. `http`: an httpx.AsyncClient of your own."""

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, on_retry: Callable[[RetryEvent], None] | None = None,
                 max_connections: int = 100, http: httpx.AsyncClient | None = None):
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        if http is None:
            self.url, self.key = config.api_url(url), config.api_key(key)
            self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                           limits=httpx.Limits(max_connections=max_connections,
                                                               keepalive_expiry=KEEPALIVE_S))
        else:
            self.url, self.key = (url or str(http.base_url)).rstrip("/"), key
            self._http = http
        self._owns_http = http is None

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    # --- the service --------------------------------------------------------------------------

    async def health(self) -> dict:
        return await self._run(calls.health())

    async def ready(self) -> dict:
        return await self._run(calls.ready())

    async def decoders(self) -> list[dict]:
        return await self._run(calls.get_json("/v1/decoders"))

    async def builtin_styles(self) -> list[dict]:
        return await self._run(calls.get_json("/v1/builtin-styles"))

    async def webhook_secret(self) -> str:
        return await self._run(calls.webhook_secret())

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self._run(calls.raw(method, path, kwargs))

    # --- styles and content sets --------------------------------------------------------------

    async def upload_style(self, image: FileLike, *, idempotency_key: str | None = None) -> Style:
        return await self._run(calls.upload_style(image, idempotency_key))

    async def styles(self) -> list[Style]:
        return await self._run(calls.get_list("/v1/styles", Style))

    async def delete_style(self, style: str | Style) -> None:
        await self._run(calls.delete(f"/v1/styles/{calls.segment(style)}"))

    async def upload_content_set(self, images: Iterable[FileLike], *, name: str | None = None,
                                 idempotency_key: str | None = None) -> ContentSet:
        return await self._run(calls.upload_content_set(images, name, idempotency_key))

    async def upload_archive(self, archive: str | os.PathLike, *, name: str | None = None,
                             progress: Callable[[int, int], None] | None = None,
                             idempotency_key: str | None = None) -> ContentSet:
        return await self._run(calls.upload_archive(archive, name, progress, idempotency_key))

    async def register_content_set(self, prefix: str, *, bucket: str | None = None, name: str | None = None,
                                   idempotency_key: str | None = None) -> ContentSet:
        return await self._run(calls.register_content_set(prefix, bucket, name, idempotency_key))

    async def content_sets(self) -> list[ContentSet]:
        return await self._run(calls.get_list("/v1/content-sets", ContentSet))

    async def content_set(self, content_set: str | ContentSet) -> ContentSet:
        return await self._run(calls.get(f"/v1/content-sets/{calls.segment(content_set)}", ContentSet))

    async def wait_content_set(self, content_set: str | ContentSet, *, poll_s: float = 1.0,
                               timeout_s: float | None = None,
                               progress: Callable[[ContentSet], None] | None = None) -> ContentSet:
        return await self._run(calls.wait_content_set(calls.segment(content_set), poll_s, timeout_s, progress))

    async def delete_content_set(self, content_set: str | ContentSet) -> None:
        await self._run(calls.delete(f"/v1/content-sets/{calls.segment(content_set)}"))

    # --- jobs ---------------------------------------------------------------------------------

    async def submit(self, styles: StyleRef | Sequence[StyleRef], *, content_set: str | ContentSet | None = None,
                     webhook_url: str | None = None, idempotency_key: str | None = None, **settings: Any) -> Job:
        return await self._run(calls.submit(styles, content_set, webhook_url, idempotency_key, settings))

    async def job(self, job: str | Job) -> Job:
        return await self._run(calls.get(f"/v1/jobs/{calls.segment(job)}", Job))

    def jobs(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncIterator[Job]:
        return self._iterate(calls.every("/v1/jobs", Job, limit, cursor))

    async def jobs_page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Job]:
        return await self._run(calls.page("/v1/jobs", Job, limit, cursor))

    async def wait(self, job: str | Job, *, poll_s: float = 1.0, timeout_s: float | None = None,
                   progress: Callable[[Job], None] | None = None) -> Job:
        return await self._run(calls.wait_job(calls.segment(job), poll_s, timeout_s, progress))

    def watch(self, job: str | Job, *, poll_s: float = 1.0, timeout_s: float | None = None) -> AsyncIterator[Job]:
        return self._iterate(calls.watch_job(calls.segment(job), poll_s, timeout_s))

    async def cancel(self, job: str | Job) -> Job:
        return await self._run(calls.post(f"/v1/jobs/{calls.segment(job)}/cancel", Job))

    async def delete_job(self, job: str | Job) -> None:
        await self._run(calls.delete(f"/v1/jobs/{calls.segment(job)}"))

    async def download(self, job: str | Job, what: str = "checkpoint",
                       path: str | os.PathLike | None = None) -> bytes | Path:
        return await self._run(calls.download(calls.segment(job), what, path))

    # --- stylisations -------------------------------------------------------------------------

    async def stylize_image(self, job: str | Job, image: FileLike, *, style: int | None = None,
                            mix: Sequence[float] | None = None, strength: float | None = None,
                            colors: str | None = None, poll_s: float = 0.5, timeout_s: float | None = None) -> bytes:
        (png,) = await self._run(calls.stylize(calls.segment(job), [image],
                                               calls.options_form(style, mix, strength, colors), poll_s, timeout_s))
        return png

    async def stylize_images(self, job: str | Job, images: Sequence[FileLike], *, style: int | None = None,
                             mix: Sequence[float] | None = None, strength: float | None = None,
                             colors: str | None = None, poll_s: float = 0.5,
                             timeout_s: float | None = None) -> list[bytes]:
        return await self._run(calls.stylize(calls.segment(job), images,
                                             calls.options_form(style, mix, strength, colors), poll_s, timeout_s))

    async def stylize_video(self, job: str | Job, video: FileLike, *, path: str | os.PathLike | None = None,
                            style: int | None = None, mix: Sequence[float] | None = None,
                            strength: float | None = None, colors: str | None = None, poll_s: float = 0.5,
                            timeout_s: float | None = None,
                            progress: Callable[[Stylization], None] | None = None) -> bytes | Path:
        return await self._run(calls.stylize_video(calls.segment(job), video,
                                                   calls.options_form(style, mix, strength, colors), path, poll_s,
                                                   timeout_s, progress))

    async def request_stylization(self, job: str | Job, images: Sequence[FileLike], *,
                                  style: int | str | None = None, mix: Sequence[float] | str | None = None,
                                  strength: float | str | None = None, colors: str | None = None,
                                  idempotency_key: str | None = None) -> Stylization:
        return await self._run(calls.request_stylization(calls.segment(job), images,
                                                         calls.options_form(style, mix, strength, colors),
                                                         idempotency_key))

    async def request_video_stylization(self, job: str | Job, video: FileLike, *, style: int | str | None = None,
                                        mix: Sequence[float] | str | None = None,
                                        strength: float | str | None = None, colors: str | None = None,
                                        idempotency_key: str | None = None) -> Stylization:
        return await self._run(calls.request_video_stylization(calls.segment(job), video,
                                                               calls.options_form(style, mix, strength, colors),
                                                               idempotency_key))

    async def stylization(self, stylization: str | Stylization) -> Stylization:
        return await self._run(calls.get(f"/v1/stylizations/{calls.segment(stylization)}", Stylization))

    async def wait_stylization(self, stylization: str | Stylization, *, poll_s: float = 0.5,
                               timeout_s: float | None = None,
                               progress: Callable[[Stylization], None] | None = None) -> Stylization:
        return await self._run(calls.wait_stylization(calls.segment(stylization), poll_s, timeout_s, progress))

    async def cancel_stylization(self, stylization: str | Stylization) -> Stylization:
        return await self._run(calls.post(f"/v1/stylizations/{calls.segment(stylization)}/cancel", Stylization))

    async def output(self, stylization: str | Stylization, index: int = 0,
                     path: str | os.PathLike | None = None) -> bytes | Path:
        return await self._run(calls.output(calls.segment(stylization), index, path))

    # --- experiments --------------------------------------------------------------------------

    async def create_experiment(self, styles: StyleRef | Sequence[StyleRef],
                                variants: Sequence[str | Sequence[str] | dict], *, seeds: int = 1,
                                content_set: str | ContentSet | None = None, webhook_url: str | None = None,
                                idempotency_key: str | None = None, **settings: Any) -> Experiment:
        return await self._run(calls.create_experiment(styles, variants, seeds, content_set, webhook_url,
                                                       idempotency_key, settings))

    async def experiment(self, experiment: str | Experiment) -> Experiment:
        return await self._run(calls.get(f"/v1/experiments/{calls.segment(experiment)}", Experiment))

    def experiments(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncIterator[ExperimentBrief]:
        return self._iterate(calls.every("/v1/experiments", ExperimentBrief, limit, cursor))

    async def experiments_page(self, *, limit: int | None = None,
                               cursor: str | None = None) -> Page[ExperimentBrief]:
        return await self._run(calls.page("/v1/experiments", ExperimentBrief, limit, cursor))

    async def wait_experiment(self, experiment: str | Experiment, *, poll_s: float = 1.0,
                              timeout_s: float | None = None,
                              progress: Callable[[Experiment], None] | None = None) -> Experiment:
        return await self._run(calls.wait_experiment(calls.segment(experiment), poll_s, timeout_s, progress))

    async def delete_experiment(self, experiment: str | Experiment) -> None:
        await self._run(calls.delete(f"/v1/experiments/{calls.segment(experiment)}"))

    # --- running operations -------------------------------------------------------------------

    async def _run(self, op: Op) -> Any:
        try:
            step = next(op)
            while True:
                if isinstance(step, Call):
                    result = await self._send(step)
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    result = None
                else:
                    raise TypeError(f"unexpected step {step!r}")
                step = op.send(result)
        except StopIteration as done:
            return done.value
        finally:
            op.close()

    async def _iterate(self, op: Op) -> AsyncIterator[Any]:
        try:
            step = next(op)
            while True:
                result = None
                if isinstance(step, Call):
                    result = await self._send(step)
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Emit):
                    yield step.item
                step = op.send(result)
        except StopIteration:
            return
        finally:
            op.close()

    async def _send(self, call: Call) -> Any:
        policy = self.retry if call.retry else NO_RETRY
        key = first_key(call)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._attempt(call, key)
            except httpx.TransportError as e:
                wait = policy.after_error(attempt, e, repeatable=call.method in RETRIED_METHODS or key is not None)
                if wait is None:
                    raise ApiUnreachable(self.url, e) from None
                await self._retrying(RetryEvent(call.method, call.path, attempt, wait, error=e))
                continue
            if response.status_code < 400 or response.status_code in call.answers:
                return call.save_to if call.save_to is not None else response
            after = retry_after(response.headers.get("Retry-After"), now=time.time())
            wait = policy.after_status(attempt, response.status_code, after)
            if wait is None:
                raise api_error(response, call, after)
            if response.status_code == 429 and key is not None:
                key = new_idempotency_key()  # as in Client._send: a 429 is kept for its key, and made nothing
            await self._retrying(RetryEvent(call.method, call.path, attempt, wait, status=response.status_code))

    async def _retrying(self, event: RetryEvent) -> None:
        if self.on_retry is not None:
            self.on_retry(event)
        await asyncio.sleep(event.wait_s)

    async def _attempt(self, call: Call, key: str | None) -> httpx.Response:
        args = request_args(call, self.key, key)
        with ExitStack() as opened:
            if call.files:
                args["files"] = [(name, (u.name, opened.enter_context(open(u.source, "rb"))
                                         if isinstance(u.source, Path) else u.source, u.content_type))
                                 for name, u in call.files]
            if call.content is not None:
                args["content"] = _file_chunks(call.content, call.sent)
            if call.save_to is None:
                return await self._http.request(call.method, call.path, **args)
            async with self._http.stream(call.method, call.path, **args) as response:
                if response.status_code >= 400:
                    await response.aread()
                    return response
                part = call.save_to.with_name(call.save_to.name + ".part")
                try:
                    with open(part, "wb") as f:
                        async for chunk in response.aiter_bytes(CHUNK):
                            f.write(chunk)
                    part.replace(call.save_to)
                finally:
                    part.unlink(missing_ok=True)
                return response


async def _file_chunks(path: Path, sent: Callable[[int, int], None] | None) -> AsyncIterator[bytes]:
    total, done = path.stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):  # a local file's chunk: short enough to read on the loop
            yield chunk
            done += len(chunk)
            if sent is not None:
                sent(done, total)
