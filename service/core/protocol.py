"""The supervisor <-> child protocol: `python -m workers.child train FOLDER/spec.json`; and the
warm stylise server's messages (below).

The supervisor writes the spec (TrainSpec); the child writes its progress (TrainProgress) and
its result (TrainResult) into the same folder and exits with one of the codes below. Both
sides write and read these dataclasses, never loose dicts. The supervisor asks the child to stop by
creating the STOP file (the training callback stops after the current step and keeps a
checkpoint), then SIGTERM, then SIGKILL to its process group.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from models.probe_row import ProbeRow

SPEC = "spec.json"
PROGRESS = "progress.json"  # rewritten atomically after every step
RESULT = "result.json"  # written once, on success
ERROR = "error.txt"  # one line: why the child failed
STOP = "cancel"  # created by the supervisor: stop after this step, checkpoint, exit
LOG = "child.log"  # the child's stdout and stderr
RUN = "run"  # the training run folder (last.ckpt, logs/)
CHECKPOINT = "last.ckpt"

EXIT_OK = 0
EXIT_USER_ERROR = 3  # the job's own input is bad (image, checkpoint, settings): not retried
EXIT_ERROR = 4  # any other exception in the child: not retried (it would fail again)
EXIT_RETRY = 5  # the store failed under it (a content set streamed from it): retried
# Such a child, and one killed by a signal (rc < 0: the OOM killer, a kill), is retried from its
# last checkpoint, up to the attempt limit.


@dataclass(frozen=True)
class TrainSpec:
    """What the supervisor hands the child for one attempt."""

    config: dict[str, Any]  # models/config.py TrainConfig.to_dict()
    style: str | list[str]  # per style, a built-in's name or an image file; one style as itself
    max_pixels: int  # the operator's pixel limit, for the style and every content image
    device: str = "auto"
    devices: int = 1  # DDP ranks: the child's Lightning starts devices - 1 more in its process group
    exports: list[str] = field(default_factory=list)  # formats of models/export.py to write
    probe_size: int | None = None  # None: models/probe_row.py probe_size()
    preview_size: int | None = None  # the preview's and panel's shorter side; None: models/preview_size.py
    content: dict[str, Any] | None = None  # workers/content_stream.py stream_spec; None: the built-in photos
    resume: str | None = None  # a checkpoint file to resume from


@dataclass(frozen=True)
class TrainProgress:
    """The child's latest state, rewritten atomically after every step."""

    step: int
    steps: int
    start_step: int | None  # where this attempt began (a resumed one: its checkpoint's step)
    losses: dict[str, float]  # the latest step's loss terms
    probe: ProbeRow | None  # the probe's latest row
    seconds_per_step: float | None
    precision: str  # Lightning's: "32-true" or "bf16-mixed" (the record's trained_precision)


@dataclass(frozen=True)
class Skipped:
    """A content image the run left out, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class PanelImage:
    """The trained network's output on one panel photo (models/preview.py stylize_panel)."""

    name: str
    path: str
    width: int
    height: int
    period2_db: float
    period4_db: float

    def shown(self) -> dict[str, Any]:
        """As the record holds it: without the child's file path."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "path"}


@dataclass(frozen=True)
class TrainResult:
    """Written once by a child that ran to its end (stopped or finished)."""

    step: int
    steps: int
    stopped: bool  # stopped before `steps` (a cancel): no outputs then
    seconds: float
    checkpoint: str
    losses: list[dict[str, float]] = field(default_factory=list)  # one row per step of this attempt
    probe: list[ProbeRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    preview: str | None = None
    panel: list[PanelImage] = field(default_factory=list)
    style_panels: list[list[PanelImage]] = field(default_factory=list)  # styles 1.. of a several-style network
    exports: dict[str, str] = field(default_factory=dict)  # format -> file
    # Where the steps' time went: steps, loop_s, step_s, probe_s, checkpoint_s, other_s
    # (models/callbacks.py PhaseTimer); None for a run too short to count.
    timing: dict[str, float] | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.losses[-1] if self.losses else {}


def _from_dict(cls, d: dict[str, Any]):
    """The dataclass `cls` from its JSON form, nested rows typed again."""
    d = dict(d)
    if cls is TrainProgress and d.get("probe") is not None:
        d["probe"] = ProbeRow.from_dict(d["probe"])
    if cls is TrainResult:
        d["probe"] = [ProbeRow.from_dict(r) for r in d.get("probe", [])]
        d["skipped"] = [Skipped(**s) for s in d.get("skipped", [])]
        d["panel"] = [PanelImage(**i) for i in d.get("panel", [])]
        d["style_panels"] = [[PanelImage(**i) for i in panel] for panel in d.get("style_panels", [])]
    return cls(**d)


def _to_dict(message) -> dict[str, Any]:
    d = dataclasses.asdict(message)
    # A probe row as stored and served (models/probe_row.py): the measures it has.
    if isinstance(message, TrainProgress) and message.probe is not None:
        d["probe"] = message.probe.to_dict()
    if isinstance(message, TrainResult):
        d["probe"] = [r.to_dict() for r in message.probe]
    return d


M = TypeVar("M", TrainSpec, TrainProgress, TrainResult)


def write(path: Path, message: TrainSpec | TrainProgress | TrainResult) -> None:
    """Atomically: the other side never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_to_dict(message)))
    os.replace(tmp, path)


def read(path: Path, cls: type[M]) -> M | None:
    """The message in `path`; None where there is none yet (or, for progress, none whole)."""
    try:
        return _from_dict(cls, json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# --- the warm stylise server: `python -m workers.stylize_server FOLDER/spec.json FD_IN FD_OUT` ---
# Two long-lived processes per worker process, one per lane: images, and videos (workers/
# warm_stylize.py owns them). The spec holds the device, the memory budget for loaded networks,
# the idle timeout, the precision and the video limits ({"max_frames", "max_frame_pixels",
# "pixel_floor"}: a video over them is refused before any frame is stylised). Messages are JSON
# objects, one per multiprocessing.connection frame, over two pipes (FD_IN: owner -> server,
# FD_OUT: server -> owner); stdout and stderr are the server's log (LOG in its folder).
#   server -> owner, once: {"op": "ready", "pid", "device"}
#   owner -> server: {"op": "stylize", "id", "checkpoint": path, "digest": sha256 of the file,
#                     "inputs": [paths], "out_dir": path, "options": {"style", "mix", "strength",
#                     "colors"} (models/stylize_options.py; empty: the defaults), "kind": "images"|"video"}
#   server -> owner, while a video runs: {"op": "progress", "id", "done", "total"} (frames)
#   server -> owner, per request: {"op": "done", "id", "ok": true, "outputs": [{"path", "width",
#                     "height"}], "cache": "hit"|"miss", "batch", "batch_size", "seconds",
#                     "spent": {"decode", "forward", "encode"} in seconds, "stats"}; a video's one
#                     output also has "frames", "fps", "has_audio" and "flicker": {"input", "output"}
#                  or {"op": "done", "id", "ok": false, "error": one line, "user_error": bool}
# The owner closing FD_IN means "no more requests": the server answers what it has read, then
# exits. An idle server exits by itself after the spec's idle_s.
SERVER_READY, SERVER_STYLIZE, SERVER_DONE, SERVER_PROGRESS = "ready", "stylize", "done", "progress"
SERVER_STATUS = "stylize-server-{pid}.json"  # in the work folder, named by the owning process's pid
VIDEO_SERVER_STATUS = "stylize-video-server-{pid}.json"  # the same, of its video lane (a server of its own)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: get `sig` when the parent dies, so no orphan keeps running (or keeps the GPU).
    Called first thing in a child (and, as preexec_fn, for the processes `serve` starts)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass
