"""`checkerless artifacts ...`: measure checkerboard artifacts from the command line.

A table for people, `--json` for machines, `--plot DIR` for pictures. Nothing here filters
or smooths a network's output: we measure artifacts, we do not hide them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Measure checkerboard artifacts: scores and 1-D spectra, overlap maps, init, gradient, GAN, DeepDream and last-layer tables.",
                  no_args_is_help=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="Write pictures (PNG) into this folder.")]
SeedsOpt = Annotated[int, typer.Option(help="Number of seeds (0, 1, ...) to average over.", min=1, max=64)]
SizeOpt = Annotated[int, typer.Option(help="Side of the probe photograph in pixels.", min=16, max=1024)]


def _photo(size: int):
    """scikit-image's astronaut at size x size: the probe photograph of every table."""
    from models.builtin_images import BUILTIN_PHOTOS
    from models.images import to_tensor

    return to_tensor(BUILTIN_PHOTOS["astronaut"]().resize((size, size)))


def _db(v: float) -> str:
    return f"{v:+.1f}"


EQ_CROP = 256  # shift equivariance runs the network 16 times: on the image's centre, at most this many pixels a side


def _equivariance(net, image) -> dict[str, float | None]:
    """EQ-T (models/artifacts/equivariance.py) of the network on the image's centre crop, dB per
    shift; None for an image too small for the comparison's margins."""
    from models.artifacts.equivariance import MARGIN, SHIFTS, shift_equivariance

    h, w = image.shape[-2:]
    if min(h, w) <= 2 * MARGIN + max(SHIFTS):
        return {f"eq_t{k}_db": None for k in SHIFTS}
    ch, cw = min(h, EQ_CROP), min(w, EQ_CROP)
    crop = image[:, (h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
    device = next(net.parameters()).device
    return {f"eq_t{k}_db": round(v, 2) for k, v in shift_equivariance(net, crop[None].to(device)).items()}


@app.command()
def score(
    images: Annotated[list[Path], typer.Argument(help="Image files (or folders) to score.")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="Score this network's outputs on the images instead, and its shift equivariance on them.")] = None,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """Checkerboard score (dB) at periods 2, 4 and 8, and the fitted high-frequency decay, of images or a network's outputs; with --checkpoint, also the network's shift equivariance (EQ-T) on each image."""
    import numpy as np

    from models.artifacts import checkerboard_score
    from models.artifacts.spectra import (DECAY_BAND, log_spectrum, plot_radial_spectra, plot_spectrum,
                                          radial_power_spectrum, spectral_decay)
    from models.images import from_tensor
    from models.stylize import load_inputs, stylize_tensor

    loaded, skipped = load_inputs(images)
    net = None
    if checkpoint is not None:
        from models.checkpoint import load_network

        net, _ = load_network(checkpoint)
    rows, radial = [], {}
    for f, image in loaded:
        eq = _equivariance(net, image) if net is not None else {}  # of the network, on the photo it is given
        if net is not None:
            image = stylize_tensor(net, image)
        pixels = np.asarray(from_tensor(image))  # what a PNG of it holds
        s = checkerboard_score(pixels)
        try:
            d = spectral_decay(pixels)
            decay = {"decay": round(d["decay"], 2), "decay_residual_db": round(d["residual_db"], 2)}
        except ValueError:  # too small for the band: the score still stands
            decay = {"decay": None, "decay_residual_db": None}
        row = {"image": str(f), **{f"period{p}_db": round(v, 2) for p, v in s.items()}, **eq, **decay}
        if as_json:
            freqs, power = radial_power_spectrum(pixels)
            row["radial_spectrum"] = {"freqs": [round(float(v), 5) for v in freqs],
                                      "power_db": [round(float(v), 2) for v in 10 * np.log10(power + 1e-12)]}
        if plot is not None:
            row["spectrum"] = str(plot_spectrum(log_spectrum(pixels), plot / f"{f.stem}-spectrum.png",
                                                title=f"{f.name}: p2 {s[2]:+.1f} dB, p4 {s[4]:+.1f} dB, p8 {s[8]:+.1f} dB"))
            radial[f.name] = radial_power_spectrum(pixels)
        rows.append(row)
    if plot is not None and radial:
        path = str(plot_radial_spectra(radial, plot / "radial-spectra.png",
                                       title="azimuthally integrated power spectra (Durall et al. 2020)"))
        for r in rows:
            r["radial_plot"] = path
    if as_json:
        print(json.dumps({"scores": rows, "decay_band": list(DECAY_BAND),
                          "skipped": [{"file": f, "reason": r} for f, r in skipped]}, indent=2))
        return
    caption = (f"p2, p4, p8: checkerboard score at periods 2, 4, 8 (higher: more artifact); HF decay: exponent "
               f"of a power law fitted to the radial spectrum over {DECAY_BAND[0]}..{DECAY_BAND[1]} cycles/pixel "
               f"(Dzanic et al. 2020)")
    if net is not None:
        caption += (f"; EQ-T: shift equivariance, PSNR of the output of the image shifted by 1, 2, 3, 4 px against "
                    f"the shifted output, on its centre {EQ_CROP} px (Karras et al. 2021; higher: steadier)")
    from rich.table import Column

    number = lambda header: Column(header, justify="right", no_wrap=True)  # noqa: E731
    table = Table(Column("image", overflow="fold"), number("p2 dB"), number("p4 dB"), number("p8 dB"),
                  *([number("EQ-T 1/2/3/4 dB")] if net else []), number("HF decay"), number("fit rms dB"),
                  title="checkerboard score" + (f" of {checkpoint}'s outputs" if checkpoint else ""), caption=caption)
    for r in rows:
        eq = [v for k, v in r.items() if k.startswith("eq_t")]
        eq_cell = ["/".join("-" if v is None else f"{v:.1f}" for v in eq)] if net else []
        table.add_row(r["image"], _db(r["period2_db"]), _db(r["period4_db"]), _db(r["period8_db"]), *eq_cell,
                      "-" if r["decay"] is None else f"{r['decay']:.2f}",
                      "-" if r["decay_residual_db"] is None else f"{r['decay_residual_db']:.1f}")
    out.print(table)


@app.command()
def spectrum(
    image: Annotated[Path, typer.Argument(help="The image (A).")],
    other: Annotated[Optional[Path], typer.Argument(help="A second image of the same size (B): plot A - B.")] = None,
    plot: Annotated[Path, typer.Option("--plot", help="Folder for the PNG.")] = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Plot the log-power spectrum of an image, or the difference spectrum of two."""
    from models.artifacts import checkerboard_score
    from models.artifacts.spectra import difference_spectrum, log_spectrum, plot_spectrum
    from models.images import load_tensor

    a = load_tensor(image)
    if other is None:
        path = plot_spectrum(log_spectrum(a), plot / f"{image.stem}-spectrum.png", title=f"{image.name}")
        result = {"image": str(image), "plot": str(path)}
    else:
        b = load_tensor(other)
        if a.shape != b.shape:
            raise ValueError(f"{image} is {a.shape[2]}x{a.shape[1]} but {other} is {b.shape[2]}x{b.shape[1]}: sizes must match")
        sa, sb = checkerboard_score(a), checkerboard_score(b)
        path = plot_spectrum(difference_spectrum(a, b), plot / f"{image.stem}-minus-{other.stem}-spectrum.png",
                             title=f"{image.name} - {other.name} (dB)", diverging=True)
        result = {"a": str(image), "b": str(other), "plot": str(path),
                  **{f"period{p}_db_difference": round(sa[p] - sb[p], 2) for p in sa}}
    print(json.dumps(result, indent=2)) if as_json else out.print(f"spectrum: {path}")


@app.command()
def overlap(
    decoder: Annotated[str, typer.Argument(help="A decoder name, or one per stage comma-separated (a stack).")],
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """How many kernel contributions each output pixel gets, computed from the layers."""
    from models.artifacts.overlap import overlap_map, overlap_period, plot_overlap

    counts = overlap_map(decoder)
    period = overlap_period(counts)
    tile = counts[: max(period, 1) * 2, : max(period, 1) * 2]
    result = {"decoder": decoder, "period": period, "flat": period == 1, "min": int(counts.min()),
              "max": int(counts.max()), "tile": tile.tolist()}
    if plot is not None:
        result["plot"] = str(plot_overlap(counts, plot / f"overlap-{decoder.replace(',', '+')}.png", title=decoder))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    out.print(f"{decoder}: " + ("flat, every output pixel gets " + str(counts.min()) if period == 1
                               else f"period {period}, {counts.min()} to {counts.max()} contributions per pixel"))
    for row in tile:
        out.print(" ".join(f"{v:3d}" for v in row))


@app.command()
def init(
    decoders: Annotated[Optional[str], typer.Option(help="Decoders or mixes separated by spaces [default: the article's cases and the rest].")] = None,
    seeds: SeedsOpt = 4,
    size: SizeOpt = 128,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """Artifacts before training: initial networks' scores over seeds, and each upsampling layer's response to a constant."""
    from models.artifacts.init import DEFAULT_MIXES, build, init_table

    mixes = decoders.split() if decoders else list(DEFAULT_MIXES)
    photo = _photo(size)
    rows = [r.as_dict() for r in init_table(photo, decoders=mixes, seeds=range(seeds))]
    if plot is not None:
        import torch

        from models.artifacts import checkerboard_score
        from models.artifacts.figures import side_by_side, stretched

        outputs = {}
        for r in rows:
            with torch.no_grad():
                outputs[r["decoder"]] = build(r["decoder"], 0)(photo[None])[0]
        figure = side_by_side({k: stretched(v) for k, v in outputs.items()}, plot / "init.png",
                              scores={k: checkerboard_score(v) for k, v in outputs.items()},
                              title=f"untrained networks (seed 0) on astronaut {size}px, contrast stretched")
        for r in rows:
            r["figure"] = str(figure)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("decoder (stage 1,2)", "period 2 dB", "period 4 dB", "constant input: period per stage",
                  title=f"untrained networks on astronaut {size}px, mean ± std over {seeds} seeds")
    for r in rows:
        table.add_row(r["decoder"], f"{r['p2_mean']:+.1f} ± {r['p2_std']:.1f}", f"{r['p4_mean']:+.1f} ± {r['p4_std']:.1f}",
                      " / ".join("flat" if p == 0 else str(p) for p in r["constant_periods"]))
    out.print(table)


@app.command()
def gradient(
    seeds: SeedsOpt = 4,
    size: SizeOpt = 128,
    loss_network: Annotated[bool, typer.Option(help="Also probe the VGG19 loss network (max vs avg pooling).")] = True,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """Artifacts in gradients: the input gradient through strided or pooled layers, scored."""
    from models.artifacts.gradient import gradient_table, probe_gradients

    photo = _photo(size)
    nets, style = {}, None
    if loss_network:
        from models.builtin_images import BUILTIN_STYLES
        from models.images import to_tensor
        from models.loss_network import build_loss_network

        nets = {"vgg19 max pool": build_loss_network("vgg19"), "vgg19 avg pool": build_loss_network("vgg19", pooling="avg")}
        style = to_tensor(BUILTIN_STYLES["ihc"]().resize((size, size)))
    rows = [r.as_dict() for r in gradient_table(photo, seeds=range(seeds), loss_networks=nets, style=style)]
    if plot is not None:
        from models.artifacts.figures import side_by_side, gradient_image

        from models.artifacts import checkerboard_score

        grads = probe_gradients(photo, loss_networks=nets, style=style)
        figure = side_by_side({k: gradient_image(g) for k, g in grads.items()}, plot / "gradient.png",
                              title="input gradients (seed 0), shown as |g| scaled to 0..255",
                              scores={k: checkerboard_score(g) for k, g in grads.items()})
        for r in rows:
            r["figure"] = str(figure)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("gradient through", "period 2 dB", "period 4 dB", "seeds",
                  title=f"checkerboard score of the input gradient at astronaut {size}px")
    for r in rows:
        table.add_row(r["probe"], f"{r['p2_mean']:+.1f} ± {r['p2_std']:.1f}", f"{r['p4_mean']:+.1f} ± {r['p4_std']:.1f}",
                      str(r["seeds"]))
    out.print(table)


def _save_pngs(images: dict[str, object], folder: Path) -> dict[str, str]:
    """Each image (3, H, W) 0..255 as a PNG named after its key, rounded to 8 bits as any PNG is:
    the files the table scored, for anyone to score with their own tool."""
    from models.images import from_tensor

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, image in images.items():
        path = folder / f"{name}.png"
        from_tensor(image).save(path)
        paths[name] = str(path)
    return paths


def _words(value: Optional[str], valid, what: str) -> list:
    """Space- or comma-separated names from an option, each checked against `valid`."""
    names = (value or "").replace(",", " ").split() or list(valid)
    for n in names:
        if n not in valid:
            raise typer.BadParameter(f"unknown {what} {n!r}; valid: {', '.join(map(str, valid))}")
    return names


@app.command()
def gan(
    generators: Annotated[Optional[str], typer.Option(help="Generators separated by spaces [default: all three].")] = None,
    steps: Annotated[int, typer.Option(help="Adversarial training steps per run (0: untrained generators only).", min=0, max=100_000)] = 200,
    batch: Annotated[int, typer.Option(help="Batch size of the training.", min=2, max=256)] = 16,
    samples: Annotated[int, typer.Option(help="Generated images scored per run.", min=1, max=256)] = 16,
    seeds: SeedsOpt = 1,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """GAN generators (deconv in the last two stages, the last, none) untrained and trained; D's first stride 2 vs 1."""
    from models.artifacts.gan import GENERATORS, init_gan_table, trained_gan_table

    names = _words(generators, GENERATORS, "generator")
    rows = [r.as_dict() for r in init_gan_table(generators=names, seeds=range(seeds), samples=samples)]
    kept: dict = {}
    if steps:
        rows += [r.as_dict() for r in trained_gan_table(generators=names, strides=(2,), steps=steps, seeds=range(seeds),
                                                          samples=samples, batch=batch, keep=kept)]
        if "resize-conv" in names:  # the discriminator claim: a generator with neither, against a stride-1 first layer
            rows += [r.as_dict() for r in trained_gan_table(generators=["resize-conv"], strides=(1,), steps=steps,
                                                              seeds=range(seeds), samples=samples, batch=batch, keep=kept)]
    if plot is not None:
        from models.artifacts.figures import side_by_side, stretched
        from models.artifacts.gan import build_generator, generate

        untrained = {n: generate(build_generator(n, 0).train(), samples, seed=1000) for n in names}
        for r in rows:
            trained_by = r["discriminator_stride"]
            run = f"{r['generator']}-untrained" if trained_by is None else f"{r['generator']}-d-stride{trained_by}-{steps}steps"
            images = untrained[r["generator"]] if trained_by is None else kept[(r["generator"], trained_by)]
            r["images"] = list(_save_pngs({f"{run}-{i}": x for i, x in enumerate(images)}, plot / "gan").values())
        side_by_side({n: stretched(untrained[n][0]) for n in names}, plot / "gan-untrained.png",
                     scores={n: {p: r[f"p{p}_mean"] for p in (2, 4)} for r in rows if r["discriminator_stride"] is None
                             for n in [r["generator"]]},
                     crop=16, title="untrained generators (seed 0, first sample), contrast stretched; scores: mean over samples")
        if kept:
            label = {k: f"{k[0]} vs D stride {k[1]}" for k in kept}
            side_by_side({label[k]: v[0] for k, v in kept.items()}, plot / "gan-trained.png", crop=16,
                         scores={label[(r["generator"], r["discriminator_stride"])]: {p: r[f"p{p}_mean"] for p in (2, 4)}
                                 for r in rows if r["discriminator_stride"] is not None},
                         title=f"after {steps} adversarial steps (first sample); scores: mean over samples")
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Column

    table = Table(Column("generator", no_wrap=True), "D", "steps", "p2 dB", "p4 dB",
                  title=f"checkerboard score of generated 64px images, mean ± std over {seeds} seed(s)",
                  caption="D: the discriminator's first stride (-: untrained); p2, p4: period 2 and 4 scores. "
                          + "; ".join(f"{n}: {','.join(GENERATORS[n])}" for n in names))
    for r in rows:
        table.add_row(r["generator"], "-" if r["discriminator_stride"] is None else str(r["discriminator_stride"]),
                      str(r["steps"]), f"{r['p2_mean']:+.1f} ± {r['p2_std']:.1f}", f"{r['p4_mean']:+.1f} ± {r['p4_std']:.1f}")
    out.print(table)


@app.command()
def deepdream(
    layer: Annotated[str, typer.Option(help="The VGG19 layer to ascend.")] = "relu4_4",
    steps: Annotated[int, typer.Option(help="Gradient ascent steps.", min=1, max=1000)] = 20,
    lr: Annotated[float, typer.Option(help="Step, in grey levels per mean gradient magnitude.", min=0.0, max=100.0)] = 2.0,
    jitter: Annotated[int, typer.Option(help="Largest random shift per step, pixels, for the jittered run.", min=1, max=64)] = 4,
    size: SizeOpt = 128,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """DeepDream through VGG19 from a photo: fixed vs jittered, max vs average pooling; scores what it added."""
    from models.artifacts.deepdream import check_layer, dream_table
    from models.loss_network import build_loss_network

    try:
        check_layer(layer)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--layer") from None
    nets = {"max": build_loss_network("vgg19"), "avg": build_loss_network("vgg19", pooling="avg")}
    photo = _photo(size)
    kept: dict = {}
    rows = [r.as_dict() for r in dream_table(photo, nets, jitters=(0, jitter), layer=layer, steps=steps, lr=lr, keep=kept)]
    if plot is not None:
        from models.artifacts.figures import side_by_side

        name = {k: f"{k[0]} pool, " + ("fixed" if k[1] == 0 else f"jitter {k[1]}") for k in kept}
        paths = _save_pngs({f"deepdream-{layer}-{k[0]}-jitter{k[1]}": v for k, v in kept.items()}, plot / "deepdream")
        photo_png = _save_pngs({f"photo-{size}px": photo.round()}, plot / "deepdream")[f"photo-{size}px"]
        for r, p in zip(rows, paths.values()):
            r["image"], r["photo"] = p, photo_png  # added = image - photo
        side_by_side({name[k]: v for k, v in kept.items()}, plot / "deepdream.png", crop=32,
                     title=f"DeepDream on {layer}, {steps} steps from astronaut {size}px; scores of the whole result")
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("pooling", "jitter", "added p2 dB", "added p4 dB", "result p2 dB", "result p4 dB",
                  title=f"DeepDream on {layer}, {steps} steps, astronaut {size}px (added: result - photo)")
    for r in rows:
        table.add_row(r["pooling"], "fixed" if r["jitter"] == 0 else f"±{r['jitter']} px", _db(r["added_p2"]),
                      _db(r["added_p4"]), _db(r["result_p2"]), _db(r["result_p4"]))
    out.print(table)


@app.command()
def lastlayer(
    seeds: SeedsOpt = 4,
    size: SizeOpt = 128,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
) -> None:
    """Does the last upsampling layer alone decide the output's high-frequency spectrum? (untrained networks)"""
    from models.artifacts.lastlayer import LAST_LAYER_MIXES, LOW_BAND, init_spectrum_table
    from models.artifacts.spectra import DECAY_BAND

    photo = _photo(size)
    rows = [r.as_dict() for r in init_spectrum_table(photo, seeds=range(seeds))]
    if plot is not None:
        import torch

        from models.artifacts.init import build
        from models.artifacts.spectra import plot_radial_spectra, radial_power_spectrum

        spectra = {f"photo (astronaut {size}px)": radial_power_spectrum(photo)}
        for d in LAST_LAYER_MIXES:
            with torch.no_grad():
                spectra[d] = radial_power_spectrum(build(d, 0)(photo[None])[0])
        path = str(plot_radial_spectra(spectra, plot / "lastlayer-init.png", title="untrained networks (seed 0) on astronaut"))
        for r in rows:
            r["plot"] = path
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Column

    table = Table(Column("decoder (stage 1,2)", no_wrap=True), "HF dB", "decay", "photo decay",
                  title=f"untrained networks on astronaut {size}px, mean over {seeds} seed(s)",
                  caption=f"HF dB: output minus photo, mean dB over {DECAY_BAND[0]}..{DECAY_BAND[1]} relative to "
                          f"{LOW_BAND[0]}..{LOW_BAND[1]} cycles/pixel (0: the tail matches); decay: fitted "
                          f"exponent of the tail")
    for r in rows:
        table.add_row(r["decoder"], f"{r['discrepancy_db']:+.1f} ± {r['discrepancy_std']:.1f}",
                      f"{r['decay']:.2f}", f"{r['photo_decay']:.2f}")
    out.print(table)
