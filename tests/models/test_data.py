import itertools

import pytest
import torch

from models.data import ContentSet, CropStream
from models.builtin_images import load_style
from models.images import ImageError
from torch.utils.data import DataLoader


def batches(stream, n):
    return list(itertools.islice(iter(stream), n))


def test_a_folder_is_searched_recursively_and_bad_files_are_skipped_and_counted(photo_dir):
    (photo_dir / "notes.txt").write_text("not an image")
    (photo_dir / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    content = ContentSet.from_folder(photo_dir)
    assert sorted(s.name for s in content.sources) == ["astronaut.png", "coffee.jpg", "sub/chelsea.png"]
    assert sorted(name for name, _ in content.skipped) == ["notes.txt", "sub/broken.png"]
    assert all(reason for _, reason in content.skipped)


def test_a_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ImageError, match="no readable images"):
        ContentSet.from_folder(tmp_path)
    with pytest.raises(ImageError, match="no such folder"):
        ContentSet.from_folder(tmp_path / "missing")


def test_the_builtin_set_is_photographs_shipped_with_scikit_image():
    content = ContentSet.builtin()
    assert len(content.sources) >= 5
    img = content.sources[0].load()
    assert img.mode == "RGB" and min(img.size) >= 256


def test_crops_have_the_size_asked_even_from_small_images(photo_dir):
    stream = CropStream(ContentSet.from_folder(photo_dir), size=72, batch=3, seed=0)
    b = batches(stream, 2)
    assert b[0].shape == (3, 3, 72, 72) and b[0].dtype == torch.float32
    assert 0 <= b[0].min() and b[0].max() <= 255


def test_data_order_is_a_function_of_seed_and_batch_index():
    content = ContentSet.builtin()
    a = batches(CropStream(content, size=32, batch=2, seed=3), 8)
    b = batches(CropStream(content, size=32, batch=2, seed=3), 8)
    c = batches(CropStream(content, size=32, batch=2, seed=4), 8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # Starting at batch 5 (a resumed run) gives exactly batches 5, 6, 7.
    resumed = batches(CropStream(content, size=32, batch=2, seed=3, start=5), 3)
    assert all(torch.equal(x, y) for x, y in zip(a[5:], resumed))


def test_every_image_is_seen_once_per_epoch():
    content = ContentSet.builtin()
    stream = CropStream(content, size=32, batch=1, seed=0)
    n = len(content.sources)
    assert sorted(stream.image_index(i) for i in range(n)) == list(range(n))
    assert sorted(stream.image_index(i) for i in range(n, 2 * n)) == list(range(n))


def test_worker_processes_keep_the_order():
    content = ContentSet.builtin()
    alone = batches(CropStream(content, size=32, batch=2, seed=1), 5)
    loader = DataLoader(CropStream(content, size=32, batch=2, seed=1), batch_size=None, num_workers=2)
    parallel = list(itertools.islice(iter(loader), 5))
    assert all(torch.equal(x, y) for x, y in zip(alone, parallel))


def test_styles_from_a_file_or_builtin(style_png, tmp_path):
    name, img = load_style(style_png)
    assert name == "style.png" and img.size == (64, 64)
    name, img = load_style("ihc")
    assert name == "ihc" and img.mode == "RGB"
    with pytest.raises(ImageError, match="built-in styles: ihc"):
        load_style(tmp_path / "nope.jpg")


def test_a_set_names_itself_for_the_checkpoint(photo_dir):
    assert ContentSet.from_folder(photo_dir).label == str(photo_dir.resolve())
    assert ContentSet.builtin().label == "builtin"
    assert not ContentSet.from_folder(photo_dir).streamed and not ContentSet.builtin().streamed


def test_a_streamed_set_is_decoded_off_the_training_process_even_on_a_cpu():
    from models.training import DATA_WORKERS, Speed

    assert Speed.plan("cpu", steps_left=10).num_workers == 0  # a local folder: decoding is cheap beside the step
    assert Speed.plan("cpu", steps_left=10, streamed=True).num_workers == DATA_WORKERS >= 1
    assert Speed.plan("gpu", steps_left=10).num_workers == DATA_WORKERS
    assert Speed.plan("cpu", steps_left=10, streamed=True, num_workers=0).num_workers == 0  # asked for: kept
