"""Across variants of an experiment: difference images and spectra of their panel outputs,
computed from the stored PNGs with NumPy and matplotlib (no torch), cached in the store."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from models.artifacts.spectra import difference_spectrum, log_spectrum, plot_spectrum, radial_power_spectrum
from service.core.keys import Keys
from service.core.storage import ObjectStore

DIFF_GAIN = 4  # |A - B| x 4: small differences become visible; the factor is printed on the page


def _pixels(store: ObjectStore, key: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(store.get_bytes(key))).convert("RGB"))


def _cached(store: ObjectStore, key: str, make) -> bytes:
    if store.exists(key):
        return store.get_bytes(key)
    data = make()
    store.put_bytes(key, data, content_type="image/png")
    return data


def difference_png(store: ObjectStore, experiment_id: str, key_a: str, key_b: str, tag: str) -> bytes:
    """|A - B| per channel, times DIFF_GAIN, clipped: where two decoders disagree."""
    def make() -> bytes:
        a, b = _pixels(store, key_a).astype(int), _pixels(store, key_b).astype(int)
        diff = np.clip(np.abs(a - b) * DIFF_GAIN, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(diff).save(buf, format="PNG")
        return buf.getvalue()

    return _cached(store, Keys.experiment_cache(experiment_id, f"diff-{tag}.png"), make)


def spectrum_png(store: ObjectStore, experiment_id: str, key: str, tag: str, *, title: str,
                 key_b: str | None = None) -> bytes:
    """The log-power spectrum of one output, or (key_b given) the difference spectrum A - B,
    with the period-2 and period-4 frequencies ringed."""
    def make() -> bytes:
        a = _pixels(store, key)
        spec = log_spectrum(a) if key_b is None else difference_spectrum(a, _pixels(store, key_b))
        with tempfile.TemporaryDirectory() as d:
            path = plot_spectrum(spec, Path(d) / "s.png", title=title, diverging=key_b is not None)
            return path.read_bytes()

    return _cached(store, Keys.experiment_cache(experiment_id, f"spectrum-{tag}.png"), make)


def spectrum_profile(store: ObjectStore, experiment_id: str, key: str, tag: str) -> dict:
    """The radial power spectrum of one stored output (Durall et al. 2020, azimuthally integrated;
    models/artifacts/spectra.py): {"freqs": cycles per pixel, "power": linear}, cached in the store."""
    cache = Keys.experiment_cache(experiment_id, f"profile-{tag}.json")
    if store.exists(cache):
        return json.loads(store.get_bytes(cache))
    freqs, power = radial_power_spectrum(_pixels(store, key))
    profile = {"freqs": [round(float(f), 6) for f in freqs], "power": [float(f"{p:.6g}") for p in power]}
    store.put_bytes(cache, json.dumps(profile).encode(), content_type="application/json")
    return profile
