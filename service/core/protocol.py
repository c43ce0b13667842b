"""The supervisor <-> child protocol: `python -m workers.child train|stylize FOLDER/spec.json`.

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
# A child killed by a signal (rc < 0: the OOM killer, a kill) is retried from its last
# checkpoint, up to the attempt limit.


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: get `sig` when the parent dies, so no orphan keeps running (or keeps the GPU).
    Called first thing in a child (and, as preexec_fn, for the processes `serve` starts)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass
