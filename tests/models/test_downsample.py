"""The encoder's selectable downsampling and the loss network's pooling (issue 13, "Beyond
the article"): names, validation, and what old configs mean."""

import pytest

from models.config import DEFAULTS, MAX_STYLES, TrainConfig
from models.vocabulary import DOWNSAMPLE_INFO, LOSS_POOLINGS, downsample_label, parse_downsample


def test_downsample_names_and_mixes_parse():
    assert list(DOWNSAMPLE_INFO) == ["stride-conv", "blur-stride", "resize-down"]
    assert parse_downsample("blur-stride") == ("blur-stride", "blur-stride")
    assert parse_downsample("stride-conv, resize-down") == ("stride-conv", "resize-down")
    assert parse_downsample(["resize-down"]) == ("resize-down", "resize-down")
    assert downsample_label(("blur-stride", "blur-stride")) == "blur-stride"
    assert downsample_label(("stride-conv", "resize-down")) == "stride-conv,resize-down"


def test_bad_downsample_names_say_what_is_valid():
    with pytest.raises(ValueError, match="unknown downsample 'maxpool'; valid names: stride-conv, blur-stride"):
        parse_downsample("maxpool")
    with pytest.raises(ValueError, match="downsample needs one name or 2"):
        parse_downsample("stride-conv,stride-conv,stride-conv")


def test_config_fields_default_canonicalise_and_validate():
    assert (DEFAULTS.downsample, DEFAULTS.loss_pooling, DEFAULTS.stability_weight) == ("stride-conv", "max", 0.0)
    assert LOSS_POOLINGS == ("max", "avg") and MAX_STYLES == 32
    cfg = TrainConfig(downsample="blur-stride,blur-stride", loss_pooling="avg", stability_weight=2)
    assert cfg.downsample == "blur-stride" and cfg.downsample_stages == ("blur-stride",) * 2
    assert cfg.stability_weight == 2.0 and isinstance(cfg.stability_weight, float)
    with pytest.raises(ValueError, match="unknown loss pooling 'mean'; valid: max, avg"):
        TrainConfig(loss_pooling="mean")
    with pytest.raises(ValueError, match="stability_weight must be a number between 0"):
        TrainConfig(stability_weight=-1.0)
    with pytest.raises(ValueError, match="stability_weight"):
        TrainConfig(stability_weight=float("nan"))
    with pytest.raises(ValueError, match="unknown downsample"):
        TrainConfig(downsample="nope")


def test_a_config_written_before_these_fields_loads_with_the_defaults():
    old = {k: v for k, v in TrainConfig(size=32).to_dict().items()
           if k not in ("downsample", "loss_pooling", "stability_weight")}
    cfg = TrainConfig.from_dict(old)
    assert (cfg.downsample, cfg.loss_pooling, cfg.stability_weight) == ("stride-conv", "max", 0.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
