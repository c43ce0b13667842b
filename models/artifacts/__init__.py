"""Measuring checkerboard artifacts (Odena et al. 2016): scores and where they are."""

from models.artifacts.score import checkerboard_map, checkerboard_score, checkerboard_scores, power_spectrum

__all__ = ["checkerboard_map", "checkerboard_score", "checkerboard_scores", "power_spectrum"]
