"""The warm stylise server: a long-lived process that keeps recently used networks loaded.

`python -m workers.stylize_server FOLDER/spec.json FD_IN FD_OUT`, started and supervised by
workers/warm_stylize.py (the worker never imports torch; this process does). The messages are
in service/core/protocol.py. The loop:
- wait for a request (an idle server exits after `idle_s`, freeing its memory);
- drain the inbox: every request already waiting is served in this round (a batch);
- group the batch by network (the checkpoint's sha256), in order of first arrival, so each
  network is looked up once per round and its requests run back to back;
- each network comes from an LRU bounded by `cache_bytes` (parameter and buffer bytes); the
  network in use is always kept, so one larger than the budget still runs, alone;
- each image goes through models.stylize.stylize_tensor(net, image, style/mix, strength, colors),
  on CUDA where there is one; a video through models.video.stylize_video, its progress in frames
  sent as it goes, once its frames are counted (the locked-down probe, stopping one frame past
  the spec's video limits) and found within them (`video_frame_cap`; refused with its numbers);
- in the spec's `precision` (auto, 32 or bf16; auto by default: bf16 where the machine has bf16
  matrix units, models/hardware.py, except for a network with low-pass filters on a CPU:
  models/stylize.py stylize_precision), resolved per network, whatever a checkpoint was
  trained in; what it resolves to for a network without filters is its status's `precision`;
- each request is answered as soon as its own images are written.
The owner closing our inbox means no more requests: what was read is answered, then we exit.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path

from service.core import protocol


class NetworkCache:
    """Loaded networks by checkpoint digest, least recently used evicted past the budget."""

    def __init__(self, budget_bytes: int, device: str):
        self.budget, self.device = budget_bytes, device
        self._nets: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    @staticmethod
    def size_of(net) -> int:
        return sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])

    def get(self, digest: str, checkpoint: str) -> tuple[object, bool]:
        """(the network, whether it was already loaded)."""
        if digest in self._nets:
            self._nets.move_to_end(digest)
            self.hits += 1
            return self._nets[digest][0], True
        from models.checkpoint import load_network

        net, _ = load_network(checkpoint)  # CheckpointError (a ValueError): the job's own input
        net = net.to(self.device)
        size = self.size_of(net)
        while self._nets and self.bytes + size > self.budget:
            self._nets.popitem(last=False)
            self.evictions += 1
        if self.evictions and self.device == "cuda":
            import torch

            torch.cuda.empty_cache()
        self._nets[digest] = (net, size)
        self.misses += 1
        return net, False

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._nets.values())

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions, "bytes": self.bytes,
                "budget": self.budget, "loaded": [{"digest": d, "bytes": s} for d, (_, s) in self._nets.items()]}


def video_frame_cap(width: int, height: int, limits: dict) -> tuple[int, str]:
    """The most frames a video of this frame size may have, and which limit sets it: "frames"
    (max_frames) or "work" (max_frame_pixels over the frame's pixels, counted at least
    pixel_floor: a tiny frame costs a frame's fixed work, not its few pixels)."""
    by_work = limits["max_frame_pixels"] // max(width * height, limits["pixel_floor"])
    return (by_work, "work") if by_work < limits["max_frames"] else (limits["max_frames"], "frames")


def video_over_limits(width: int, height: int, frames: int, limits: dict) -> str | None:
    """Why a video of `frames` (counted to one past its cap) frames of this size is refused; None if it is not."""
    cap, which = video_frame_cap(width, height, limits)
    if frames <= cap:
        return None
    if which == "frames":
        return (f"the video has more than {cap:,} frames; the limit is {limits['max_frames']:,} frames a video "
                f"(CHECKERLESS_MAX_VIDEO_FRAMES): send a shorter one")
    pixels = width * height
    counted = max(pixels, limits["pixel_floor"])
    each = (f"{width}x{height} = {pixels:,} pixels" if counted == pixels
            else f"{width}x{height}, each counted as {counted:,} pixels, the per-frame floor")
    many = f"more than {cap:,} frames" if cap else "frames"
    return (f"the video has {many} of {each}: over the limit of {limits['max_frame_pixels']:,} frames x pixels "
            f"a video (CHECKERLESS_MAX_VIDEO_FRAME_PIXELS), which at this size allows "
            f"{f'{cap:,} frames' if cap else 'none'}: send a shorter or smaller one")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:2000]


class Server:
    def __init__(self, spec: dict, inbox: Connection, outbox: Connection):
        from models.hardware import resolve_accelerator
        from models.images import MAX_PIXELS, set_pixel_limit
        from models.stylize import stylize_precision

        set_pixel_limit(spec.get("max_pixels", MAX_PIXELS))  # the operator's, for every image and video frame
        self.inbox, self.outbox = inbox, outbox
        self.device = "cuda" if resolve_accelerator(spec.get("device", "auto")) == "gpu" else "cpu"
        self.asked = spec.get("precision") or "auto"
        self.precision = stylize_precision(self.asked, self.device)  # "32" or "bf16", for a network without filters
        self.cache = NetworkCache(int(spec["cache_bytes"]), self.device)
        self.idle_s = float(spec.get("idle_s") or 0)
        self.video_limits = spec.get("video_limits")  # max_frames, max_frame_pixels, pixel_floor; None: no limit
        self.batches = self.requests = 0

    def send(self, message: dict) -> None:
        self.outbox.send_bytes(json.dumps(message).encode())

    def serve(self) -> str:
        """Until the owner closes our inbox, or no request came for idle_s. Returns why it ended."""
        self.send({"op": protocol.SERVER_READY, "pid": os.getpid(), "device": self.device, "precision": self.precision})
        closed = False
        while not closed:
            if self.idle_s and not self.inbox.poll(self.idle_s):
                return f"idle for {self.idle_s:.0f} s"
            batch = []
            try:
                batch.append(json.loads(self.inbox.recv_bytes()))
                while self.inbox.poll(0):  # everything already waiting joins this round
                    batch.append(json.loads(self.inbox.recv_bytes()))
            except EOFError:
                closed = True
            if batch:
                self.run_batch(batch)
        return "its owner closed the inbox"

    def run_batch(self, batch: list[dict]) -> None:
        self.batches += 1
        groups: OrderedDict[str, list[dict]] = OrderedDict()
        for request in batch:
            groups.setdefault(request["digest"], []).append(request)
        for digest, requests in groups.items():
            try:
                net, hit = self.cache.get(digest, requests[0]["checkpoint"])
            except Exception as e:  # noqa: BLE001 - the checkpoint's own fault, or loading failed: said per request
                if not isinstance(e, ValueError):
                    traceback.print_exc()
                for request in requests:
                    self.answer_error(request, e)
                continue
            for request in requests:
                self.run_one(request, net, "hit" if hit else "miss", len(batch))
                hit = True  # the rest of the group found it loaded

    def run_one(self, request: dict, net, cache: str, batch_size: int) -> None:
        from models.images import from_tensor, load_tensor
        from models.stylize import stylize_precision, stylize_tensor
        from models.stylize_options import StylizeOptions

        started = time.perf_counter()
        spent = {"decode": 0.0, "forward": 0.0, "encode": 0.0}
        self.requests += 1
        try:
            options = StylizeOptions(**{k: v for k, v in (request.get("options") or {}).items() if v is not None})
            chosen = {"style": options.selection, "strength": options.strength, "colors": options.colors,
                      "precision": stylize_precision(self.asked, self.device, net)}
            out_dir, outputs = Path(request["out_dir"]), []
            if request.get("kind") == "video":
                outputs.append(self.run_video(request, net, out_dir, chosen))
                spent["forward"] = time.perf_counter() - started
            for i, path in enumerate(request["inputs"] if request.get("kind") != "video" else []):
                t0 = time.perf_counter()
                image = load_tensor(path)  # ImageError (a ValueError): the request's own input
                t1 = time.perf_counter()
                result = stylize_tensor(net, image, **chosen)
                t2 = time.perf_counter()
                if not out_dir.is_dir():  # abandoned by its supervisor meanwhile: write nothing
                    raise FileNotFoundError(f"{out_dir} is gone (the request was abandoned)")
                target = out_dir / f"output-{i:03d}.png"
                # zlib level 1: a quarter of the default level's time for ~10% more bytes; lossless either way.
                from_tensor(result).save(target, format="PNG", compress_level=1)
                outputs.append({"path": str(target), "width": image.shape[2], "height": image.shape[1]})
                spent["decode"] += t1 - t0
                spent["forward"] += t2 - t1
                spent["encode"] += time.perf_counter() - t2
        except Exception as e:  # noqa: BLE001 - one request's failure is its own; the server goes on
            if not isinstance(e, ValueError):
                traceback.print_exc()
            self.answer_error(request, e)
            if self.device == "cuda":
                import torch

                torch.cuda.empty_cache()  # after an out-of-memory error, give the next request room
            return
        self.send({"op": protocol.SERVER_DONE, "id": request["id"], "ok": True, "outputs": outputs, "cache": cache,
                   "batch": self.batches, "batch_size": batch_size, "precision": chosen["precision"],
                   "seconds": round(time.perf_counter() - started, 4),
                   "spent": {k: round(v, 4) for k, v in spent.items()}, "stats": self.stats()})

    def run_video(self, request: dict, net, out_dir: Path, chosen: dict) -> dict:
        """The request's one video, stylised into out_dir/output.mp4 (VideoError, a ValueError: its own fault)."""
        from models.video import VideoError, probe_video, stylize_video

        def progress(done: int, total: int) -> None:
            self.send({"op": protocol.SERVER_PROGRESS, "id": request["id"], "done": done, "total": total})

        if not out_dir.is_dir():
            raise FileNotFoundError(f"{out_dir} is gone (the request was abandoned)")
        limits = self.video_limits
        # Counted before any frame is stylised, and only to one past the cap its size allows.
        info = probe_video(request["inputs"][0],
                           frame_limit=(lambda w, h: video_frame_cap(w, h, limits)[0]) if limits else None)
        refused = limits and video_over_limits(info.width, info.height, info.frames, limits)
        if refused:
            raise VideoError(refused)
        result = stylize_video(net, request["inputs"][0], out_dir / "output.mp4", progress=progress, info=info,
                               **chosen)
        return {"path": str(result.output), "width": result.width, "height": result.height, "frames": result.frames,
                "fps": result.fps, "has_audio": result.has_audio, "flicker": result.flicker}

    def answer_error(self, request: dict, e: BaseException) -> None:
        user = isinstance(e, ValueError)
        error = one_line(e) if user else f"{type(e).__name__}: {one_line(e)}"
        self.send({"op": protocol.SERVER_DONE, "id": request["id"], "ok": False, "error": error, "user_error": user,
                   "stats": self.stats()})

    def stats(self) -> dict:
        return {"pid": os.getpid(), "device": self.device, "precision": self.precision, "batches": self.batches,
                "requests": self.requests,
                **self.cache.stats()}


def main(argv: list[str]) -> int:
    protocol.die_with_parent()
    spec_path, fd_in, fd_out = argv
    inbox, outbox = Connection(int(fd_in), writable=False), Connection(int(fd_out), readable=False)
    spec = json.loads(Path(spec_path).read_text())
    why = Server(spec, inbox, outbox).serve()
    print(f"stylise server {os.getpid()} exits: {why}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
