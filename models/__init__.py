"""checkerless models: pure PyTorch and Lightning, no service imports."""

from models.blocks import DECODERS, parse_decoder
from models.transformer_net import TransformerNet

__all__ = ["DECODERS", "TransformerNet", "parse_decoder"]
