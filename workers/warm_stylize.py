"""The worker's side of the warm stylise server (workers/stylize_server.py): it starts the
server, hands it requests, and replaces it when it dies, leaks, or must be stopped. It never
imports torch.

Two lanes per worker process, each a `WarmStylizer` with a server of its own
(`warm_stylizer(settings, lane)`): "images" for image requests and "video" for videos, so an
image never waits behind a video's frames. Each is shared by the threads that run stylise tasks
there: a stylise-only worker runs its tasks as threads of one process, so requests that arrive
together reach one server together and each network is loaded once; a prefork worker (training
and stylising) has them per pool process, used one request at a time. The video lane takes one
video at a time, in turns by owner (`VideoLane`, `video_lane(settings)`); its server starts on
the first video.
- A request is a `Ticket`; the server's answer, or its death, resolves it. A reader thread per
  server process hands the answers out by request id.
- A server that dies (a crash, SIGKILL, the OOM killer) resolves the tickets it held with
  `ServerDied` and the reason; the next request starts a fresh one.
- After each answer the server's RSS is read from /proc; past `stylize_server_max_rss_bytes`
  the server is retired: it gets no new requests, answers those it has, and exits.
- `kill(ticket)` (a request past its time limit, or a cancelled video): SIGKILL to the server;
  the other requests it held die with it (their supervisors queue them again).
- A server started ahead (`prestart`, a stylise-only worker when it is ready) is replaced at
  once when it is retired or killed; otherwise the next request starts the next server.
- Downloaded checkpoints are kept on local disk (`CheckpointCache`), found by the store's
  version of the object, so a repeat request does not download again.
- `stylize-server-<pid>.json` (the video lane: `stylize-video-server-<pid>.json`) in the work
  folder says what the server is doing: its pid, restarts and why, cache counters, and the last
  requests (which server, hit or miss, batch, and the server's decode, forward and encode times).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

from service.core import protocol
from service.core.settings import Settings
from service.core.storage import ObjectStore
from workers.child_process import pid_alive
from workers.disk_cache import DiskCache
from workers.spawner import popen

log = logging.getLogger(__name__)


class ServerDied(Exception):
    """The server process ended while it held the request."""

    def __init__(self, reason: str, *, killed_by_us: bool = False):
        super().__init__(reason)
        self.reason, self.killed_by_us = reason, killed_by_us


class Ticket:
    """One request handed to a server: `wait()` until its answer (or the server's death)."""

    def __init__(self, request_id: str, server: ServerProcess, out_dir: Path):
        self.request_id, self.server, self.out_dir = request_id, server, out_dir
        self.answer: dict | None = None
        self.died: ServerDied | None = None
        self.abandoned = False
        self.sent_at = time.time()
        self.progress: dict[str, int] | None = None  # a video's frames so far: done, total
        self._done = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def resolve(self, answer: dict | None = None, died: ServerDied | None = None) -> None:
        self.answer, self.died = answer, died
        self._done.set()
        if self.abandoned:  # its supervisor gave up on it: nothing it wrote is wanted
            shutil.rmtree(self.out_dir, ignore_errors=True)


def _server_error(folder: Path, rc: int | None) -> str:
    if rc is not None and rc < 0:
        return f"the stylise server was killed by signal {-rc} (out of memory?)"
    tail = ""
    try:
        lines = [line for line in (folder / protocol.LOG).read_text(errors="replace").splitlines() if line.strip()]
        tail = f": {lines[-1].strip()[:500]}" if lines else ""
    except OSError:
        pass
    return f"the stylise server exited with code {rc}{tail}"


class ServerProcess:
    """One server process: its two pipes, the reader thread, the requests it holds."""

    def __init__(self, settings: Settings, folder: Path, number: int):
        self.folder, self.number = folder, number
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        # precision: auto, 32 or bf16 (auto: from the machine, models/hardware.py).
        spec = {"device": settings.device, "cache_bytes": settings.stylize_cache_bytes,
                "idle_s": settings.stylize_server_idle_s,
                "precision": settings.stylize_precision, "max_pixels": settings.max_pixels,
                "video_limits": {"max_frames": settings.max_video_frames,
                                 "max_frame_pixels": settings.max_video_frame_pixels,
                                 "pixel_floor": settings.video_pixel_floor}}
        (folder / protocol.SPEC).write_text(json.dumps(spec))
        to_server_r, to_server_w = os.pipe()
        from_server_r, from_server_w = os.pipe()
        try:
            with open(folder / protocol.LOG, "ab") as log_file:
                self.proc = popen(
                    [sys.executable, "-m", "workers.stylize_server", str(folder / protocol.SPEC),
                     str(to_server_r), str(from_server_w)],
                    pass_fds=(to_server_r, from_server_w), stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
        except BaseException:
            for fd in (to_server_w, from_server_r):
                os.close(fd)
            raise
        finally:
            os.close(to_server_r)
            os.close(from_server_w)
        self.pid = self.proc.pid
        self.started = time.monotonic()
        self.device: str | None = None  # told by its "ready"
        self.precision: str | None = None  # what it stylises in, "32" or "bf16": told by its "ready"
        self._inbox = Connection(to_server_w, readable=False)
        self._outbox = Connection(from_server_r, writable=False)
        self._lock = threading.Lock()  # the state below
        self._send_lock = threading.Lock()  # writes to the inbox, and closing it
        self.pending: dict[str, Ticket] = {}
        self.retired = False  # takes no new requests; exits once it has answered those it has
        self.killed_for: str | None = None  # why we SIGKILLed it
        self.exit_reason: str | None = None  # once it has ended
        self.on_answer = lambda ticket: None
        self.on_exit = lambda server, rc: None
        self._reader = threading.Thread(target=self._read, name=f"stylize-server-{self.pid}", daemon=True)
        self._reader.start()

    def send(self, request_id: str, message: dict, out_dir: Path) -> Ticket:
        ticket = Ticket(request_id, self, out_dir)
        data = json.dumps({"op": protocol.SERVER_STYLIZE, "id": request_id, **message}).encode()
        with self._send_lock:
            with self._lock:
                if self.exit_reason is not None or self.retired:
                    died = ServerDied(self.exit_reason or "the stylise server was retired")
                else:
                    died = None
                    self.pending[request_id] = ticket
            if died is not None:
                ticket.resolve(died=died)
                return ticket
            try:
                self._inbox.send_bytes(data)
            except OSError:  # it died just now: its reader resolves the ticket with the reason
                pass
        return ticket

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self._outbox.recv_bytes())
                if message.get("op") == protocol.SERVER_READY:
                    self.device, self.precision = message.get("device"), message.get("precision")
                    log.info("stylise server %d ready on %s (%s) after %.1f s", self.pid, self.device,
                             "fp32" if self.precision == "32" else self.precision, time.monotonic() - self.started)
                    continue
                if message.get("op") == protocol.SERVER_PROGRESS:
                    with self._lock:
                        ticket = self.pending.get(message.get("id"))
                    if ticket is not None:
                        ticket.progress = {"done": int(message["done"]), "total": int(message["total"])}
                    continue
                with self._lock:
                    ticket = self.pending.pop(message.get("id"), None)
                if ticket is not None:
                    ticket.answer = message
                    self.on_answer(ticket)  # noted (and the RSS checked) before its supervisor goes on
                    ticket.resolve(answer=message)
        except (EOFError, OSError, ValueError):
            pass
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill("it closed its pipe but did not exit")
            rc = self.proc.wait()
        with self._lock:
            if self.killed_for is not None:
                reason = f"the stylise server was stopped because {self.killed_for}"
            else:
                reason = _server_error(self.folder, rc)
            self.exit_reason = reason
            pending, self.pending = list(self.pending.values()), {}
        self._outbox.close()
        self._close_inbox()
        if pending or rc != 0:
            log.warning("stylise server %d ended (%s); %d request(s) it held go back to their supervisors",
                        self.pid, reason, len(pending))
        self.on_exit(self, rc)
        for ticket in pending:
            ticket.died = ServerDied(reason, killed_by_us=self.killed_for is not None)
            self.on_answer(ticket)
            ticket.resolve(died=ticket.died)

    @property
    def open(self) -> bool:
        """Running, and taking new requests."""
        return self.exit_reason is None and not self.retired and self.killed_for is None and self.proc.poll() is None

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def retire(self) -> None:
        """No new requests: the server answers those it has read, then exits."""
        with self._lock:
            self.retired = True
        self._close_inbox()

    def _close_inbox(self) -> None:
        with self._send_lock:
            try:
                self._inbox.close()
            except OSError:
                pass

    def kill(self, why: str) -> None:
        """SIGKILL to the server's process group; its reader resolves what it held."""
        with self._lock:
            if self.killed_for is None:
                self.killed_for = why
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait_closed(self, timeout: float) -> None:
        self._reader.join(timeout)


LANES = ("images", "video")
_PREFIXES = {"images": "stylize-server-", "video": "stylize-video-server-"}  # folders and status files, by lane
_STATUS = {"images": protocol.SERVER_STATUS, "video": protocol.VIDEO_SERVER_STATUS}


class WarmStylizer:
    """The server one lane of this worker process owns (at most one takes new requests at a time)."""

    RECENT = 50  # requests remembered in the status file

    def __init__(self, settings: Settings, lane: str = "images"):
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; lanes: {', '.join(LANES)}")
        self.settings, self.lane = settings, lane
        self.folder = settings.work_dir / f"{_PREFIXES[lane]}{os.getpid()}"
        self.status_path = settings.work_dir / _STATUS[lane].format(pid=os.getpid())
        self.checkpoints = CheckpointCache(settings.work_dir / "checkpoints", settings.stylize_checkpoint_cache_bytes)
        self.server: ServerProcess | None = None
        self.eager = False  # start a replacement at once when we retire or kill one (prestart)
        self.starts = 0
        self.restarts = {"died": 0, "idle": 0, "rss": 0, "killed": 0}  # servers ended, by why
        self.last_stats: dict = {}
        self.recent: deque[dict] = deque(maxlen=self.RECENT)
        self._lock = threading.RLock()
        _remove_leftovers(settings.work_dir)

    def submit(self, request_id: str, *, checkpoint: Path, digest: str, inputs: list[str], out_dir: Path,
               options: dict | None = None, kind: str = "images") -> Ticket:
        message = {"checkpoint": str(checkpoint), "digest": digest, "inputs": inputs, "out_dir": str(out_dir),
                   "options": options or {}, "kind": kind}
        with self._lock:
            server = self.server
            if server is None or not server.open:
                server = self._start()
            ticket = server.send(request_id, message, out_dir)
            self._write_status()
            return ticket

    def prestart(self) -> None:
        """Start the server now rather than on the first request (its torch import is most of
        a cold request's time). A stylise-only worker calls this when it is ready."""
        with self._lock:
            self.eager = True
            if self.server is None or not self.server.open:
                self._start()
                self._write_status()

    def _start(self) -> ServerProcess:
        self.starts += 1
        folder = self.folder / f"server-{self.starts}"
        for older in self.folder.glob("server-*"):  # the last one's log stays, if it crashed
            if older.name != f"server-{self.starts - 1}":
                shutil.rmtree(older, ignore_errors=True)
        server = ServerProcess(self.settings, folder, self.starts)
        server.on_answer, server.on_exit = self._answered, self._exited
        old, self.server = self.server, server
        if old is not None:
            old.retire()  # died meanwhile (its reader is telling), or was never running: no-op
        log.info("stylise server %d started (start %d)", server.pid, self.starts)
        return server

    def _exited(self, server: ServerProcess, rc: int | None) -> None:
        """In the server's reader thread, once it has ended: why, for the status file."""
        with self._lock:
            if server.killed_for is not None:
                pass  # counted by kill()
            elif not server.retired:
                self.restarts["idle" if rc == 0 else "died"] += 1
            if self.server is server:
                self.server = None
            self._write_status()
        if server.retired or server.killed_for is not None or rc == 0:
            shutil.rmtree(server.folder, ignore_errors=True)  # a crashed server's log stays until the next start

    def _answered(self, ticket: Ticket) -> None:
        """In the server's reader thread, after each answer (or the server's death under a
        request): note it, and retire a server grown past its memory limit (between requests:
        it finishes the ones it has)."""
        answer = ticket.answer or {}
        with self._lock:
            self.last_stats = answer.get("stats") or self.last_stats
            self.recent.append({"id": ticket.request_id, "server_pid": ticket.server.pid,
                                "ok": bool(answer.get("ok")), "cache": answer.get("cache"), "batch": answer.get("batch"),
                                "batch_size": answer.get("batch_size"), "seconds": answer.get("seconds"),
                                "spent": answer.get("spent"),
                                "error": str(ticket.died) if ticket.died else answer.get("error"),
                                "sent_at": ticket.sent_at, "answered_at": time.time()})
            server = ticket.server
            if server is self.server and server.open:
                rss = server.rss()
                if rss > self.settings.stylize_server_max_rss_bytes:
                    log.warning("stylise server %d uses %d MiB, over the limit of %d MiB: restarting it",
                                server.pid, rss >> 20, self.settings.stylize_server_max_rss_bytes >> 20)
                    self.restarts["rss"] += 1
                    self.server = None
                    server.retire()
                    if self.eager:
                        self._start()
            self._write_status()

    def kill(self, ticket: Ticket, why: str, *, restart: bool = False) -> None:
        """Stop the server holding this ticket now (its request ran past the time limit, or was
        cancelled); `restart`: start its replacement at once, as a prestarted lane always does."""
        with self._lock:
            server = ticket.server
            if server is self.server:
                self.server = None
            self.restarts["killed"] += 1
            server.kill(why)
            if (self.eager or restart) and self.server is None:
                self._start()
            self._write_status()
        ticket.wait(30)

    def abandon(self, ticket: Ticket) -> None:
        """Its supervisor no longer wants the answer (it lost the lease): drop what it writes."""
        ticket.abandoned = True
        if ticket.wait(0):
            shutil.rmtree(ticket.out_dir, ignore_errors=True)

    def close(self) -> None:
        """Retire the server and wait until it has answered what it holds and exited."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            server.retire()
            server.wait_closed(timeout=30)
        with self._lock:
            self._write_status()

    def status(self) -> dict:
        with self._lock:
            server = self.server
            return {"owner_pid": os.getpid(), "lane": self.lane,
                    "server": None if server is None else {"pid": server.pid, "number": server.number,
                                                           "device": server.device, "precision": server.precision,
                                                           "open": server.open,
                                                           "in_flight": sorted(server.pending),
                                                           "rss_bytes": server.rss()},
                    "starts": self.starts, "restarts": dict(self.restarts), "stats": self.last_stats,
                    "recent": list(self.recent)}

    def _write_status(self) -> None:
        try:
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_path.with_suffix(f".tmp-{threading.get_ident()}")
            tmp.write_text(json.dumps(self.status()))
            os.replace(tmp, self.status_path)
        except OSError as e:
            log.warning("could not write %s (%s)", self.status_path, e)


def _remove_leftovers(work_dir: Path) -> None:
    """The status files and server folders of owners that are gone (an earlier worker)."""
    for path in [p for prefix in _PREFIXES.values() for p in work_dir.glob(f"{prefix}*")]:
        pid = next(path.name.removeprefix(p) for p in _PREFIXES.values() if path.name.startswith(p))
        pid = pid.removesuffix(".json")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if pid_alive(int(pid)):
            continue  # another worker process's
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


_owners: dict[str, WarmStylizer] = {}
_owner_lock = threading.Lock()


def warm_stylizer(settings: Settings, lane: str = "images") -> WarmStylizer:
    """This process's WarmStylizer for a lane (made on first use, after Celery forked its pool)."""
    with _owner_lock:
        owner = _owners.get(lane)
        if owner is None or owner.settings != settings:
            if owner is not None:
                owner.close()
            owner = _owners[lane] = WarmStylizer(settings, lane)
        return owner


class VideoLane:
    """Who may use this process's video lane: one video at a time, in turns by owner.

    A video that finds the lane taken (`take` is False) goes back on the queue, its record still
    queued and no attempt counted, and asks again a little later. When the lane is free it goes
    to the owner, of those whose videos asked within `forget_s`, whose last turn is the oldest
    (never: first; equal: who asked first). So one owner's many videos take turns with everyone
    else's instead of holding the lane, and an owner that stopped asking (its video cancelled,
    or taken by another worker) is forgotten rather than waited for."""

    KEEP_TURNS_S = 24 * 3600  # an owner's last turn is remembered this long

    def __init__(self, forget_s: float):
        self.forget_s = forget_s
        self.holder: tuple[str, str] | None = None  # (request id, owner) of the video in the lane
        self.asking: dict[str, tuple[float, float]] = {}  # owner -> (first, last) time a video of theirs was turned away
        self.turns: dict[str, float] = {}  # owner -> when their last video got the lane
        self._lock = threading.Lock()

    def take(self, request_id: str, owner: str) -> bool:
        """True: the lane is this request's until `release`; False: ask again later."""
        with self._lock:
            now = time.monotonic()
            self.asking = {o: t for o, t in self.asking.items() if now - t[1] <= self.forget_s}
            self.turns = {o: t for o, t in self.turns.items() if now - t <= self.KEEP_TURNS_S}
            if self.holder is None:
                def order(o: str) -> tuple[float, float]:
                    return self.turns.get(o, float("-inf")), self.asking.get(o, (now, now))[0]

                if min([owner, *self.asking], key=order) == owner:
                    self.holder = (request_id, owner)
                    self.asking.pop(owner, None)
                    self.turns[owner] = now
                    return True
            first = self.asking.get(owner, (now, now))[0]
            self.asking[owner] = (first, now)
            return False

    def release(self, request_id: str) -> None:
        with self._lock:
            if self.holder is not None and self.holder[0] == request_id:
                self.holder = None


_lane: tuple[Settings, VideoLane] | None = None


def video_lane(settings: Settings) -> VideoLane:
    """This process's video lane admission (one per process, like its servers). An owner is
    forgotten when its videos have not asked for a few of their retry periods."""
    global _lane
    with _owner_lock:
        if _lane is None or _lane[0] != settings:
            _lane = (settings, VideoLane(forget_s=5 * settings.stylize_video_retry_s + 5))
        return _lane[1]


# --- checkpoints on local disk ------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class CheckpointCache:
    """Checkpoints downloaded once per stored version: files named by their sha256 in a disk
    cache (workers/disk_cache.py, bounded by `budget_bytes`, least recently used out), found
    through an index by (key, version). A request gets a hard link of its own, so eviction (by
    any process sharing the folder) never pulls a file from under a request."""

    def __init__(self, folder: Path, budget_bytes: int):
        self.folder, self.files = folder, DiskCache(folder, budget_bytes)
        self.hits = self.misses = 0

    def _index(self, key: str, version: str) -> Path:
        return self.folder / "index" / (hashlib.sha256(f"{key}\0{version}".encode()).hexdigest() + ".json")

    def fetch(self, store: ObjectStore, key: str, dest: Path) -> tuple[Path, str]:
        """The object at `dest` and its sha256. ObjectNotFound if it is not stored."""
        version = store.version(key)
        if version is not None:
            try:
                digest = json.loads(self._index(key, version).read_text())["digest"]
                cached = self.files.hit(f"{digest}.ckpt")
                if cached is not None:
                    self.files.link(cached, dest)
                    self.hits += 1
                    return dest, digest
            except (OSError, ValueError, KeyError):
                pass
        self.misses += 1
        tmp = store.download(key, self.files.temp())
        digest = sha256_file(tmp)
        self.files.link(self.files.add_file(f"{digest}.ckpt", tmp), dest)
        if version is not None:
            index = self._index(key, version)
            index.parent.mkdir(parents=True, exist_ok=True)
            part = index.with_suffix(f".tmp-{uuid.uuid4().hex}")
            part.write_text(json.dumps({"key": key, "version": version, "digest": digest}))
            os.replace(part, index)
        return dest, digest
