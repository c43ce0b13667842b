"""The child process that does the heavy work: torch is imported here and nowhere else in
a worker. `python -m workers.child train|stylize SPEC.json`.

It reports through files in its folder (progress.json, result.json, error.txt) and exits
0 on success, 3 for an error in the job's input (not worth retrying), 4 for anything else.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
import traceback
from pathlib import Path

USER_ERROR, OTHER_ERROR = 3, 4


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: get `sig` when the parent dies, so no orphan keeps running (or keeps the GPU)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def train(spec: dict, folder: Path) -> dict:
    from models.config import TrainConfig
    from models.checkpoint import load_network
    from models.data import BUILTIN_PHOTOS
    from models.images import resize_shorter, save_png, to_tensor
    from models.stylize import stylize_tensor
    from models.training import train as run_training
    from workers.progress import ProgressFile, cancel_requested

    run_dir = folder / "run"
    result = run_training(
        None if spec.get("resume") else TrainConfig.from_dict(spec["config"]),
        out_dir=run_dir, style=spec["style"], content=spec.get("content"), resume=spec.get("resume"),
        steps=spec["config"]["steps"] if spec.get("resume") else None, device=spec.get("device", "auto"),
        progress=False, should_stop=lambda: cancel_requested(folder), callbacks=[ProgressFile(folder)],
        probe_every=spec.get("probe_every", 25),
    )
    summary = {"step": result.step, "steps": result.steps, "stopped": result.stopped, "seconds": result.seconds,
               "losses": result.losses, "artifacts": result.artifacts, "final": result.final,
               "skipped": [{"file": f, "reason": r} for f, r in result.skipped], "checkpoint": str(result.checkpoint)}
    if not result.stopped:
        net, _ = load_network(result.checkpoint)
        photo = to_tensor(resize_shorter(BUILTIN_PHOTOS["chelsea"](), 256))
        summary["preview"] = str(save_png(stylize_tensor(net, photo), folder / "preview.png"))
        summary["panel"] = stylize_panel(net, folder / "panel")
    return summary


PANEL = ("chelsea", "astronaut", "coffee")  # the fixed photos every trained network is shown on
PANEL_SIZE = 192  # shorter side: enough to see the pattern, small enough to load fast


def stylize_panel(net, folder: Path) -> list[dict]:
    """The network's outputs on the panel, scored on the PNG's own pixels."""
    import numpy as np

    from models.artifacts import checkerboard_score
    from models.data import BUILTIN_PHOTOS
    from models.images import from_tensor, resize_shorter, save_png, to_tensor
    from models.stylize import stylize_tensor

    items = []
    for name in PANEL:
        out = stylize_tensor(net, to_tensor(resize_shorter(BUILTIN_PHOTOS[name](), PANEL_SIZE)))
        path = save_png(out, folder / f"{name}.png")
        s = checkerboard_score(np.asarray(from_tensor(out)))
        items.append({"name": name, "path": str(path), "width": out.shape[2], "height": out.shape[1],
                      "period2_db": s[2], "period4_db": s[4]})
    return items


def stylize(spec: dict, folder: Path) -> dict:
    from models.checkpoint import load_network
    from models.images import load_tensor, save_png
    from models.stylize import stylize_tensor

    net, _ = load_network(spec["checkpoint"])
    outputs = []
    for i, path in enumerate(spec["inputs"]):
        image = load_tensor(path)
        outputs.append({"path": str(save_png(stylize_tensor(net, image), folder / f"output-{i:03d}.png")),
                        "width": image.shape[2], "height": image.shape[1]})
    return {"outputs": outputs}


def main(argv: list[str]) -> int:
    die_with_parent()
    kind, spec_path = argv
    folder = Path(spec_path).parent
    try:
        spec = json.loads(Path(spec_path).read_text())
        result = {"train": train, "stylize": stylize}[kind](spec, folder)
        (folder / "result.json").write_text(json.dumps(result))
        return 0
    except ValueError as e:  # bad image, checkpoint or settings: the job's own input
        (folder / "error.txt").write_text(" ".join(str(e).split()))
        return USER_ERROR
    except Exception as e:  # noqa: BLE001 - report anything, with its trace in the log
        traceback.print_exc()
        (folder / "error.txt").write_text(f"{type(e).__name__}: {' '.join(str(e).split())}"[:2000])
        return OTHER_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
