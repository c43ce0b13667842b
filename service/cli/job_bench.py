"""`checkerless bench --job-path`: a training job through the service against its own bare step.

It starts its own embedded server (as `checkerless stylize-bench` does: a fresh data folder,
loopback), and once the server is up and idle measures, in this process, the bare training
step of the network the job trains (models/bench.py `module_step`: the job's losses and
optimizer, without Lightning, the probe, checkpoints or data loading) at the job's size, batch
and precision. Then it submits the job with the built-in style and photos, waits for it, and
reads from its report where the job's steps spent their time (models/callbacks.py PhaseTimer:
the step itself, the probe, checkpoints, the rest of the loop), over every step after the first
`PhaseTimer.skip` (warm-up, left out of the bare step's median too). Images/s of each, and the
job's as a share of the bare step's."""

from __future__ import annotations

import json
import statistics
import time

from rich.console import Console
from rich.table import Table

out = Console()
STYLE = "brick"  # the built-in style both train on
PHASES = {"step": "the training step itself (forward, backward, optimizer) under Lightning",
          "probe": "the artifact probe (models/callbacks.py ArtifactProbe)",
          "checkpoint": "the periodic checkpoints, written and handed to the worker",
          "other": "the rest of the loop: the next batch, logging, the progress file"}


def bare_step_s(*, size: int, batch: int, precision: str, device: str, compiled: bool, repeats: int,
                warmup: int = 2) -> list[float]:
    """Seconds of each of `repeats` bare steps (after `warmup`, which compiles a compiled one) of
    the default network at `size` and `batch`, on `device` ("cpu" or "cuda"), in `precision`
    ("32" or "bf16")."""
    import torch

    from models.bench import module_step
    from models.builtin_images import load_style
    from models.config import TrainConfig
    from models.lightning_module import encode_png
    from models.loss_network import build_loss_network

    g = torch.Generator().manual_seed(0)
    content = (torch.rand(batch, 3, size, size, generator=g) * 255).to(device)
    step = module_step(TrainConfig(size=size, batch=batch), encode_png(load_style(STYLE)[1]), content,
                       build_loss_network("vgg19").to(device), bf16=precision == "bf16",
                       use_compile=compiled)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    return times


def job_path(*, size: int, batch: int, steps: int, precision: str, repeats: int, timeout: float = 4 * 3600) -> dict:
    """Runs both (see the module's docstring); `timeout` bounds the whole, a server that never
    starts or a job that never ends included."""
    from checkerless_client import Client, RetryPolicy

    from service.cli.launch import embedded_server, wait_ready

    deadline = time.monotonic() + timeout
    # The job trains where the worker finds it best (a GPU if any), in the precision `precision`
    # resolves to there and compiled where a run of its length is (models/training.py Speed);
    # the bare step runs the same.
    from models.hardware import resolve_accelerator
    from models.training import Speed

    accelerator = resolve_accelerator("auto")
    speed = Speed.plan(accelerator, steps_left=steps, precision=precision)
    resolved = "bf16" if speed.precision == "bf16-mixed" else "32"
    with embedded_server(prefix="checkerless-jobbench-") as (url, data, server):
        with Client(url) as probe:
            if not wait_ready(probe, server, deadline=deadline):
                raise ValueError("the embedded server did not start")
        bare = bare_step_s(size=size, batch=batch, precision=resolved, repeats=repeats, compiled=speed.compiled,
                           device="cuda" if accelerator == "gpu" else "cpu")  # the service idle beside it
        with Client(url, (data / "local-key").read_text().strip(), retry=RetryPolicy(attempts=1)) as client:
            submitted = time.monotonic()
            job = client.submit(f"builtin:{STYLE}", steps=steps, size=size, batch=batch, precision=precision).id
            while (state := client.job(job).state) not in ("succeeded", "failed", "cancelled"):
                if time.monotonic() > deadline:
                    client.cancel(job)
                    raise ValueError(f"job {job} did not finish within {timeout:.0f} s")
                time.sleep(0.5)
            wall = time.monotonic() - submitted
            record = client.job(job)
            if state != "succeeded":
                raise ValueError(f"the job {state}: {record.error}")
            report = json.loads(client.download(job, "report"))
    timing = report.get("timing")
    if not timing:
        raise ValueError(f"the job's report has no step timing: {steps} steps are too few to count (take more)")
    return {"size": size, "batch": batch, "steps": steps, "precision": resolved, "compiled": speed.compiled,
            "bare_step_s": statistics.median(bare),
            "bare_repeats": repeats, "timing": timing, "job_wall_s": wall, "fit_s": report["seconds"],
            "trained_precision": record.trained_precision}


def rows(result: dict) -> list[dict]:
    """The table's rows: images/s of the bare step and the job, then the job's time per step by phase."""
    t, batch, bare = result["timing"], result["batch"], result["bare_step_s"]
    job_step = t["loop_s"] / t["steps"]
    table = [{"measure": "bare step", "s_per_step": bare, "images_s": batch / bare, "of_bare": 1.0},
             {"measure": "job", "s_per_step": job_step, "images_s": batch / job_step, "of_bare": bare / job_step}]
    for name in PHASES:
        table.append({"measure": f"job: {name}", "s_per_step": t[f"{name}_s"] / t["steps"],
                      "share": t[f"{name}_s"] / t["loop_s"]})
    return table


def print_job_path(result: dict, where: str, as_json: bool) -> None:
    table_rows = rows(result)
    if as_json:
        print(json.dumps({"device": where, **result, "rows": table_rows}, indent=2))
        return
    t = result["timing"]
    table = Table("measure", "s per step", "images/s", "x bare", "of the job",
                  title=f"{where}; {'fp32' if result['precision'] == '32' else 'bf16 autocast'}"
                        f"{', compiled' if result['compiled'] else ''}; batch "
                        f"{result['batch']} at {result['size']}px: a job of {result['steps']} steps through the "
                        f"service (its last {t['steps']}) against its bare step (median of {result['bare_repeats']})",
                  title_justify="left")
    for r in table_rows:
        table.add_row(r["measure"], f"{r['s_per_step']:.3f}", f"{r['images_s']:.2f}" if "images_s" in r else "",
                      f"{r['of_bare']:.2f}" if "of_bare" in r else "", f"{r['share']:.0%}" if "share" in r else "")
    out.print(table)
    for name, what in PHASES.items():
        out.print(f"job: {name}: {what}", highlight=False)
    out.print(f"The whole job, submitted to succeeded: {result['job_wall_s']:.1f} s, of which {result['fit_s']:.1f} s in "
              "Lightning's fit (the rest: queueing, the child's start, the final checkpoint, preview and upload).",
              highlight=False)
