"""Measuring checkerboard artifacts (Odena et al. 2016): scores and where they are."""

from models.artifacts.score import checkerboard_score, checkerboard_map, power_spectrum

__all__ = ["checkerboard_map", "checkerboard_score", "power_spectrum"]
