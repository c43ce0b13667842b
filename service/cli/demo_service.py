"""`checkerless demo` through a service: the decoders' experiment on an embedded (or given) API, its
progress shown per variant, and the table of its rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service.cli.demo_table import service_table

from service.cli.api_client import CliError
from service.cli.launch import _free_port, own_service_env, wait_ready

out = Console()
err = Console(stderr=True)


def demo_through_service(*, config, style: str, variants: list[str], photo: str, port: int, data_dir: Path,
                         exit_after: bool, as_json: bool, seeds: int = 1) -> None:
    """Start the embedded server, run the experiment through its API (so the page shows it),
    print the scores, print the page's URL and keep serving until Ctrl-C (or --exit). With
    seeds > 1 each variant trains once per seed and the table gives the probe's final period-2
    score as a mean and 95% interval over them."""
    import io

    from checkerless_client import Client

    from service.core.builtin_styles import BUILTIN_STYLES, PREFIX

    if len(set(variants)) < 2:
        raise ValueError("a comparison needs at least two different decoders")
    if not _free_port("127.0.0.1", port):
        raise ValueError(f"port {port} is in use; pick another with --port")
    upload = None  # a style file (a file wins over a built-in of the same name, as in `train`)
    if Path(style).exists() or style not in BUILTIN_STYLES:
        from models.builtin_images import load_style

        name, image = load_style(style)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        upload = (f"{Path(name).stem}.png", buf.getvalue())
    from service.core.protocol import die_with_parent

    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
                              env=own_service_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops the server too (via finally)
    url = f"http://127.0.0.1:{port}"
    try:
        from service.core.auth import read_local_key
        from service.core.settings import Settings

        key_file = Settings(data_dir=data_dir).local_key_file
        with Client(url) as probe:
            if not wait_ready(probe, server, deadline=time.monotonic() + 120):
                raise CliError(f"the embedded server did not start (see `checkerless serve --port {port}`)")
        # The key the server made on its first start.
        with Client(url, read_local_key(key_file)) as client:
            style_ref = f"{PREFIX}{style}" if upload is None else client.upload_style(upload)
            exp = client.create_experiment(style_ref, variants, seeds=seeds, size=config.size, steps=config.steps,
                                           batch=config.batch, seed=config.seed, style_weight=config.style_weight)
            page = f"{url}/ui/experiment.html?id={exp.id}"
            if not as_json:
                out.print(f"training {' vs '.join(variants)}{f', {seeds} seeds each' if seeds > 1 else ''}; watch it live at\n  [bold]{page}[/]\n"
                          f"(the page asks once for the API key in {key_file.resolve()})", soft_wrap=True)
            exp = _watch_experiment(client, exp.id, quiet=as_json).to_json()
        rows = demo_rows(exp, photo)
        if as_json:
            print(json.dumps({"experiment": exp["id"], "state": exp["state"], "url": page, "variants": rows}, indent=2),
                  flush=True)  # a reader of the pipe has it now: the server goes on serving
        else:
            out.print(service_table(rows, photo))
            out.print(f"the stylised photos beside the style, at pixel zoom:\n  [bold]{page}[/]", soft_wrap=True)
        if exp["state"] != "succeeded":
            raise CliError(f"the experiment {exp['state']}: " + "; ".join(r["error"] or "" for r in rows))
        if not exit_after:
            err.print("serving; Ctrl-C to stop")  # stderr: stdout holds the scores alone (--json)
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def demo_rows(exp: dict, photo: str) -> list[dict]:
    """Per variant of the demo's experiment: its first seed's scores on `photo` (else its first
    panel photo), the probe's period-2 score at the first and last step, time per step, final
    loss; and over every seed, the probe's final period-2 score's mean and 95% interval (the
    API's summary; no interval with one seed)."""
    rows = []
    for v in exp["variants"]:
        p = next((x for x in v["panel"] if x["name"] == photo), v["panel"][0] if v["panel"] else {})
        over_seeds = (v.get("summary") or {}).get("artifact_p2") or {}
        errors = [r["error"] for r in v.get("runs", []) if r.get("error")] or [v["error"]]
        rows.append({"decoder": v["decoder"], "label": v.get("label", v["decoder"]), "state": v["state"],
                     "photo": p.get("name"), "period2_db": p.get("period2_db"), "period4_db": p.get("period4_db"),
                     "init_p2_db": (v["scores"]["init"] or {}).get("artifact_p2"),
                     "final_p2_db": (v["scores"]["final"] or {}).get("artifact_p2"),
                     "seeds": len(v.get("runs") or [None]), "final_p2_mean_db": over_seeds.get("mean"),
                     "final_p2_low_db": over_seeds.get("low"), "final_p2_high_db": over_seeds.get("high"),
                     "seconds_per_step": v["seconds_per_step"], "final_loss": v["losses"].get("loss"),
                     "error": errors[0]})
    return rows


def _watch_experiment(client, experiment_id: str, *, quiet: bool):
    """A bar per variant until no job of the experiment is queued or running: the final Experiment."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=err, disable=quiet) as bar:
        tasks = {}

        def show(exp) -> None:
            for v in exp.variants:
                runs = v.runs  # every seed's job
                if v.label not in tasks:
                    tasks[v.label] = bar.add_task(v.label, total=sum(r.steps for r in runs), info="")
                p2 = v.artifacts.get("artifact_p2")
                bar.update(tasks[v.label], completed=sum(r.step for r in runs),
                           info=f"{v.state}" + (f" loss {v.losses['loss']:.3g}" if v.losses else "")
                           + (f" p2 {p2:+.1f} dB" if p2 is not None else ""))

        return client.wait_experiment(experiment_id, poll_s=1, progress=show)
