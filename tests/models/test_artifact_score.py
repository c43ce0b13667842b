import numpy as np
import pytest
import skimage.data
import torch

from models import TransformerNet
from models.artifacts import checkerboard_map, checkerboard_score


def checkerboard(period: int, n: int = 96) -> np.ndarray:
    i, j = np.indices((n, n))
    return ((i // (period // 2) + j // (period // 2)) % 2) * 255.0


@pytest.mark.parametrize("period, other", [(2, 4), (4, 2)])
def test_a_synthetic_checkerboard_scores_high_at_its_own_period_only(period, other):
    photo = skimage.data.camera()[:96, :96].astype(float)
    s = checkerboard_score(0.9 * photo + 0.1 * checkerboard(period))
    assert s[period] > 10
    assert s[other] < 0


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera"])
def test_photographs_score_low(name):
    s = checkerboard_score(getattr(skimage.data, name)())
    assert s[2] < -5 and s[4] < -3, s


def test_deconv_at_init_scores_high_and_resize_nearest_low():
    x = torch.tensor(skimage.data.astronaut()[:96, :96]).permute(2, 0, 1).float()[None]
    scores = {}
    for decoder in ["deconv", "resize-nearest"]:
        torch.manual_seed(0)
        with torch.no_grad():
            scores[decoder] = checkerboard_score(TransformerNet(decoder=decoder)(x)[0])
    assert scores["deconv"][2] > 10 and scores["deconv"][4] > 5
    assert scores["resize-nearest"][2] < 0 and scores["resize-nearest"][4] < 0


def test_the_map_finds_where_the_pattern_is():
    img = skimage.data.camera()[:64, :64].astype(float)
    img[32:48, 16:32] += 40 * checkerboard(2, 16)
    m = checkerboard_map(img, block=16)
    assert np.unravel_index(np.argmax(m), m.shape) == (2, 1)


def test_a_batch_is_scored_per_image_and_on_average():
    from models.artifacts import checkerboard_scores

    photo = skimage.data.camera()[:64, :64].astype(float)
    batch = np.stack([photo[None], (0.9 * photo + 0.1 * checkerboard(2, 64))[None]])
    s = checkerboard_scores(batch)
    assert len(s["images"]) == 2 and s["images"][1][2] > s["images"][0][2] + 20
    assert s["mean"][2] == pytest.approx((s["images"][0][2] + s["images"][1][2]) / 2)
