"""checkerless models: pure PyTorch and Lightning, no service imports.

`models.TransformerNet`, `models.DECODERS` and `models.parse_decoder` load lazily, so that
torch-free modules (vocabulary, config) can be imported by the API without PyTorch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DECODERS", "TransformerNet", "parse_decoder"]


def __getattr__(name: str) -> Any:
    if name == "TransformerNet":
        from models.transformer_net import TransformerNet

        return TransformerNet
    if name == "DECODERS":
        from models.blocks import DECODERS

        return DECODERS
    if name == "parse_decoder":
        from models.vocabulary import parse_decoder

        return parse_decoder
    raise AttributeError(f"module 'models' has no attribute {name!r}")
