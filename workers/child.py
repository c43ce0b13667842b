"""The training child process: torch is imported here (and in the warm stylise server,
workers/stylize_server.py) and nowhere else in a worker. `python -m workers.child train
SPEC.json`; the files it reads and writes and its exit codes are the protocol in
service/core/protocol.py.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from service.core import protocol
from service.core.storage import StoreError


def train(spec: dict, folder: Path) -> dict | None:
    """The job's run, then its outputs; None in a DDP rank other than 0, which only trains
    (Lightning starts it again as this same command: spec["devices"] > 1)."""
    from models.checkpoint import load_network, read_checkpoint
    from models.config import TrainConfig
    from models.images import MAX_PIXELS, set_pixel_limit
    from models.preview import save_preview, stylize_panel, stylize_style_panels
    from models.training import train as run_training
    from workers.content_stream import content_set
    from workers.progress import ProgressFile, stop_requested

    set_pixel_limit(spec.get("max_pixels", MAX_PIXELS))  # the operator's, for the style and every content image
    resume, steps = spec.get("resume"), spec["config"]["steps"]
    if resume and read_checkpoint(resume)[0].step >= steps:
        # An earlier attempt finished training but not its bookkeeping: only the outputs are left.
        info, _ = read_checkpoint(resume)
        summary = {"step": info.step, "steps": steps, "stopped": False, "checkpoint": resume,
                   "losses": [], "artifacts": [], "final": {}, "skipped": [], "seconds": 0.0}
        checkpoint = Path(resume)
    else:
        content = content_set(spec["content"]) if spec.get("content") else None  # None: the built-in photographs
        result = run_training(
            None if resume else TrainConfig.from_dict(spec["config"]),
            out_dir=folder / protocol.RUN, style=spec["style"], content=content, resume=resume,
            steps=steps if resume else None, device=spec.get("device", "auto"), devices=spec.get("devices", 1),
            progress=False, should_stop=lambda: stop_requested(folder), callbacks=[ProgressFile(folder)],
            probe_every=spec.get("probe_every", 25), probe_size=spec.get("probe_size"),
        )
        if result.rank != 0:
            return None
        summary = {"step": result.step, "steps": result.steps, "stopped": result.stopped, "seconds": result.seconds,
                   "losses": result.losses, "artifacts": result.artifacts, "final": result.final,
                   "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
                   "checkpoint": str(result.checkpoint)}
        checkpoint = result.checkpoint
    if not summary["stopped"]:
        net, _ = load_network(checkpoint)
        summary["preview"] = str(save_preview(net, folder / "preview.png"))
        summary["panel"] = stylize_panel(net, folder / "panel")
        if getattr(net, "styles", 1) > 1:  # every other style on the same photos (style 0's is the panel)
            summary["style_panels"] = stylize_style_panels(net, folder / "style-panels")[1:]
        summary["exports"] = _export(net, spec.get("exports", ()), folder)
    return summary


def _store_failure(e: StoreError) -> str:
    """One line. Raised in a DataLoader worker, the message carries that worker's trace, whose
    last line is `module.Class: message`."""
    last = ([line for line in str(e).splitlines() if line.strip()] or [type(e).__name__])[-1]
    return f"the store failed: {last.removeprefix(f'{type(e).__module__}.{type(e).__name__}: ')}"[:2000]


def _export(net, formats, folder: Path) -> dict[str, str]:
    """The trained network as files for other runtimes; one that cannot be written is logged
    and left out, and the job still succeeds (its checkpoint is what matters)."""
    from models.export import SUFFIXES, export_network

    done = {}
    for fmt in formats:
        try:
            done[fmt] = str(export_network(net, folder / f"net{SUFFIXES[fmt]}", fmt))
        except Exception as e:  # noqa: BLE001 - an export is an extra; the network is trained
            print(f"export to {fmt} failed: {e}", file=sys.stderr)
    return done


def main(argv: list[str]) -> int:
    protocol.die_with_parent()
    kind, spec_path = argv
    folder = Path(spec_path).parent
    try:
        spec = json.loads(Path(spec_path).read_text())
        result = {"train": train}[kind](spec, folder)
        if result is None:  # a DDP rank other than 0: rank 0 writes the result
            return protocol.EXIT_OK
        (folder / protocol.RESULT).write_text(json.dumps(result))
        return protocol.EXIT_OK
    except StoreError as e:  # the store failed while training read from it: worth another attempt
        (folder / protocol.ERROR).write_text(_store_failure(e))
        return protocol.EXIT_RETRY
    except ValueError as e:  # bad image, checkpoint or settings: the job's own input
        (folder / protocol.ERROR).write_text(" ".join(str(e).split()))
        return protocol.EXIT_USER_ERROR
    except Exception as e:  # noqa: BLE001 - report anything, with its trace in the log
        traceback.print_exc()
        (folder / protocol.ERROR).write_text(f"{type(e).__name__}: {' '.join(str(e).split())}"[:2000])
        return protocol.EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
