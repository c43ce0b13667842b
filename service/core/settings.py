"""The service's settings: the only reader of environment variables (prefix CHECKERLESS_).
`.env.example` lists them; tests build a Settings object directly. Every file the embedded
mode writes (store, broker, worker scratch) lies under `data_dir`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.images import MAX_PIXELS
from models.preview_size import PREVIEW_SIZE_RANGE
from models.probe_row import PROBE_SIZE_RANGE
from service.core.storage import S3_MIN_PART_BYTES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHECKERLESS_", env_file=".env", extra="ignore")

    # Where things live. Empty broker_url: the embedded broker (kombu's filesystem transport, made safe
    # under data_dir/broker), which needs no server.
    broker_url: str = ""
    store: Literal["local", "s3"] = "local"
    data_dir: Path = Path("checkerless-data")  # local store, embedded broker, worker scratch
    s3_bucket: str = "checkerless"
    s3_endpoint_url: str | None = None
    s3_public_url: str | None = None  # presigned URLs name this host
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None

    # Limits on what users send.
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_pixels: int = Field(MAX_PIXELS, gt=0)  # every image and video frame, in the API and the workers
    max_content_images: int = Field(500, gt=0)
    # What archives may unpack to: each member, and all members of one request together.
    # Counted as they decompress, whatever their headers declare.
    max_member_bytes: int = Field(48 * 1024 * 1024, gt=0)
    max_unpacked_bytes: int = Field(256 * 1024 * 1024, gt=0)
    # Archives streamed to the store (POST /v1/content-sets/archive), unpacked by a worker: the
    # largest accepted, and the parts of S3's multipart upload (what the API holds at once).
    max_archive_bytes: int = Field(20 * 1024**3, gt=0)
    upload_part_bytes: int = Field(16 * 1024**2, ge=S3_MIN_PART_BYTES)
    # What the validating worker (workers/validate.py) lets one archive unpack to, counted as it
    # decompresses: all members together (twice max_archive_bytes: images hardly compress), and
    # past the first max_member_bytes, at most this many times the archive's bytes read so far
    # (a bomb is ~1000x; images in an archive ~1x).
    max_dataset_unpacked_bytes: int = Field(2 * 20 * 1024**3, gt=0)
    max_dataset_unpack_ratio: float = Field(100.0, gt=1)
    # Members of one set (images and skipped ones together, folders aside): the worker holds
    # the whole manifest in memory while it validates, so this bounds its memory.
    max_dataset_members: int = Field(2_000_000, gt=0)
    # A zip's central directory, which Python's zipfile reads whole and keeps as an object per
    # member (names up to 64 KiB each): at about 100 bytes a member, 32 MiB lists ~330,000
    # members (a 20 GiB zip of 64 KB images); larger sets stream as a tar.
    max_dataset_zip_directory_bytes: int = Field(32 * 1024**2, gt=0)

    # Each owner's limits (an admin key has none): unfinished jobs at once, and training work
    # (steps x batch x crop pixels, summed over the jobs submitted in the last quota_window_s).
    quota_active_jobs: int = Field(8, ge=1)
    quota_training_pixels: int = Field(200 * 4 * 256 * 256 * 100, ge=1)  # about a hundred 200-step jobs at 256 px
    quota_window_s: int = Field(24 * 3600, gt=0)
    quota_storage_bytes: int = Field(10 * 1024**3, ge=1)  # what an owner's uploads and outputs may take
    # How old an owner's storage measurement may get before a worker's sweeper lists their objects
    # again (service/core/usage.py): uploads and deletes through the API count at once, workers'
    # outputs (checkpoints, stylised images) at the next measurement.
    storage_measure_s: float = Field(300.0, gt=0)
    # The Retry-After of the unfinished-jobs limit's 429: when a job will end is not known, so this
    # is how soon a client (checkerless_client waits it out) asks again.
    quota_retry_after_s: int = Field(60, ge=1)

    # Jobs.
    max_attempts: int = Field(3, ge=1)  # a job whose worker dies this often fails with the reason
    job_time_limit_s: int = Field(48 * 3600, gt=0)  # the longest job; the broker waits longer
    checkpoint_every: int | None = Field(None, ge=1)  # operator's default; None: the training config's
    heartbeat_s: float = Field(2.0, gt=0)  # how often a running job's record is refreshed
    stale_after_s: float = Field(30.0, gt=0)  # a running job not refreshed for this long is requeued
    # A job or stylisation queued this long while its queue holds no message is sent again: its
    # message was lost (a refused publish after a requeue, a broker that lost its data, a held
    # video message whose worker died). A duplicate is harmless (a delivery starts one only while
    # it is queued), so this only bounds the wait.
    resend_queued_after_s: float = Field(600.0, gt=0)
    # The training probe's photo size (models/training.py train's probe_size): its artifact and
    # quality curves are measured at this many pixels, every PROBE_EVERY steps. None: the
    # models' default (models/probe_row.py probe_size, which reads this same variable in the
    # training child). The test suite runs it smaller: a tiny job's probe at 128 px costs more
    # than its training.
    probe_size: int | None = Field(None, ge=PROBE_SIZE_RANGE[0], le=PROBE_SIZE_RANGE[1])
    # A finished job's preview and panel, their shorter side (models/preview_size.py). None: the
    # models' sizes (256 and 192 px). The test suite's are smaller, as its probe is.
    preview_size: int | None = Field(None, ge=PREVIEW_SIZE_RANGE[0], le=PREVIEW_SIZE_RANGE[1])
    cancel_grace_s: float = Field(20.0, ge=0)  # after the cancel flag, before SIGTERM (and again to SIGKILL)
    stylize_time_limit_s: int = Field(600, gt=0)  # a stylisation still running after this fails
    # Videos (POST /v1/jobs/{id}/stylize-video): the largest upload, and the longest stylisation.
    max_video_bytes: int = Field(500 * 1024**2, gt=0)
    video_time_limit_s: int = Field(3 * 3600, gt=0)
    # The work one video may ask for. Bytes and wall time do not bound it (a 455 KB file held
    # 29,970 1x1 frames), so the stylise server counts the frames before it stylises any
    # (docs/video.md) and refuses a video over either limit, with its numbers:
    # - max_video_frames: 18,000 is 10 minutes at 30 fps. It also bounds the fixed work of each
    #   frame (decode, encode, copies, small kernels), which tiny frames are nearly all of: 2.4 ms
    #   a frame on this project's 2-core CPU, for 400 frames of 2x2.
    # - max_video_frame_pixels: frames x pixels a frame, each frame counted at least
    #   video_pixel_floor pixels. 1920x1080 x 9,000 is 5 minutes of 1080p at 30 fps (10 minutes
    #   of 720p; 75 s of 4K): on a GPU the forward passes take about 1.5 minutes of it (4.5 ns a
    #   pixel on an H200, README), so one heavy video holds the video lane for minutes, not hours.
    #   A CPU stylises 8 to 11 us a pixel (the same CPU, one thread, 64x64 to 256x256 frames),
    #   so there video_time_limit_s comes first: lower this on CPU workers.
    # - video_pixel_floor: 256x256, whose forward pass on a GPU (~0.3 ms at 4.5 ns a pixel) is
    #   about a frame's fixed work there, so a smaller frame costs about as much (an estimate,
    #   not measured on a GPU here; on a CPU the floor overcharges tiny frames, which is harmless).
    max_video_frames: int = Field(18_000, gt=0)
    max_video_frame_pixels: int = Field(1920 * 1080 * 9_000, gt=0)
    video_pixel_floor: int = Field(256 * 256, ge=1)
    # A video that finds its worker's video lane taken (one video at a time per worker process,
    # turns by owner: workers/warm_stylize.py VideoLane) goes back on the queue, still queued and
    # with no attempt counted, and asks again this long after: short against any video's run,
    # long enough that waiting videos do not spin through the broker.
    stylize_video_retry_s: float = Field(2.0, gt=0)
    # The warm stylise server (workers/warm_stylize.py): one long-lived process per worker process.
    stylize_cache_bytes: int = Field(1024**3, ge=1)  # loaded networks kept (parameter bytes); least recently used go first
    stylize_server_max_rss_bytes: int = Field(4 * 1024**3, ge=1)  # past this the server is restarted between requests
    stylize_server_idle_s: float = Field(1800.0, ge=0)  # an idle server exits after this, freeing memory; 0: never
    stylize_checkpoint_cache_bytes: int = Field(2 * 1024**3, ge=0)  # downloaded checkpoints kept on the worker's disk
    # The stylise server's arithmetic: auto (bf16 where the machine has bf16 matrix units), 32 or bf16.
    stylize_precision: Literal["auto", "32", "bf16"] = "auto"
    # Content images streamed from the store for training (workers/content_cache.py): one cache
    # folder per worker shared by its jobs; least recently used images go past this many bytes.
    content_cache_bytes: int = Field(20 * 1024**3, ge=0)
    # A finished job's network, exported for other runtimes (models/export.py; ONNX takes a few
    # seconds on a CPU, TorchScript well under one). Empty: none.
    export_formats: list[Literal["onnx", "torchscript"]] = ["onnx", "torchscript"]
    device: str = "auto"
    max_devices_per_job: int = Field(8, ge=1)  # the most GPUs (on the CPU, DDP processes) one job may ask for
    # GPUs a train worker runs jobs on, one job per GPU (workers/gpus.py); None: those named by
    # CUDA_VISIBLE_DEVICES, else every GPU `nvidia-smi -L` lists (none when device is "cpu").
    gpus: int | None = Field(None, ge=0)
    # CHECKERLESS_VGG16_WEIGHTS (torchvision's VGG16 file) is read where the loss network is
    # built, in the training process (models/loss_network.py): models/ reads no settings.

    # Webhooks (service/core/webhooks.py).
    webhook_allow_private: bool = False  # allow URLs to private, loopback and link-local addresses
    webhook_attempts: int = Field(8, ge=1)  # deliveries tried before one is given up
    webhook_retry_base_s: float = Field(2.0, gt=0)  # the first retry's wait; it doubles each time

    stylization_keep_s: int = Field(7 * 24 * 3600, gt=0)  # finished stylisations are deleted after this
    idempotency_keep_s: int = Field(24 * 3600, gt=0)  # how long an Idempotency-Key's answer is kept

    # Presigned URLs, and the API address the CLI client talks to.
    url_expiry_s: int = Field(3600, gt=0)
    api_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None  # the CLI client's key; unset: the data folder's local key

    @property
    def resolved_broker_url(self) -> str:
        # The embedded broker is our safe variant of kombu's filesystem transport (service/core/broker.py).
        return "checkerless-fs://" if self.embedded_broker else self.broker_url

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url or self.broker_url.startswith(("filesystem", "checkerless-fs"))

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def local_key_file(self) -> Path:
        """The embedded default's API key, made by `serve` on first start (service/core/auth.py)."""
        return self.data_dir / "local-key"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def lease_s(self) -> float:
        """A supervisor that could not renew its heartbeat for this long stops its work (a
        stylisation) or pauses it (a training child; service/core/lease.py, `hold_of`): half
        the stale timeout, so it has stopped before a sweeper may requeue the record."""
        return self.stale_after_s / 2
