"""The options of stylising, checked in one place: which style of a several-style network (an
index, or a mix of weights over its styles), the strength, and what happens to the colours.

No torch here: the API validates a request's form fields with it before anything loads, and
the CLI and the worker build the same `StylizeOptions`. Bad values raise ValueError with a
message that says what to fix.

- strength s in [0, 1]: out = photo + s * (stylised - photo), in pixel space (docs/stylising.md
  says why, and shows the style distance falling as s goes to 0). 1 is the network's output,
  0 the photo itself.
- colors: "style" keeps the network's colours; "luminance" keeps the photo's chroma and takes
  only the luminance from the network; "histogram" moves the output's colour mean and
  covariance to the photo's (Gatys et al. 2016, "Preserving Color in Neural Artistic Style
  Transfer"; models/colour.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.config import MAX_STYLES

COLOR_MODES = ("style", "luminance", "histogram")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")  # what a stylised video is written as: H.264 video, AAC audio
DEFAULT_COLORS = "style"
STRENGTH_RANGE = (0.0, 1.0)
DEFAULT_STRENGTH = 1.0


def check_strength(value: object) -> float:
    lo, hi = STRENGTH_RANGE
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a number between {lo:g} and {hi:g}, got {value!r}") from None
    if isinstance(value, bool) or not (lo <= s <= hi):  # NaN fails the comparison too
        raise ValueError(f"strength must be a number between {lo:g} and {hi:g}, got {value!r}")
    return s


def check_colors(value: object) -> str:
    if value not in COLOR_MODES:
        raise ValueError(f"unknown colors {value!r}; valid: {', '.join(COLOR_MODES)}")
    return value  # type: ignore[return-value]


def check_style_index(value: object) -> int:
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            raise ValueError(f"style must be a style's index (a whole number from 0), got {value!r}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_STYLES:
        raise ValueError(f"style must be a style's index, a whole number from 0 to {MAX_STYLES - 1}, got {value!r}")
    return value


def parse_mix(value: str | Sequence[float]) -> tuple[float, ...]:
    """"0.5,0.5" (or a list of numbers) -> the weights, one per style, first style first:
    non-negative, finite, at least one above 0, at most MAX_STYLES of them. They need not sum
    to 1 (the network normalises them); they must number exactly its styles, which only the
    network knows (its select_style checks that)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if not value.strip() or any(not p for p in parts):
            raise ValueError(f"mix must be weights separated by commas, one per style (like 0.5,0.5), got {value!r}")
        weights = []
        for p in parts:
            try:
                weights.append(float(p))
            except ValueError:
                raise ValueError(f"mix: {p!r} is not a number (give weights like 0.5,0.5)") from None
    else:
        try:
            weights = [float(w) for w in value]
        except (TypeError, ValueError):
            raise ValueError(f"mix must be a list of numbers, one per style, got {value!r}") from None
    if not weights:
        raise ValueError("mix needs at least one weight")
    if len(weights) > MAX_STYLES:
        raise ValueError(f"mix has {len(weights)} weights; a network has at most {MAX_STYLES} styles")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"mix weights must be finite numbers >= 0, got {value!r}")
    if sum(weights) <= 0:
        raise ValueError("mix weights cannot all be 0")
    return tuple(weights)


@dataclass(frozen=True)
class StylizeOptions:
    """What to stylise with. `style` (an index) and `mix` (weights) are exclusive; neither means
    the network's default style (its first)."""

    style: int | None = None
    mix: tuple[float, ...] | None = None
    strength: float = DEFAULT_STRENGTH
    colors: str = DEFAULT_COLORS

    def __post_init__(self) -> None:
        if self.style is not None and self.mix is not None:
            raise ValueError("give a style index or a mix of styles, not both")
        if self.style is not None:
            object.__setattr__(self, "style", check_style_index(self.style))
        if self.mix is not None:
            object.__setattr__(self, "mix", parse_mix(self.mix))
        object.__setattr__(self, "strength", check_strength(self.strength))
        object.__setattr__(self, "colors", check_colors(self.colors))

    @property
    def selection(self) -> int | list[float] | None:
        """What TransformerNet.select_style takes: an index, weights, or None (the default)."""
        return self.style if self.mix is None else list(self.mix)

    @classmethod
    def parse(cls, *, style: object = None, mix: object = None, strength: object = None,
              colors: object = None) -> StylizeOptions:
        """From form fields or CLI strings; empty or missing fields mean the defaults."""
        blank = lambda v: v is None or (isinstance(v, str) and not v.strip())  # noqa: E731
        return cls(style=None if blank(style) else check_style_index(style),
                   mix=None if blank(mix) else parse_mix(mix),  # type: ignore[arg-type]
                   strength=DEFAULT_STRENGTH if blank(strength) else check_strength(strength),
                   colors=DEFAULT_COLORS if blank(colors) else check_colors(colors.strip() if isinstance(colors, str) else colors))

    def to_dict(self) -> dict:
        return {"style": self.style, "mix": None if self.mix is None else list(self.mix),
                "strength": self.strength, "colors": self.colors}
