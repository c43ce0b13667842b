"""Images per second the training stream delivers from a content set in the store, read through
the worker's cache cold (every image fetched) and warm (every image on disk), against the same
images in a local folder, with 0, 2 and 4 DataLoader workers:

    .venv/bin/python scripts/stream_bench.py [--images 200] [--side 512] [--size 256] [--batch 4]
                                             [--workers 0,2,4] [--repeat 3] [--endpoint URL]

The set is made here: JPEGs cut from scikit-image's photographs, uploaded as the validating
worker stores them (one object per image, and a manifest). The store is an S3 server: `--endpoint`
(credentials from CHECKERLESS_S3_ACCESS_KEY / _SECRET_KEY), or else moto's server, started in a
process of its own on this machine. Each row reads one epoch (every image once, in the crop
stream's order) through the DataLoader as training does (models/data.py CropStream), so the
time includes decoding and cropping; the loss step is left out. Each figure is the median of
`--repeat` epochs (a cold one clears the cache first). A benchmark, not a test: it prints a
table and asserts nothing."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from models.data import ContentSet, CropStream  # noqa: E402
from service.cli import own_s3  # noqa: E402
from service.core.content_sets import Manifest, ManifestImage  # noqa: E402
from service.core.keys import Keys, new_id  # noqa: E402
from service.core.settings import Settings  # noqa: E402
from service.core.storage import ObjectStore, open_store  # noqa: E402
from service.core.stores import Stores  # noqa: E402
from workers.content_stream import CACHE_FOLDER, content_set, stream_spec  # noqa: E402


def photos(n: int, side: int) -> list[bytes]:
    """n JPEGs of side x 3/4 side, cut at random places from scikit-image's photographs."""
    import skimage.data

    rng = np.random.default_rng(0)
    sources = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
               for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        scale = side / min(src.size) * 1.5
        big = src.resize((round(src.width * scale), round(src.height * scale)))
        w, h = side, side * 3 // 4
        x, y = int(rng.integers(0, big.width - w + 1)), int(rng.integers(0, big.height - h + 1))
        buf = io.BytesIO()
        big.crop((x, y, x + w, y + h)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def upload(store: ObjectStore, images: list[bytes], side: int) -> str:
    set_id = new_id()
    listed = []
    for i, data in enumerate(images):
        key = Keys.content_member(set_id, i, ".jpg")
        store.put_bytes(key, data, content_type="image/jpeg")
        listed.append(ManifestImage(name=f"photo-{i:05d}.jpg", key=key, bytes=len(data), width=side,
                                    height=side * 3 // 4))
    Stores(store).content_sets.put_manifest(set_id, Manifest(images=listed))
    return set_id


def epoch(content: ContentSet, *, workers: int, size: int, batch: int) -> float:
    """Seconds to deliver every image once (the first epoch of the crop stream)."""
    stream = CropStream(content, size=size, batch=batch, seed=0)
    loader = DataLoader(stream, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None)
    started = time.perf_counter()
    it = iter(loader)
    for _ in range(len(content.sources) // batch):
        next(it)
    seconds = time.perf_counter() - started
    del it
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=512, help="the images' longer side in pixels")
    parser.add_argument("--size", type=int, default=256, help="the training crop")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", default="0,2,4", help="DataLoader workers to try, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="epochs per figure (the median is shown)")
    parser.add_argument("--endpoint", help="an S3 server to use instead of starting moto's")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")  # more workers than CPUs: on purpose
    workers = [int(w) for w in args.workers.split(",")]

    moto = None
    if args.endpoint is None:
        if not own_s3.available():
            raise SystemExit("moto's server is not installed (pip install -e '.[dev]'); or pass --endpoint")
        moto = own_s3.S3Server().start()
        endpoint = moto.url
        os.environ.setdefault("CHECKERLESS_S3_ACCESS_KEY", "bench")
        os.environ.setdefault("CHECKERLESS_S3_SECRET_KEY", "bench")
    else:
        endpoint = args.endpoint
    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    try:
        settings = Settings(_env_file=None, store="s3", s3_endpoint_url=endpoint, s3_bucket=f"bench-{new_id()[:12]}",
                            data_dir=tmp / "data")
        store = open_store(settings)
        images = photos(args.images, args.side)
        set_id = upload(store, images, args.side)
        local = tmp / "local"
        local.mkdir()
        for i, data in enumerate(images):
            (local / f"photo-{i:05d}.jpg").write_bytes(data)
        folder = ContentSet.from_folder(local)
        (tmp / "job").mkdir()
        cache = settings.work_dir / CACHE_FOLDER

        mb = sum(map(len, images)) / 1e6
        print(f"{args.images} JPEGs of {args.side}x{args.side * 3 // 4} ({mb:.1f} MB), crops of {args.size} px, "
              f"batches of {args.batch}; store: {'moto server' if moto else endpoint}; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at the start\n")
        print("| read from | DataLoader workers | images/s | s per epoch |")
        print("| --- | ---: | ---: | ---: |")
        n = args.images // args.batch * args.batch
        for w in workers:
            times: dict[str, list[float]] = {"store, cold cache": [], "store, warm cache": [], "local folder": []}
            for _ in range(args.repeat):
                shutil.rmtree(cache, ignore_errors=True)
                streamed = content_set(stream_spec(store, settings, set_id, tmp / "job"))
                for name, content in zip(times, (streamed, streamed, folder)):
                    times[name].append(epoch(content, workers=w, size=args.size, batch=args.batch))
            for name, seconds in times.items():
                s = statistics.median(seconds)
                print(f"| {name} | {w} | {n / s:.0f} | {s:.2f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    main()
