"""Validating a content set (service/core/content_sets.py) in the worker: every member of an
uploaded archive (tar, tar.gz or zip), or every object under a registered S3 prefix, read once
and decoded; the readable images listed in the set's manifest in the archive's order (a
prefix's: key order), so two validations of the same bytes give the same manifest; and the
record moved to ready, or to failed with the reason.

A sign of a hostile or wrong archive (a path outside the archive, a link, a device, a nested
archive, a bomb, a truncated file) fails the whole set; a member that is merely not an image
is listed in the manifest's `skipped`. Bombs are judged by the bytes decompression actually
produces, never by the sizes an archive declares. A failed set keeps only its record: every
member written, the manifest and the archive are deleted.

No torch here: this runs in the worker's supervising process (PIL and the standard library).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import PurePosixPath, PureWindowsPath

from PIL import Image

from models.images import FORMATS, ImageError, open_image
from service.core.content_sets import (ARCHIVE_KINDS, ARCHIVE_SNIFF_BYTES, SKIPPED_KEPT, SKIPPED_SHOWN,
                                       ContentSetRecord, ContentSetState, ContentSource, Manifest, ManifestImage,
                                       Progress, Skipped, ZipDirectoryTooLarge, archive_kind, open_zip, shown)
from service.core.errors import NotFound
from service.core import lease
from service.core.stores import Stores
from service.core.keys import Keys
from service.core.records import now
from service.core.settings import Settings
from service.core.storage import ObjectNotFound, ObjectStore, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

ACTIVE = "content-sets"  # the Keys.active kind: sets a worker has started validating (for the sweep)
PROGRESS_EVERY_S = 1.0  # the record's progress is rewritten at most this often
PUT_THREADS = 8  # members stored at once (each PUT is a round trip to the store)
PUT_IN_FLIGHT_BYTES = 64 * 1024**2  # member bytes held while waiting for their PUTs
_CHUNK = 1 << 16
# The most bytes of headers one tar member may come with: its header blocks, a GNU long name
# or long link, pax extended headers, a sparse map, all together; and the most the archive's
# global pax headers may hold. tarfile reads a declared long name or pax header whole in one
# read, so the declared size is refused before it is read. A path is at most 4096 bytes on
# Linux (PATH_MAX); 64 KiB is sixteen times that, and small next to the worker's memory.
TAR_HEADER_BYTES = 64 * 1024

_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}
# Archives inside the archive, by their first bytes (and, for tar, "ustar" at offset 257).
_ARCHIVE_MAGIC = {b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2",
                  b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z",
                  b"Rar!\x1a\x07": "rar"}
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar")
_CORRUPT = (tarfile.ReadError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


class Refused(Exception):
    """The set fails with this reason."""


class _Gone(Exception):
    """The record was deleted meanwhile: stop and remove what was written."""


class _Superseded(Exception):
    """Another attempt finished the set, or is at it: stop, touch nothing of its."""


def validate_content_set(settings: Settings, store: ObjectStore, set_id: str) -> ContentSetState | None:
    """Validate one set. Its state after: ready or failed; validating if another worker is at
    it (its record is fresh); None if the set was deleted. Never raises for bad input; raises
    StoreUnavailable if the service's store cannot be reached (the set stays validating, to be
    tried again: nothing is lost to an outage)."""
    stores = Stores(store)
    tracker = _Tracker(stores, set_id)
    marker = Keys.active(ACTIVE, set_id)
    try:
        try:
            record = tracker.start(settings.stale_after_s)
            store.put_bytes(marker, b"")  # for the sweep, should this worker die
            _remove_output(store, set_id)  # members of an earlier attempt cut off partway
            if lease.exhausted(record.attempts - 1, settings.max_attempts):  # this one not counted
                raise Refused(f"validation was cut off {record.attempts - 1} times (its worker died, was "
                              "stopped or lost the store each time); given up: the archive may hold what kills "
                              "the worker")
            manifest = _read(settings, store, record, tracker)
            if not manifest.images:
                raise Refused(_nothing_readable(manifest))
            stores.content_sets.put_manifest(set_id, manifest)  # last: it lists only members already stored
            tracker.finish(ContentSetState.ready, count=manifest.count,
                           skipped=[s.model_dump() for s in manifest.skipped[:SKIPPED_SHOWN]])
            state = ContentSetState.ready
        except Refused as e:
            reason = str(e)
        except (_Gone, _Superseded, StoreUnavailable):  # the store gone: the task tries again later
            raise
        except Exception as e:  # noqa: BLE001 - anything else fails the set, never the worker
            log.exception("validating content set %s failed", set_id)
            reason = f"{type(e).__name__}: {e}"
        else:
            reason = None
        if reason is not None:
            # The members go first; then the record says failed; then the archive goes. A worker
            # that dies before the record changes validates again from the archive (to the same
            # failure); one that dies after leaves only the archive, which a redelivery deletes.
            _remove_output(store, set_id)
            tracker.finish(ContentSetState.failed, error=reason[:2000])
            state = ContentSetState.failed
    except _Gone:
        _remove_output(store, set_id)
        state = None
    except _Superseded as e:  # finished by another delivery (only its leftovers go), or running
        state = e.args[0]
        if state == ContentSetState.validating:
            return state
    store.delete(Keys.content_archive(set_id))
    store.delete(marker)
    return state


def sweep_content_sets(settings: Settings, store: ObjectStore, send: Callable[[str], None]) -> list[str]:
    """Sets whose validation stopped with its worker (the record not written for stale_after_s:
    a worker killed whole leaves its message unacknowledged for the broker's visibility timeout,
    hours) are sent again; the next attempt starts from scratch, and max_attempts bounds them."""
    stores, resent = Stores(store), []
    for key in store.list(Keys.active_prefix(ACTIVE)):
        set_id = key.rsplit("/", 1)[1]
        try:
            record = stores.content_sets.get(set_id)
        except NotFound:
            store.delete(key)
            continue
        if record.state != ContentSetState.validating:
            store.delete(key)
        elif lease.stale(record.updated_at, settings.stale_after_s):
            send(set_id)
            resent.append(set_id)
            log.warning("content set %s: its validation stopped %.0f s ago; sent again", set_id,
                        (now() - record.updated_at).total_seconds())
    return resent


def _remove_output(store: ObjectStore, set_id: str) -> None:
    store.delete_prefix(Keys.content_prefix(set_id))
    store.delete(Keys.content_manifest(set_id))


def _nothing_readable(manifest: Manifest) -> str:
    first = "; ".join(f"{s.name}: {s.reason}" for s in manifest.skipped[:3])
    return f"no readable image ({manifest.skipped_count} members skipped" + (f": {first}" if first else "") + ")"


class _Tracker:
    """One attempt at the record: started (unless another worker's attempt is alive), its
    progress rewritten at most every PROGRESS_EVERY_S (which keeps it fresh), and its final
    state. Each write also finds out whether the set was deleted, or taken by a later attempt."""

    def __init__(self, stores: Stores, set_id: str):
        self.stores, self.set_id, self.last, self.attempt = stores, set_id, time.monotonic(), 0
        self.latest: Progress | None = None  # written with the final state in any case

    def start(self, stale_after_s: float) -> ContentSetRecord:
        def change(r: ContentSetRecord) -> None:
            if r.state != ContentSetState.validating or (r.attempts and not lease.stale(r.updated_at, stale_after_s)):
                raise _Superseded(r.state)
            r.attempts += 1
            r.progress = Progress(total_bytes=r.progress.total_bytes)

        record = self._update(change)
        self.attempt = record.attempts
        return record

    def progress(self, members: int, bytes_read: int, total_bytes: int | None) -> None:
        self.latest = Progress(members=members, bytes_read=bytes_read, total_bytes=total_bytes)
        if time.monotonic() - self.last < PROGRESS_EVERY_S:
            return
        self.last = time.monotonic()

        def change(r: ContentSetRecord) -> None:
            r.progress = self.latest

        self._write(change)

    def finish(self, state: ContentSetState, **fields) -> None:
        def change(r: ContentSetRecord) -> None:
            r.state = state
            if self.latest is not None:
                r.progress = self.latest
            for name, value in fields.items():
                setattr(r, name, value)

        self._write(change)

    def _write(self, change: Callable[[ContentSetRecord], None]) -> None:
        def guarded(r: ContentSetRecord) -> None:
            if r.state != ContentSetState.validating or r.attempts != self.attempt:
                raise _Superseded(r.state)
            change(r)

        self._update(guarded)

    def _update(self, change: Callable[[ContentSetRecord], None]) -> ContentSetRecord:
        try:
            return self.stores.content_sets.update(self.set_id, change)
        except NotFound:
            raise _Gone from None


# --- reading the set ----------------------------------------------------------------------


class _Collector:
    """The manifest as members arrive: each readable image stored (a few PUTs at once) under
    its index in the manifest; everything else listed in `skipped` with its reason (the first
    SKIPPED_KEPT; all counted). Names are kept as the manifest shows them (content_sets.shown);
    the check for a second member of the same name holds a digest of each whole name."""

    def __init__(self, settings: Settings, store: ObjectStore, set_id: str, tracker: _Tracker):
        self.settings, self.store, self.set_id, self.tracker = settings, store, set_id, tracker
        self.images: list[ManifestImage] = []
        self.skipped: list[Skipped] = []
        self.skipped_count = 0
        self.names: set[bytes] = set()
        self.members = 0
        self.pool = ThreadPoolExecutor(PUT_THREADS, thread_name_prefix="validate-put")
        self.pending: deque[tuple[Future, int]] = deque()
        self.pending_bytes = 0

    def count(self) -> None:
        self.members += 1
        if self.members > self.settings.max_dataset_members:
            raise Refused(f"the set has more than {self.settings.max_dataset_members} members "
                          "(max_dataset_members)")

    def skip(self, name: str, reason: str) -> None:
        self.count()
        self._skipped(name, reason)

    def _skipped(self, name: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < SKIPPED_KEPT:
            self.skipped.append(Skipped(name=name, reason=reason))

    def add(self, name: str, data: bytes, *, where: tuple[str | None, str] | None = None) -> None:
        """One member's bytes. `where`: (bucket, key) to read it in place; None: store a copy."""
        self.count()
        digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self.names:
            self._skipped(name, "a second member with this name")
            return
        self.names.add(digest)
        nested = _nested_archive(name, data) if where is None else None  # an operator's own objects may be anything
        if nested:
            raise Refused(f"member {shown(name)!r} is itself an archive ({nested}); put its images in the archive "
                          "instead")
        try:
            image = open_image(data, max_pixels=self.settings.max_pixels)
            fmt = Image.open(io.BytesIO(data), formats=FORMATS).format
        except ImageError as e:
            self._skipped(name, str(e).removeprefix("upload: "))
            return
        if where is None:
            suffix = _SUFFIXES.get(fmt, f".{fmt.lower()}")
            key, bucket = Keys.content_member(self.set_id, len(self.images), suffix), None
            self._put(key, data, Image.MIME.get(fmt, "application/octet-stream"))
        else:
            bucket, key = where
        self.images.append(ManifestImage(name=name, key=key, bucket=bucket, bytes=len(data),
                                         width=image.width, height=image.height))

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.pending.append((self.pool.submit(self.store.put_bytes, key, data, content_type=content_type), len(data)))
        self.pending_bytes += len(data)
        while self.pending_bytes > PUT_IN_FLIGHT_BYTES or len(self.pending) > 4 * PUT_THREADS:
            self._wait_one()

    def _wait_one(self) -> None:
        future, size = self.pending.popleft()
        self.pending_bytes -= size
        future.result()  # a failed PUT fails the set

    def manifest(self) -> Manifest:
        while self.pending:
            self._wait_one()
        return Manifest(images=self.images, skipped=self.skipped, skipped_count=self.skipped_count)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _read(settings: Settings, store: ObjectStore, record: ContentSetRecord, tracker: _Tracker) -> Manifest:
    collector = _Collector(settings, store, record.id, tracker)
    try:
        if record.source == ContentSource.archive:
            _read_archive(settings, store, record.id, collector)
        elif record.source == ContentSource.prefix:
            _read_prefix(settings, store, record, collector)
        else:
            raise Refused(f"a set of source {record.source.value!r} is checked as it is uploaded; nothing to validate")
        return collector.manifest()
    finally:
        collector.close()


def _nested_archive(name: str, data: bytes) -> str | None:
    for magic, kind in _ARCHIVE_MAGIC.items():
        if data.startswith(magic):
            return kind
    if data[257:262] == b"ustar":
        return "tar"
    if name.lower().endswith(_ARCHIVE_SUFFIXES):
        return f"named {PurePosixPath(name).suffix}"
    return None


def _unsafe_path(name: str) -> str | None:
    """Why a member's path could escape the folder it is unpacked into, or None."""
    for path in (PurePosixPath(name), PureWindowsPath(name)):
        if path.is_absolute() or path.anchor or path.drive:
            return "an absolute path"
        if ".." in path.parts:
            return "a '..' in its path"
    return None


class _Counter:
    """Bytes unpacked so far, against the member, total and ratio caps. The bytes of names and
    headers (a tar's header blocks, long names and pax headers; a zip's directory) count as
    unpacked too: the archive makes us read them as much as its members."""

    def __init__(self, settings: Settings, packed: Callable[[], int]):
        self.settings, self.packed, self.total = settings, packed, 0

    def read(self, name: str, f, *, keep: bool = True) -> bytes:
        s = self.settings
        out, size = bytearray(), 0
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            self.total += len(chunk)
            if size > s.max_member_bytes:
                raise Refused(f"member {shown(name)!r} unpacks to more than {s.max_member_bytes} bytes "
                              "(max_member_bytes)")
            self._check(f"member {shown(name)!r}")
            if keep:
                out += chunk
        return bytes(out)

    def metadata(self, size: int, where: str) -> None:
        self.total += size
        self._check(where)

    def _check(self, where: str) -> None:
        s = self.settings
        if self.total > s.max_dataset_unpacked_bytes:
            raise Refused(f"the archive unpacks to more than {s.max_dataset_unpacked_bytes} bytes "
                          f"(max_dataset_unpacked_bytes), reached at {where}")
        if self.total > s.max_member_bytes and self.total > s.max_dataset_unpack_ratio * self.packed():
            raise Refused(f"the archive unpacks to more than {s.max_dataset_unpack_ratio:g} times its size "
                          f"(max_dataset_unpack_ratio), reached at {where}: a decompression bomb?")


class _ChunkFile(io.RawIOBase):
    """An object's chunks (ObjectStore.iter_chunks) as a file read once, front to back; counts
    the bytes read, for progress and the unpack ratio."""

    def __init__(self, chunks: Iterable[bytes]):
        self.chunks: Iterator[bytes] = iter(chunks)
        self.view, self.count = memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.view:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.view = memoryview(chunk)
        n = min(len(b), len(self.view))
        b[:n] = self.view[:n]
        self.view = self.view[n:]
        self.count += n
        return n


class _Tail:
    """A plain tar stream, remembering its last bytes: whether the tar ended with its
    end-of-archive block (tarfile's stream mode takes a cut-off header as the end)."""

    KEEP = 1 << 20

    def __init__(self, f):
        self.f, self.pos, self.tail = f, 0, bytearray()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.pos += len(data)
        self.tail += data
        if len(self.tail) > 2 * self.KEEP:
            del self.tail[:-self.KEEP]
        return data

    def ends_at(self, offset: int) -> bool:
        """Whether a zero block (the end-of-archive marker) is at `offset`."""
        start = offset - (self.pos - len(self.tail))
        block = self.tail[start:start + tarfile.BLOCKSIZE] if start >= 0 else b""
        return len(block) == tarfile.BLOCKSIZE and not any(block)


class _TarReads:
    """What tarfile reads from its stream (the `_Stream` of stream mode, which gathers whatever
    size it is asked for in memory before it answers). While a member's headers are read
    (`left` set, by _BoundedTar.next), each read is checked before it happens against what is
    left of TAR_HEADER_BYTES: a GNU long name or a pax header that declares 100 MiB is refused
    unread. Bytes read then, and skipped padding, are counted (`metadata`)."""

    def __init__(self, f):
        self.f, self.left, self.metadata = f, None, 0

    def read(self, size: int) -> bytes:
        if self.left is not None:
            if size < 0 or size > self.left:
                raise Refused(f"a tar member's headers (long name or link, pax headers, sparse map) take more than "
                              f"{TAR_HEADER_BYTES} bytes ({size} bytes more asked at byte {self.f.tell()} of the "
                              "tar); refused unread")
            self.left -= size
        data = self.f.read(size)
        if self.left is not None:
            self.metadata += len(data)
        return data

    def seek(self, pos: int) -> int:
        before = self.f.tell()
        after = self.f.seek(pos)  # forward only: the stream reads and drops what it skips
        self.metadata += after - before
        return after

    def take(self) -> int:
        """The header bytes read since the last take."""
        n, self.metadata = self.metadata, 0
        return n

    def __getattr__(self, name: str):
        return getattr(self.f, name)


class _BoundedTar(tarfile.TarFile):
    """tarfile, each member's headers read through _TarReads (put in at the first member, which
    TarFile's constructor reads), and its global pax headers, which it keeps for every member
    after, no larger than TAR_HEADER_BYTES in all."""

    def next(self) -> tarfile.TarInfo | None:
        if not isinstance(self.fileobj, _TarReads):
            self.fileobj = _TarReads(self.fileobj)
        self.fileobj.left = TAR_HEADER_BYTES
        try:
            member = super().next()
        finally:
            self.fileobj.left = None
        if self.pax_headers and sum(len(k) + len(v) for k, v in self.pax_headers.items()) > TAR_HEADER_BYTES:
            raise Refused(f"the tar's global pax headers hold more than {TAR_HEADER_BYTES} bytes; refused")
        return member


def _read_archive(settings: Settings, store: ObjectStore, set_id: str, collector: _Collector) -> None:
    key = Keys.content_archive(set_id)
    try:
        total = store.size(key)
        raw = _ChunkFile(store.iter_chunks(key))
    except ObjectNotFound:
        raise Refused("the uploaded archive is gone from the store; upload it again") from None
    source = io.BufferedReader(raw, _CHUNK)
    kind = archive_kind(source.peek(ARCHIVE_SNIFF_BYTES)[:ARCHIVE_SNIFF_BYTES])
    if kind is None:
        raise Refused(f"not an archive this server reads ({ARCHIVE_KINDS})")

    def progress() -> None:
        collector.tracker.progress(collector.members, raw.count, total)

    try:
        if kind == "zip":
            _read_zip(settings, source, raw, total, collector, progress)
        else:  # the gzip is decompressed here, so the end-of-archive check sees the tar's own bytes
            _read_tar(settings, gzip.GzipFile(fileobj=source) if kind == "gzip" else source, raw, collector, progress)
    except _CORRUPT as e:
        raise Refused(f"truncated or corrupt archive: {e}") from None
    progress()


def _read_tar(settings: Settings, stream, raw: _ChunkFile, collector: _Collector, progress: Callable[[], None]) -> None:
    tail = _Tail(stream)
    try:
        tf = _BoundedTar.open(fileobj=tail, mode="r|")
    except tarfile.ReadError as e:  # a gzip of something else than a tar
        raise Refused(f"not an archive this server reads ({ARCHIVE_KINDS}): {e}") from None
    counter = _Counter(settings, lambda: raw.count)
    reads: _TarReads = tf.fileobj
    with tf:
        # tf.next(), not iteration: stream mode would otherwise keep every member's TarInfo.
        while (member := tf.next()) is not None:
            tf.members.clear()
            name = member.name
            counter.metadata(reads.take(), f"the headers of member {shown(name)!r}")
            if unsafe := _unsafe_path(name):
                raise Refused(f"member {shown(name)!r} has {unsafe}")
            if member.issym() or member.islnk():
                raise Refused(f"member {shown(name)!r} is a {'symbolic' if member.issym() else 'hard'} link "
                              f"(to {shown(member.linkname)!r})")
            if member.ischr() or member.isblk() or member.isfifo():
                raise Refused(f"member {shown(name)!r} is a device or fifo")
            if member.isdir():
                continue
            if not member.isreg():
                raise Refused(f"member {shown(name)!r} is not a regular file (tar type {member.type!r})")
            collector.add(name, counter.read(name, tf.extractfile(member)))
            progress()
        counter.metadata(reads.take(), "the end-of-archive block")
        if not tail.ends_at(tf.offset):
            raise tarfile.ReadError(f"the tar ends at byte {tf.offset} without its end-of-archive block")
        # To the end of the stream (padding, counted as unpacked), so a gzip, bzip2 or xz
        # stream is checked whole: a cut-off trailer is a truncated archive too.
        counter.read("(after the end-of-archive block)", tail, keep=False)


def _read_zip(settings: Settings, source, raw: _ChunkFile, total: int, collector: _Collector,
              progress: Callable[[], None]) -> None:
    """A zip's directory is at its end: the archive is copied to the worker's disk first."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=settings.work_dir) as copy:
        while chunk := source.read(1 << 20):
            copy.write(chunk)
            progress()
        counter = _Counter(settings, lambda: total)
        try:
            archive, directory = open_zip(copy, settings.max_dataset_zip_directory_bytes)
        except ZipDirectoryTooLarge as e:
            raise Refused(f"{e} (max_dataset_zip_directory_bytes); refused unread: a set that large streams as "
                          "a tar") from None
        with archive:
            counter.metadata(directory, "the zip's directory")
            if sum(not m.is_dir() for m in archive.filelist) > settings.max_dataset_members:  # before any is read
                raise Refused(f"the set has more than {settings.max_dataset_members} members (max_dataset_members)")
            for member in archive.infolist():
                name = member.filename
                if unsafe := _unsafe_path(name):
                    raise Refused(f"member {shown(name)!r} has {unsafe}")
                mode = member.external_attr >> 16
                if member.create_system == 3 and stat.S_ISLNK(mode):  # 3: written on Unix
                    raise Refused(f"member {shown(name)!r} is a symbolic link")
                if member.create_system == 3 and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)
                                                  or stat.S_ISSOCK(mode)):
                    raise Refused(f"member {shown(name)!r} is a device or fifo")
                if member.is_dir():
                    continue
                try:
                    with archive.open(member) as f:
                        data = counter.read(name, f)
                except (NotImplementedError, RuntimeError) as e:  # a method we lack; encrypted
                    collector.skip(name, f"cannot unpack: {e}")
                    continue
                collector.add(name, data)
                progress()


# --- a registered prefix ------------------------------------------------------------------


class _TooLarge(Exception):
    pass


def _get_capped(source: ObjectStore, key: str, limit: int) -> bytes:
    """One object, streamed, no more than `limit` bytes of it."""
    out = bytearray()
    chunks = source.iter_chunks(key, _CHUNK)
    try:
        for chunk in chunks:
            out += chunk
            if len(out) > limit:
                raise _TooLarge
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    return bytes(out)


def _read_prefix(settings: Settings, store: ObjectStore, record: ContentSetRecord, collector: _Collector) -> None:
    """Every object under the prefix, in key order, read once in place: the manifest names its
    bucket and key, nothing is copied. A few GETs at once, kept in key order."""
    prefix = record.prefix or ""
    where = f"s3://{record.bucket or getattr(store, 'bucket', '')}/{prefix}"
    try:
        source = store.in_bucket(record.bucket)
        keys = source.list(prefix)  # S3: the list_objects_v2 paginator, sorted
    except (StoreError, ValueError) as e:
        raise Refused(f"cannot list {where}: {e}") from None
    keys = [k for k in keys if not k.endswith("/")]  # folder markers, as consoles make them
    if not keys:
        raise Refused(f"no object under {where} any more")
    limit = settings.max_member_bytes

    def get(key: str) -> bytes | str:
        try:
            return _get_capped(source, key, limit)
        except ObjectNotFound:
            return "gone from the bucket while the set was validated"
        except ValueError:  # check_key: what the training reader would refuse too
            return "its key has characters the service does not read (only A-Z a-z 0-9 . _ / -)"
        except _TooLarge:
            return f"larger than {limit} bytes (max_member_bytes)"

    bytes_read = 0
    with ThreadPoolExecutor(PUT_THREADS, thread_name_prefix="validate-get") as pool:
        window: deque[tuple[str, Future]] = deque()
        for key in [*keys, None]:
            if key is not None:
                window.append((key, pool.submit(get, key)))
            while window and (key is None or len(window) > 2 * PUT_THREADS):
                done, future = window.popleft()
                data, name = future.result(), done[len(prefix):]
                if isinstance(data, str):
                    collector.skip(name, data)
                else:
                    bytes_read += len(data)
                    collector.add(name, data, where=(record.bucket, done))
                collector.tracker.progress(collector.members, bytes_read, None)
