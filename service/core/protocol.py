"""The supervisor <-> child protocol: `python -m workers.child train FOLDER/spec.json`; and the
warm stylise server's messages (below).

The supervisor writes the spec; the child writes progress and its result into the same
folder and exits with one of the codes below. The supervisor asks the child to stop by
creating the STOP file (the training callback stops after the current step and keeps a
checkpoint), then SIGTERM, then SIGKILL to its process group.
"""

from __future__ import annotations

import ctypes
import signal

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
