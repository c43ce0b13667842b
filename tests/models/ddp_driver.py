"""A training run as a command of its own, for the DDP tests: Lightning's "ddp" strategy starts
the running command again as the extra ranks, so a run with devices > 1 cannot start inside
pytest. `python -m tests.models.ddp_driver ARGS.json`; every rank writes `rank-<r>.json` (its
step, whether it stopped, its loss rows) into the run folder.

ARGS: out, devices, and either config (TrainConfig fields) or resume (a checkpoint) with steps;
stop_file: rank 0 alone stops once it exists (as one terminal's Ctrl-C may reach one process);
keep: copy each checkpoint as step-<n>.ckpt; progress: write progress.json (workers/progress.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path


def main(args_path: str) -> None:
    from models.config import TrainConfig
    from models.training import train
    from workers.progress import ProgressFile

    args = json.loads(Path(args_path).read_text())
    out = Path(args["out"])
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning in the ranks it starts
    stop_file = Path(args["stop_file"]) if args.get("stop_file") else None

    def keep(path: Path, step: int) -> None:
        if args.get("keep"):
            shutil.copy(path, out / f"step-{step}.ckpt")

    result = train(
        TrainConfig.from_dict(args["config"]) if "config" in args else None,
        out_dir=out, style="ihc", resume=args.get("resume"), steps=args.get("steps"), device="cpu",
        devices=args["devices"], compile="off", progress=False, probe_every=10_000, on_checkpoint=keep,
        should_stop=lambda: stop_file is not None and rank == 0 and stop_file.exists(),
        callbacks=[ProgressFile(out)] if args.get("progress") else [],
    )
    (out / f"rank-{result.rank}.json").write_text(json.dumps(
        {"rank": result.rank, "step": result.step, "stopped": result.stopped, "losses": result.losses}))


if __name__ == "__main__":
    main(sys.argv[1])
