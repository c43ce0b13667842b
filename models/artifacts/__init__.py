"""Measuring checkerboard artifacts (Odena et al. 2016): scores and where they are, and the
literature's 1-D spectral measures (Durall et al. 2020, Dzanic et al. 2020)."""

from models.artifacts.score import checkerboard_map, checkerboard_score, checkerboard_scores, power_spectrum
from models.artifacts.spectra import radial_power_spectrum, spectral_decay

__all__ = ["checkerboard_map", "checkerboard_score", "checkerboard_scores", "power_spectrum",
           "radial_power_spectrum", "spectral_decay"]
