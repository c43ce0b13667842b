"""Every API operation once, without I/O: a generator that yields what to do (send a Call,
Sleep, Emit an item to an iterator) and is sent back what came of it. Client runs them with
blocking I/O and AsyncClient with asyncio, so the two cannot say different things.

A Call's answer comes back as an httpx.Response whose body is read (a 4xx/5xx has already
been raised as ApiError by the runner), or as the Path it was saved to."""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from checkerless_client.errors import CheckerlessError, StylizationFailed, WaitTimeout
from checkerless_client.results import ContentSet, Experiment, Job, Page, Result, Style, Stylization

T = TypeVar("T")
R = TypeVar("R", bound=Result)

# What a user may pass as an image or a video: a path, the bytes, or (file name, bytes).
FileLike = str | os.PathLike | bytes | tuple[str, bytes]
StyleRef = str | Style | os.PathLike  # an id ('builtin:ihc' or an upload's), a Style, or an image file to upload
DOWNLOADS = ("checkpoint", "onnx", "torchscript", "report", "preview")  # GET /v1/jobs/{id}/{name}


@dataclass
class Upload:
    """One multipart file: read from `source` (a path, opened again for each attempt) or bytes."""

    name: str
    source: bytes | Path
    content_type: str = "application/octet-stream"


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None  # form fields beside files
    files: list[tuple[str, Upload]] | None = None
    content: Path | None = None  # a file sent as the raw body, streamed
    headers: dict[str, str] = field(default_factory=dict)
    sent: Callable[[int, int], None] | None = None  # progress of `content`: (bytes sent, total)
    idempotency_key: str | None = None  # a POST without one gets one made by the runner
    retry: bool = True
    answers: tuple[int, ...] = ()  # error statuses that are answers here (ready's 503), not errors
    save_to: Path | None = None  # the body streamed into this file


@dataclass
class Sleep:
    seconds: float


@dataclass
class Emit:
    item: Any


Op = Generator[Call | Sleep | Emit, Any, T]


def segment(value: str | Result) -> str:
    """An id as one path segment (a Job, Style... stands for its id)."""
    value = getattr(value, "id", value)
    if not isinstance(value, str) or not value:
        raise CheckerlessError(f"expected an id, got {value!r}")
    return quote(value, safe="")


def upload(item: FileLike, what: str) -> Upload:
    """A file to send (the API reads what it is from its bytes; the type is a courtesy)."""
    if isinstance(item, tuple):
        name, data = item
        source: bytes | Path = bytes(data)
    elif isinstance(item, (bytes, bytearray)):
        name, source = what, bytes(item)
    else:
        source = Path(item)
        if not source.is_file():
            raise CheckerlessError(f"{source}: no such file")
        name = source.name
    return Upload(name=name, source=source,
                  content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")


def one(data: Any, cls: type[R]) -> R:
    return cls.from_json(data)


def many(data: Any, cls: type[R]) -> list[R]:
    if not isinstance(data, list):
        raise CheckerlessError(f"expected a JSON list of {cls.__name__}, got {type(data).__name__}")
    return [cls.from_json(d) for d in data]


def options_form(style: int | str | None, mix: Sequence[float] | str | None, strength: float | str | None,
                 colors: str | None) -> dict[str, str]:
    """The stylise options as the API's form fields (the API checks them and says what is wrong)."""
    if mix is not None and not isinstance(mix, str):
        mix = ",".join(f"{w:g}" for w in mix)
    form = {"style": style, "mix": mix, "strength": strength, "colors": colors}
    return {k: v if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)
            for k, v in form.items() if v is not None}


# --- the service ------------------------------------------------------------------------------


def health() -> Op[dict]:
    return (yield Call("GET", "/v1/health", retry=False)).json()


def ready() -> Op[dict]:
    """A probe reports, it does not wait: no retries, and 503 (not ready, with the reason) is an answer."""
    return (yield Call("GET", "/v1/ready", retry=False, answers=(503,))).json()


def get_json(path: str) -> Op[Any]:
    return (yield Call("GET", path)).json()


def webhook_secret() -> Op[str]:
    return (yield Call("GET", "/v1/webhook-secret")).json()["secret"]


# --- styles and content sets ------------------------------------------------------------------


def upload_style(image: FileLike, idempotency_key: str | None) -> Op[Style]:
    r = yield Call("POST", "/v1/styles", files=[("file", upload(image, "style"))], idempotency_key=idempotency_key)
    return one(r.json(), Style)


def style_ids(styles: StyleRef | Sequence[StyleRef]) -> Op[list[str]]:
    """Each style as an id: files uploaded first (one upload each), Styles and ids as they are."""
    if isinstance(styles, (str, Style, os.PathLike)):
        styles = [styles]
    ids = []
    for s in styles:
        if isinstance(s, Style):
            ids.append(s.id)
        elif isinstance(s, os.PathLike):
            ids.append((yield from upload_style(s, None)).id)
        elif isinstance(s, str) and s:
            ids.append(s)
        else:
            raise CheckerlessError(f"a style is an id ('builtin:ihc' or an upload's), a Style or a pathlib.Path; "
                                   f"got {s!r}")
    if not ids:
        raise CheckerlessError("name at least one style")
    return ids


def upload_content_set(images: Iterable[FileLike], name: str | None, idempotency_key: str | None) -> Op[ContentSet]:
    files = [("files", upload(i, f"image-{n}")) for n, i in enumerate(images)]
    if not files:
        raise CheckerlessError("a content set needs at least one image (or a zip of them)")
    r = yield Call("POST", "/v1/content-sets", params={"name": name} if name else None, files=files,
                   idempotency_key=idempotency_key)
    return one(r.json(), ContentSet)


def upload_archive(archive: str | os.PathLike, name: str | None, progress: Callable[[int, int], None] | None,
                   idempotency_key: str | None) -> Op[ContentSet]:
    path = Path(archive)
    if not path.is_file():
        raise CheckerlessError(f"{path}: no such file")
    r = yield Call("POST", "/v1/content-sets/archive", params={"name": name or path.name}, content=path,
                   headers={"Content-Type": "application/octet-stream"}, sent=progress,
                   idempotency_key=idempotency_key)
    return one(r.json(), ContentSet)


def register_content_set(prefix: str, bucket: str | None, name: str | None,
                         idempotency_key: str | None) -> Op[ContentSet]:
    r = yield Call("POST", "/v1/content-sets/register", json={"prefix": prefix, "bucket": bucket, "name": name},
                   idempotency_key=idempotency_key)
    return one(r.json(), ContentSet)


def wait_content_set(set_id: str, poll_s: float, timeout_s: float | None,
                     progress: Callable[[ContentSet], None] | None) -> Op[ContentSet]:
    return (yield from _poll(f"/v1/content-sets/{segment(set_id)}", ContentSet, f"content set {set_id}", poll_s,
                             timeout_s, progress))


# --- jobs -------------------------------------------------------------------------------------


def submit(styles: StyleRef | Sequence[StyleRef], content_set: str | ContentSet | None, webhook_url: str | None,
           idempotency_key: str | None, settings: dict[str, Any]) -> Op[Job]:
    body = {"style_ids": (yield from style_ids(styles)), **settings}
    if content_set is not None:
        body["content_set_id"] = getattr(content_set, "id", content_set)
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    r = yield Call("POST", "/v1/jobs", json=body, idempotency_key=idempotency_key)
    return one(r.json(), Job)


def page(path: str, cls: type[R], limit: int | None, cursor: str | None, url: str | None = None) -> Op[Page[R]]:
    """One page of a list: `url` (a Link's rel="next") as it is, else `path` with limit and cursor."""
    params = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
    r = yield Call("GET", url, params=None) if url else Call("GET", path, params=params or None)
    return Page(items=many(r.json(), cls), next_cursor=r.headers.get("X-Next-Cursor"),
                next_url=r.links.get("next", {}).get("url"))


def every(path: str, cls: type[R], limit: int | None, cursor: str | None) -> Op[None]:
    """Every item of a list, page after page, following each page's Link rel="next"."""
    p = yield from page(path, cls, limit, cursor)
    while True:
        for item in p.items:
            yield Emit(item)
        if p.next_url is None:
            return
        p = yield from page(path, cls, None, None, url=p.next_url)


def wait_job(job_id: str, poll_s: float, timeout_s: float | None, progress: Callable[[Job], None] | None) -> Op[Job]:
    return (yield from _poll(f"/v1/jobs/{segment(job_id)}", Job, f"job {job_id}", poll_s, timeout_s, progress))


def watch_job(job_id: str, poll_s: float, timeout_s: float | None) -> Op[None]:
    yield from _poll(f"/v1/jobs/{segment(job_id)}", Job, f"job {job_id}", poll_s, timeout_s, None, emit=True)


def download(job_id: str, what: str, path: str | os.PathLike | None) -> Op[bytes | Path]:
    if what not in DOWNLOADS:
        raise CheckerlessError(f"no download {what!r}; jobs have: {', '.join(DOWNLOADS)}")
    r = yield Call("GET", f"/v1/jobs/{segment(job_id)}/{what}", save_to=None if path is None else Path(path))
    return r if path is not None else r.content


# --- stylisations -----------------------------------------------------------------------------


def request_stylization(job_id: str, images: Iterable[FileLike], form: dict[str, str],
                        idempotency_key: str | None) -> Op[Stylization]:
    files = [("files", upload(i, f"image-{n}.png")) for n, i in enumerate(images)]
    if not files:
        raise CheckerlessError("send at least one image to stylise")
    r = yield Call("POST", f"/v1/jobs/{segment(job_id)}/stylize", files=files, data=form or None,
                   idempotency_key=idempotency_key)
    return one(r.json(), Stylization)


def request_video_stylization(job_id: str, video: FileLike, form: dict[str, str],
                              idempotency_key: str | None) -> Op[Stylization]:
    r = yield Call("POST", f"/v1/jobs/{segment(job_id)}/stylize-video", files=[("file", upload(video, "video.mp4"))],
                   data=form or None, idempotency_key=idempotency_key)
    return one(r.json(), Stylization)


def wait_stylization(request_id: str, poll_s: float, timeout_s: float | None,
                     progress: Callable[[Stylization], None] | None) -> Op[Stylization]:
    return (yield from _poll(f"/v1/stylizations/{segment(request_id)}", Stylization, f"stylization {request_id}",
                             poll_s, timeout_s, progress))


def output(request_id: str, index: int, path: str | os.PathLike | None) -> Op[bytes | Path]:
    r = yield Call("GET", f"/v1/stylizations/{segment(request_id)}/outputs/{int(index)}",
                   save_to=None if path is None else Path(path))
    return r if path is not None else r.content


def stylize(job_id: str, images: Sequence[FileLike], form: dict[str, str], poll_s: float,
            timeout_s: float | None) -> Op[list[bytes]]:
    """Every image stylised: the PNGs' bytes, in the order sent."""
    req = yield from request_stylization(job_id, images, form, None)
    done = yield from wait_stylization(req.id, poll_s, timeout_s, None)
    if done.state != "succeeded":
        raise StylizationFailed(done)
    pngs = []
    for o in done.outputs:
        pngs.append((yield from output(done.id, o["index"], None)))
    return pngs


def stylize_video(job_id: str, video: FileLike, form: dict[str, str], path: str | os.PathLike | None, poll_s: float,
                  timeout_s: float | None, progress: Callable[[Stylization], None] | None) -> Op[bytes | Path]:
    req = yield from request_video_stylization(job_id, video, form, None)
    done = yield from wait_stylization(req.id, poll_s, timeout_s, progress)
    if done.state != "succeeded":
        raise StylizationFailed(done)
    return (yield from output(done.id, 0, path))


# --- experiments ------------------------------------------------------------------------------


def create_experiment(styles: StyleRef | Sequence[StyleRef], variants: Sequence[str | Sequence[str] | dict],
                      seeds: int, content_set: str | ContentSet | None, webhook_url: str | None,
                      idempotency_key: str | None, settings: dict[str, Any]) -> Op[Experiment]:
    body = {"style_ids": (yield from style_ids(styles)), "variants": list(variants), "seeds": seeds, **settings}
    if content_set is not None:
        body["content_set_id"] = getattr(content_set, "id", content_set)
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    r = yield Call("POST", "/v1/experiments", json=body, idempotency_key=idempotency_key)
    return one(r.json(), Experiment)


def wait_experiment(experiment_id: str, poll_s: float, timeout_s: float | None,
                    progress: Callable[[Experiment], None] | None) -> Op[Experiment]:
    return (yield from _poll(f"/v1/experiments/{segment(experiment_id)}", Experiment, f"experiment {experiment_id}",
                             poll_s, timeout_s, progress))


# --- polling ----------------------------------------------------------------------------------


def _poll(path: str, cls: type[R], what: str, poll_s: float, timeout_s: float | None,
          progress: Callable[[R], None] | None, *, emit: bool = False) -> Op[R]:
    """Read `path` every poll_s seconds until it is final (each read to `progress`, or emitted)."""
    if poll_s <= 0:
        raise CheckerlessError("poll_s must be positive")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        current = one((yield Call("GET", path)).json(), cls)
        if emit:
            yield Emit(current)
        elif progress is not None:
            progress(current)
        if current.final:
            return current
        if deadline is not None and time.monotonic() + poll_s > deadline:
            raise WaitTimeout(what, timeout_s, current)
        yield Sleep(poll_s)


def raw(method: str, path: str, kwargs: dict[str, Any]) -> Op[Any]:
    """Any route, as Client.request() sends it."""
    known = {"params", "json", "data", "headers", "idempotency_key"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"request() takes {', '.join(sorted(known))}; not {', '.join(unknown)}")
    return (yield Call(method.upper(), path, params=kwargs.get("params"), json=kwargs.get("json"),
                       data=kwargs.get("data"), headers=dict(kwargs.get("headers") or {}),
                       idempotency_key=kwargs.get("idempotency_key")))


def get(path: str, cls: type[R]) -> Op[R]:
    return one((yield Call("GET", path)).json(), cls)


def get_list(path: str, cls: type[R]) -> Op[list[R]]:
    return many((yield Call("GET", path)).json(), cls)


def post(path: str, cls: type[R]) -> Op[R]:
    return one((yield Call("POST", path)).json(), cls)


def delete(path: str) -> Op[None]:
    yield Call("DELETE", path)
