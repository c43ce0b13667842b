"""The demo's score tables, made to be read in an 80-column terminal: short headers that never
wrap, variant names that are never cut (a long one folds onto a second line), and what the
columns mean in the caption below rather than in the headers."""

from __future__ import annotations

from rich import box
from rich.table import Table

WIDTH = 80  # the narrowest terminal the tables are made for (tests render them at it)


def _f(value: float | None, fmt: str = "+.1f") -> str:
    return "–" if value is None else format(value, fmt)


def _table(title: str, caption: str) -> Table:
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, caption_justify="left", title_justify="left",
                 pad_edge=False)


def _variant_column(table: Table, header: str = "variant") -> None:
    table.add_column(header, overflow="fold", min_width=14)


def _number_column(table: Table, header: str) -> None:
    table.add_column(header, justify="right", no_wrap=True)


def _interval(mean: float | None, low: float | None, high: float | None) -> str:
    return _f(mean) if low is None or high is None else f"{_f(mean)} ± {(high - low) / 2:.1f}"


def service_table(rows: list[dict], photo: str) -> Table:
    """`checkerless demo` through the service: per variant its scores on the photo, the probe's
    period-2 score at the first and last step, time per step and final loss; with several
    seeds, also the probe's final period-2 score over them (mean ± half its 95% interval)."""
    seeds = max((r.get("seeds", 1) for r in rows), default=1)
    caption = ("p2, p4: period-2 and period-4 scores in dB (higher: more artifact; photographs score below "
               "0); probe p2: the score on the probe panel at the first step and at the last")
    if seeds > 1:
        caption += (f" (the first seed's); over seeds: the last over all {seeds} seeds, mean ± half its 95% "
                    "interval; two variants differ only where those intervals do not overlap")
    table = _table(f"checkerboard scores of the stylised {photo}", caption)
    _variant_column(table)
    for header in ("p2 dB", "p4 dB", "probe p2 dB", *(["over seeds"] if seeds > 1 else []), "s/step", "loss"):
        _number_column(table, header)
    for r in rows:
        over = [_interval(r.get("final_p2_mean_db"), r.get("final_p2_low_db"), r.get("final_p2_high_db"))] if seeds > 1 else []
        table.add_row(r["label"], _f(r["period2_db"]), _f(r["period4_db"]),
                      f"{_f(r['init_p2_db'])} → {_f(r['final_p2_db'])}", *over, _f(r["seconds_per_step"], ".2f"),
                      _f(r["final_loss"], ".4g"))
    return table


def offline_table(rows: list[dict], photo: str) -> Table:
    """`checkerless demo --offline`: per decoder its scores on the photo, final loss and training
    time (the images' paths are printed below the table, not in it)."""
    table = _table(f"checkerboard scores of the stylised {photo}",
                   "p2, p4: period-2 and period-4 scores in dB (higher: more artifact; photographs score below 0)")
    _variant_column(table, "decoder")
    for header in ("p2 dB", "p4 dB", "final loss", "train s"):
        _number_column(table, header)
    for r in rows:
        table.add_row(r["decoder"], _f(r["period2_db"]), _f(r["period4_db"]), _f(r["final_loss"], ".4g"),
                      _f(r["seconds"], ".0f"))
    return table
