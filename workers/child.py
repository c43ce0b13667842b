"""The training child process: torch is imported here (and in the warm stylise server,
workers/stylize_server.py) and nowhere else in a worker. `python -m workers.child train
SPEC.json`; the files it reads and writes and its exit codes are the protocol in
service/core/protocol.py.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from pathlib import Path

from service.core import protocol
from service.core.storage import StoreError


def train(spec: protocol.TrainSpec, folder: Path) -> protocol.TrainResult | None:
    """The job's run, then its outputs; None in a DDP rank other than 0, which only trains
    (Lightning starts it again as this same command: spec.devices > 1)."""
    from models.checkpoint import load_network, read_checkpoint
    from models.config import TrainConfig
    from models.images import set_pixel_limit
    from models.preview import save_preview, stylize_panel, stylize_style_panels
    from models.training import train as run_training
    from workers.content_stream import content_set
    from workers.progress import ProgressFile, stop_requested

    set_pixel_limit(spec.max_pixels)  # the operator's, for the style and every content image
    steps = spec.config["steps"]
    if spec.resume and read_checkpoint(spec.resume)[0].step >= steps:
        # An earlier attempt finished training but not its bookkeeping: only the outputs are left.
        # No step runs, so no callback writes the progress that tells the record where this
        # attempt started (its resumed_from_step); written here. Empty fields keep the record's.
        info, _ = read_checkpoint(spec.resume)
        protocol.write(folder / protocol.PROGRESS, protocol.TrainProgress(
            step=info.step, steps=steps, start_step=info.step, losses={}, probe=None, seconds_per_step=None,
            precision=""))
        result = protocol.TrainResult(step=info.step, steps=steps, stopped=False, seconds=0.0, checkpoint=spec.resume)
    else:
        content = content_set(spec.content) if spec.content else None  # None: the built-in photographs
        run = run_training(
            None if spec.resume else TrainConfig.from_dict(spec.config),
            out_dir=folder / protocol.RUN, style=spec.style, content=content, resume=spec.resume,
            steps=steps if spec.resume else None, device=spec.device, devices=spec.devices,
            progress=False, should_stop=lambda: stop_requested(folder), callbacks=[ProgressFile(folder)],
            probe_size=spec.probe_size,
        )
        if run.rank != 0:
            return None
        result = protocol.TrainResult(
            step=run.step, steps=run.steps, stopped=run.stopped, seconds=run.seconds, checkpoint=str(run.checkpoint),
            losses=run.losses, probe=run.artifacts, skipped=[protocol.Skipped(name, why) for name, why in run.skipped],
            timing=run.timing)
    if result.stopped:
        return result
    net, _ = load_network(result.checkpoint)
    size = spec.preview_size
    panels = (stylize_style_panels(net, folder / "style-panels", size=size)[1:]  # style 0's is the panel
              if getattr(net, "styles", 1) > 1 else [])
    return dataclasses.replace(
        result, preview=str(save_preview(net, folder / "preview.png", size=size)),
        panel=[protocol.PanelImage(**item) for item in stylize_panel(net, folder / "panel", size=size)],
        style_panels=[[protocol.PanelImage(**item) for item in panel] for panel in panels],
        exports=_export(net, spec.exports, folder))


def preload() -> None:
    """What every run uses, imported and read once, for the warm start (workers/fork_server.py):
    the training code and the built-in images. No tensor is computed: torch's thread pool,
    once started, deadlocks a forked child. The exports' modules are left to the jobs that
    export."""
    import models.checkpoint
    import models.config
    import models.images
    import models.preview
    import models.training  # noqa: F401 - imported to be forked with
    import workers.content_stream
    import workers.progress  # noqa: F401 - imported to be forked with
    from models.builtin_images import BUILTIN_PHOTOS, BUILTIN_STYLES

    for load in (*BUILTIN_PHOTOS.values(), *BUILTIN_STYLES.values()):
        load()


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
        spec = protocol.read(Path(spec_path), protocol.TrainSpec)
        result = {"train": train}[kind](spec, folder)
        if result is None:  # a DDP rank other than 0: rank 0 writes the result
            return protocol.EXIT_OK
        protocol.write(folder / protocol.RESULT, result)
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
