"""The size of a finished network's pictures (models/preview.py): the preview photo's and the
panel photos' shorter side, and the operator's one setting for both. No torch here: the
service's settings validate it without loading torch."""

from __future__ import annotations

from models.probe_row import size_setting

PREVIEW_SIZE = 256  # the preview photo's shorter side
PANEL_SIZE = 192  # the panel's: enough to see the pattern, small enough to load fast
# The operator's size for both, for `checkerless train` and every training child of the
# service (the service's setting of the same name, service/core/settings.py): a job of a few
# steps at 32 px spends seconds of CPU stylising its pictures at full size, so the test suite
# sets 64.
PREVIEW_SIZE_ENV, PREVIEW_SIZE_RANGE = "CHECKERLESS_PREVIEW_SIZE", (32, 1024)


def preview_sizes(size: int | None = None) -> tuple[int, int]:
    """(preview, panel) shorter sides: `size` for both where given, else CHECKERLESS_PREVIEW_SIZE
    where set, else PREVIEW_SIZE and PANEL_SIZE. ValueError if the variable is not a whole
    number of pixels in PREVIEW_SIZE_RANGE."""
    size = size if size is not None else size_setting(PREVIEW_SIZE_ENV, PREVIEW_SIZE_RANGE)
    return (PREVIEW_SIZE, PANEL_SIZE) if size is None else (size, size)
