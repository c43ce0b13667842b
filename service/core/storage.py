"""Object store for uploads, checkpoints and results, behind one small interface.

The service runs on a laptop (a local folder) and in deployment (S3 or an
S3-compatible server such as MinIO). Both backends implement `ObjectStore` with
the same behaviour, so the API and the workers never know which one they use,
and the tests run the same checks against both.

Keys are built by the service from ids it made, never from user text; they are
still checked (`check_key`) so that a bug can never escape the local root or
write odd names into a bucket.
"""

from __future__ import annotations

import abc
import bisect
import copy
import builtins
import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import boto3
import botocore.exceptions
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.config import Config

__all__ = [
    "LocalStore",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "AccessDenied",
    "BucketNotFound",
    "StoreError",
    "StoreUnavailable",
    "VersionConflict",
    "check_key",
]

log = logging.getLogger(__name__)
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_CHUNK_SIZE = 1 << 20
_COPY_BUFFER = 1 << 20
_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
S3_MIN_PART_BYTES = 5 * 1024**2  # S3's smallest part of a multipart upload (but the last)
# S3 allows presigned URLs to live at most 7 days.
_MAX_PRESIGN_S = 7 * 24 * 3600


class StoreError(Exception):
    """Any failure of the object store."""


class ObjectNotFound(StoreError):
    """The key names no object."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object at key {key!r}")
        self.key = key


class StoreUnavailable(StoreError):
    """The store cannot be reached (server down, wrong endpoint, missing bucket or folder)."""


class BucketNotFound(StoreError):
    """A bucket named by an operator (not the store's own) does not exist."""


class AccessDenied(StoreError):
    """The store's credentials may not read what was asked."""


class VersionConflict(StoreError):
    """A conditional write lost: the object changed (or appeared) since it was read."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object {key!r} changed since it was read")
        self.key = key


def check_key(key: str) -> str:
    """Return `key` unchanged if it is a safe object key, else raise ValueError.

    Refused: empty keys, a leading '/', empty segments ('a//b', 'a/'), '.' and
    '..' segments, and any character outside [A-Za-z0-9._/-].
    """
    if not isinstance(key, str) or not key:
        raise ValueError("object key must be a non-empty string")
    if not _KEY_CHARS.fullmatch(key):
        raise ValueError(f"object key {key!r} has characters outside [A-Za-z0-9._/-]")
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} must not start with '/'")
    for segment in key.split("/"):
        if segment == "":
            raise ValueError(f"object key {key!r} has an empty segment")
        if segment in (".", ".."):
            raise ValueError(f"object key {key!r} has a {segment!r} segment")
    return key


def _check_prefix(prefix: str) -> str:
    """A prefix names a folder: check it like a key (one trailing '/' allowed), return it with '/'."""
    if isinstance(prefix, str) and prefix.endswith("/"):
        prefix = prefix[:-1]
    return check_key(prefix) + "/"


def _check_page(prefix: str, after: str | None, limit: int) -> tuple[str, str | None, int]:
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive number of keys, got {limit!r}")
    return _check_prefix(prefix), None if after is None else check_key(after), limit


def _check_expiry(expires_s: int) -> int:
    if not 1 <= expires_s <= _MAX_PRESIGN_S:
        raise ValueError(f"expires_s must be between 1 and {_MAX_PRESIGN_S}, got {expires_s}")
    return expires_s


def _temp_beside(path: Path) -> tuple[IO[bytes], Path]:
    """Open a temp file in path's folder (created if missing), so os.replace is atomic.

    Its name has a '~', which no key may contain, so a half-written file is never
    listed as an object.
    """
    for attempt in range(3):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part~")
        except FileNotFoundError:  # a delete_prefix pruned the empty folder meanwhile
            if attempt == 2:
                raise
            continue
        return os.fdopen(fd, "wb"), Path(tmp)
    raise AssertionError("unreachable")


def _write_atomically(path: Path, source: IO[bytes] | bytes | Iterable[bytes]) -> None:
    """Write bytes, a binary stream or chunks to `path` via a temp file and os.replace: renamed
    into place only once everything is written, so nothing partial is ever an object."""
    f, tmp = _temp_beside(path)
    try:
        with f:
            if isinstance(source, bytes):
                f.write(source)
            elif hasattr(source, "read"):
                shutil.copyfileobj(source, f, _COPY_BUFFER)
            else:
                for chunk in source:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ObjectStore(abc.ABC):
    """Flat key -> bytes store; keys look like paths ('runs/<id>/model.pt')."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Store `data` at `key`, replacing any object there."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Store the file at `path` at `key`, streaming it (never read whole into memory)."""

    @abc.abstractmethod
    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        """Store the bytes `chunks` yields at `key` as they come (at most a part held in memory);
        return how many there were. If `chunks` (or the store) raises, nothing is kept, neither
        an object nor a partial upload, and the exception goes on."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound if missing."""

    @abc.abstractmethod
    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and its version (an ETag: the MD5 of the bytes, as S3 gives it)."""

    @abc.abstractmethod
    def put_if(self, key: str, data: bytes, *, version: str | None,
               content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        """Write only if the object is still at `version` (None: only if it does not exist);
        else raise VersionConflict. Returns the new version. The compare-and-set that keeps
        concurrent writers of one record from losing each other's changes."""

    @abc.abstractmethod
    def download(self, key: str, path: Path) -> Path:
        """Write the object to `path` (parents created, written atomically); return `path`."""

    @abc.abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """The object's bytes in chunks, for streaming responses.

        The object is opened when this is called, so a missing key raises
        ObjectNotFound here, before any response has started.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at `key`."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; ObjectNotFound if missing."""

    @abc.abstractmethod
    def list(self, prefix: str) -> builtins.list[str]:
        """Sorted keys of all objects under the folder `prefix` ('runs/a' lists 'runs/a/...', not 'runs/ab')."""

    @abc.abstractmethod
    def list_page(self, prefix: str, *, after: str | None = None, limit: int) -> builtins.list[str]:
        """At most `limit` keys under the folder `prefix`, in sorted order, each greater than
        `after` (a key; None: from the first). Reads only about that many keys' worth of
        listing on S3 (StartAfter and MaxKeys), however many the folder holds."""

    @abc.abstractmethod
    def folders(self, prefix: str) -> builtins.list[str]:
        """Sorted names of the folders directly under `prefix` ('contents' -> ['<id>', ...]),
        without listing what they hold (S3: a listing with Delimiter='/')."""

    @abc.abstractmethod
    def usage(self, prefix: str) -> int:
        """Bytes stored under the folder `prefix`, all objects together."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object at `key`; no error if there is none."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder `prefix`; return how many were deleted."""

    @abc.abstractmethod
    def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        """A URL that fetches the object without credentials, or None if the backend has none."""

    @abc.abstractmethod
    def version(self, key: str) -> str:
        """The object's version without reading its bytes, as get_versioned and put_if name it
        where the backend can say it cheaply (S3's ETag), else an identity that changes with
        every write (a local file's inode, size and modification time). ObjectNotFound if none."""

    def in_bucket(self, bucket: str | None) -> ObjectStore:
        """This store reading another bucket through the same endpoint and credentials (objects
        an operator registered in place); itself for None or its own bucket. ValueError where
        the backend has no buckets."""
        if bucket is None:
            return self
        raise ValueError(f"{self.describe()} has no buckets (the image names bucket {bucket!r})")

    @abc.abstractmethod
    def ping(self) -> None:
        """Return if the store is usable; raise StoreUnavailable saying why not."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the objects live, for logs and `checkerless` status output."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class LocalStore(ObjectStore):
    """Objects are files under `root`; content types are not kept."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    @contextmanager
    def _writing(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        try:
            yield path
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as e:
            # S3 can hold both 'a' and 'a/b'; a folder cannot. Say so plainly.
            raise StoreError(
                f"cannot store key {key!r} in {self.root}: a file and a folder would share a name"
            ) from e
        except OSError as e:
            raise StoreError(f"cannot store key {key!r} in {self.root}: {e}") from e

    def put_bytes(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        with self._writing(key) as path:
            _write_atomically(path, bytes(data))

    def put_file(self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        with open(path, "rb") as src, self._writing(key) as dest:
            _write_atomically(dest, src)

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                size += len(chunk)
                yield chunk

        with self._writing(key) as dest:
            _write_atomically(dest, counted())
        return size

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._file(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as e:  # deleted meanwhile
            raise ObjectNotFound(key) from e

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, _md5(data)

    def version(self, key: str) -> str:
        try:
            st = self._file(key).stat()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"  # every write replaces the file

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # One lock file per key, in a folder whose '~' keeps it out of every listing.
        folder = self.root / ".locks~"
        folder.mkdir(exist_ok=True)
        with open(folder / check_key(key).replace("/", "~"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def put_if(self, key: str, data: bytes, *, version: str | None,
               content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        with self._locked(key):
            path = self._path(key)
            try:
                current = _md5(path.read_bytes())
            except (FileNotFoundError, NotADirectoryError):
                current = None
            if current != version:
                raise VersionConflict(key)
            with self._writing(key) as dest:
                _write_atomically(dest, bytes(data))
        return _md5(data)

    def download(self, key: str, path: Path) -> Path:
        path = Path(path)
        try:
            with open(self._file(key), "rb") as src:
                _write_atomically(path, src)
        except (FileNotFoundError, IsADirectoryError) as e:
            if not self._path(key).is_file():
                raise ObjectNotFound(key) from e
            raise
        return path

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        try:
            f = open(self._file(key), "rb")
        except (FileNotFoundError, IsADirectoryError) as e:
            raise ObjectNotFound(key) from e
        return _file_chunks(f, chunk_size)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._file(key).stat().st_size
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    def list(self, prefix: str) -> builtins.list[str]:
        prefix = _check_prefix(prefix)
        top = self.root / prefix
        keys: builtins.list[str] = []
        for dirpath, _dirnames, filenames in os.walk(top):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = f"{rel}/{name}"
                if _KEY_CHARS.fullmatch(name):  # skips temp files ('~') of writes in progress
                    keys.append(key)
        return sorted(keys)

    def list_page(self, prefix: str, *, after: str | None = None, limit: int) -> builtins.list[str]:
        prefix, after, limit = _check_page(prefix, after, limit)
        keys: builtins.list[str] = []
        self._walk_after(self.root / prefix, prefix, after, limit, keys)
        return keys

    def _walk_after(self, folder: Path, rel: str, after: str | None, limit: int, keys: builtins.list[str]) -> None:
        """Depth first in key order: a folder 'a' sorts as 'a/', as its keys do ('a.b' < 'a/c')."""
        try:
            entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name)
                       for e in os.scandir(folder) if _KEY_CHARS.fullmatch(e.name)]  # no temp files ('~')
        except (FileNotFoundError, NotADirectoryError):
            return
        if after is not None and not after.startswith(rel):
            if after > rel:  # the whole folder sorts before `after`
                return
            after = None  # the whole folder sorts after it
        entries.sort()
        if after is not None:  # skip what sorts before `after`'s own entry in this folder
            entries = entries[bisect.bisect_left(entries, after[len(rel):].split("/", 1)[0]):]
        for name in entries:
            key = rel + name
            if name.endswith("/"):
                if after is None or after < key or after.startswith(key):  # else all of it is <= after
                    self._walk_after(folder / name[:-1], key, after, limit, keys)
            elif after is None or key > after:
                keys.append(key)
            if len(keys) >= limit:
                return

    def folders(self, prefix: str) -> builtins.list[str]:
        top = self.root / _check_prefix(prefix)
        try:
            return sorted(e.name for e in os.scandir(top) if e.is_dir(follow_symlinks=False)
                          and _KEY_CHARS.fullmatch(e.name))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def usage(self, prefix: str) -> int:
        total = 0
        for key in self.list(prefix):
            try:
                total += (self.root / key).stat().st_size
            except FileNotFoundError:  # deleted meanwhile
                pass
        return total

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink(missing_ok=True)
            # The folders it leaves empty go too (S3 has none to leave), so walks do not
            # wade through them; a writer that loses its folder meanwhile makes it again.
            for folder in path.parents:
                if folder == self.root:
                    break
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone): so are the ones above
                    break

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            (self.root / key).unlink(missing_ok=True)
        # Prune the folders left empty, deepest first; a folder a writer just filled stays.
        top = self.root / _check_prefix(prefix)
        if top.is_dir():
            for dirpath, _dirnames, _filenames in os.walk(top, topdown=False):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        return len(keys)

    def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        check_key(key)
        _check_expiry(expires_s)
        return None

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StoreUnavailable(f"local store folder {self.root} does not exist")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"local store folder {self.root} is not writable")

    def describe(self) -> str:
        return f"local folder {self.root}"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytearray]:
    """The chunks regrouped into parts of exactly `size` bytes (the last one shorter, never
    empty), each a fresh buffer filled in place: a part is held once, not copied."""
    part = bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        while len(view):
            room = size - len(part)
            part += view[:room]
            view = view[room:]
            if len(part) == size:
                yield part
                part = bytearray()
    if part:
        yield part


def _file_chunks(f: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    with f:
        while chunk := f.read(chunk_size):
            yield chunk


_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# S3's answers to a conditional write that lost (412), or raced another one (409).
_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def _code(e: botocore.exceptions.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class S3Store(ObjectStore):
    """Objects in one bucket of S3 or an S3-compatible server (MinIO, Ceph, moto)."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        public_endpoint_url: str | None = None,
        create_bucket: bool = False,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_attempts: int = 5,
        part_bytes: int = S3_MIN_PART_BYTES,
    ) -> None:
        if part_bytes < S3_MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {S3_MIN_PART_BYTES} (S3's smallest part), got {part_bytes}")
        self.bucket = bucket
        self.part_bytes = part_bytes  # put_stream's parts: what it holds in memory at once
        self.endpoint_url = endpoint_url
        self.public_endpoint_url = public_endpoint_url or endpoint_url
        self.region = region
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": max_attempts},
            # botocore >= 1.36 adds CRC checksums to every upload by default, which many
            # S3-compatible servers reject (boto3 issue #4392): only send them where required.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        # A session of our own: boto3's default session is not thread-safe; clients are.
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
        )
        self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        # A presigned URL is signed for the host it names, so sign with the endpoint that
        # clients outside (browsers, other containers) will actually use.
        if self.public_endpoint_url != endpoint_url:
            self._presigner: Any = session.client(
                "s3", endpoint_url=self.public_endpoint_url, config=config
            )
        else:
            self._presigner = self._client
        if create_bucket:
            self.ensure_bucket()

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn botocore/boto3 errors into StoreError subclasses."""
        try:
            yield
        except StoreError:
            raise
        except botocore.exceptions.ClientError as e:
            raise self._client_error(e, key) from e
        except S3UploadFailedError as e:
            cause = e.__cause__ or e.__context__
            if isinstance(cause, botocore.exceptions.ClientError):
                raise self._client_error(cause, key) from e
            raise StoreError(str(e)) from e
        except RetriesExceededError as e:
            raise StoreUnavailable(f"{self.describe()}: {e.last_exception}") from e
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as e:
            raise StoreUnavailable(f"cannot reach {self.describe()}: {e}") from e
        except botocore.exceptions.NoCredentialsError as e:
            raise StoreUnavailable(f"{self.describe()}: no credentials configured") from e
        except botocore.exceptions.BotoCoreError as e:
            raise StoreError(f"{self.describe()}: {e}") from e

    def _client_error(self, e: botocore.exceptions.ClientError, key: str | None) -> StoreError:
        code = _code(e)
        if code == "NoSuchBucket":
            return StoreUnavailable(f"bucket {self.bucket!r} does not exist at {self._where()}")
        if key is not None and code in _NOT_FOUND_CODES:
            return ObjectNotFound(key)
        return StoreError(f"{self.describe()}: {e}")

    def _where(self) -> str:
        return self.endpoint_url or "the default AWS endpoint"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists already."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self._errors():
            try:
                self._client.create_bucket(**kwargs)
            except botocore.exceptions.ClientError as e:
                if _code(e) != "BucketAlreadyOwnedByYou":
                    raise

    def put_bytes(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        check_key(key)
        with self._errors(key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), ContentType=content_type)

    def put_file(self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        check_key(key)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no file to upload at {path}")
        with self._errors(key):
            # upload_file streams from disk and switches to multipart for large files.
            self._client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
            )

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        check_key(key)
        parts = _parts(chunks, self.part_bytes)
        upload_id = None
        try:
            with self._errors(key):
                first = next(parts, b"")
                if len(first) < self.part_bytes:  # the only part, or none: a plain put
                    self._client.put_object(Bucket=self.bucket, Key=key, Body=first, ContentType=content_type)
                    return len(first)
                upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                                 ContentType=content_type)["UploadId"]
                done, size, part = [], 0, first
                del first
                while part is not None:
                    etag = self._client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                    PartNumber=len(done) + 1, Body=part)["ETag"]
                    done.append({"PartNumber": len(done) + 1, "ETag": etag})
                    size += len(part)
                    part = None  # let it go before the next one is filled
                    part = next(parts, None)
                self._client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                       MultipartUpload={"Parts": done})
                return size
        except BaseException:
            if upload_id is not None:
                self._abort(key, upload_id)
            raise

    def first_key(self, prefix: str, *, bucket: str | None = None) -> str | None:
        """The first key under `prefix` (any text S3 takes) in `bucket` (None: this store's), or
        None if there is none: one listing of one key, to check a prefix exists and is readable.
        BucketNotFound, AccessDenied say why not."""
        bucket = bucket or self.bucket
        with self._errors():
            try:
                page = self._client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            except botocore.exceptions.ClientError as e:
                if _code(e) in ("NoSuchBucket", "404"):
                    raise BucketNotFound(f"bucket {bucket!r} does not exist at {self._where()}") from e
                if _code(e) in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
                    raise AccessDenied(f"the service's credentials may not list {prefix!r} in bucket {bucket!r} "
                                       f"at {self._where()}") from e
                raise
        contents = page.get("Contents") or []
        return contents[0]["Key"] if contents else None

    def _abort(self, key: str, upload_id: str) -> None:
        """Take back a multipart upload: its parts are dropped and no object appears."""
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            # the bucket's lifecycle rule for incomplete uploads is the backstop
            log.warning("could not abort the multipart upload of %r (%s): %s", key, upload_id, e)

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        with self._errors(key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with body:
                return body.read()

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        check_key(key)
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return body.read(), response["ETag"].strip('"')

    def version(self, key: str) -> str:
        check_key(key)
        with self._errors(key):
            return str(self._client.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')

    def in_bucket(self, bucket: str | None) -> ObjectStore:
        if bucket is None or bucket == self.bucket:
            return self
        other = copy.copy(self)  # a boto3 client names the bucket per call: share it
        other.bucket = bucket
        return other

    def put_if(self, key: str, data: bytes, *, version: str | None,
               content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        check_key(key)
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": f'"{version}"'}
        try:
            with self._errors(key):
                response = self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data),
                                                   ContentType=content_type, **condition)
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, botocore.exceptions.ClientError) and _code(cause) in _CONFLICT_CODES:
                raise VersionConflict(key) from cause
            if isinstance(cause, botocore.exceptions.ClientError) and _code(cause) in _NOT_FOUND_CODES:
                raise VersionConflict(key) from cause  # If-Match on an object deleted meanwhile
            raise
        return response["ETag"].strip('"')

    def download(self, key: str, path: Path) -> Path:
        check_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        f, tmp = _temp_beside(path)
        f.close()
        try:
            with self._errors(key):
                self._client.download_file(self.bucket, key, str(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        check_key(key)
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        with self._errors(key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return self._body_chunks(body, key, chunk_size)

    def _body_chunks(self, body: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors(key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        check_key(key)
        with self._errors(key):
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def _pages(self, prefix: str) -> Iterator[builtins.list[str]]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield [obj["Key"] for obj in page.get("Contents", [])]

    def list(self, prefix: str) -> builtins.list[str]:
        prefix = _check_prefix(prefix)
        return sorted(key for page in self._pages(prefix) for key in page)

    def list_page(self, prefix: str, *, after: str | None = None, limit: int) -> builtins.list[str]:
        prefix, after, limit = _check_page(prefix, after, limit)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if after is not None:
            kwargs["StartAfter"] = after
        # The paginator follows continuation tokens (a server may answer fewer than MaxKeys,
        # and at most 1000) and stops at MaxItems.
        paginator = self._client.get_paginator("list_objects_v2")
        config = {"MaxItems": limit, "PageSize": min(limit, 1000)}
        with self._errors():
            keys = [obj["Key"] for page in paginator.paginate(**kwargs, PaginationConfig=config)
                    for obj in page.get("Contents", [])]
        return keys[:limit]

    def folders(self, prefix: str) -> builtins.list[str]:
        prefix = _check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors():
            return sorted(p["Prefix"][len(prefix):].rstrip("/")
                          for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
                          for p in page.get("CommonPrefixes", []))

    def usage(self, prefix: str) -> int:
        prefix = _check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors():
            return sum(obj["Size"] for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                       for obj in page.get("Contents", []))

    def delete(self, key: str) -> None:
        check_key(key)
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        prefix = _check_prefix(prefix)
        # Collect first, then delete: deleting while paginating may skip keys on some servers.
        keys = [key for page in self._pages(prefix) for key in page]
        deleted = 0
        for start in range(0, len(keys), 1000):  # delete_objects takes at most 1000 keys
            batch = keys[start : start + 1000]
            with self._errors():
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StoreError(
                    f"{self.describe()}: could not delete {len(errors)} of {len(batch)} objects "
                    f"under {prefix!r}, e.g. {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )
            deleted += len(batch)
        return deleted

    def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        check_key(key)
        _check_expiry(expires_s)
        with self._errors(key):
            url: str = self._presigner.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
            )
        return url

    def ping(self) -> None:
        with self._errors():
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as e:
                code = _code(e)
                if code in ("404", "NoSuchBucket", "NotFound"):
                    msg = f"bucket {self.bucket!r} does not exist at {self._where()}"
                elif code in ("403", "AccessDenied", "Forbidden"):
                    msg = f"access to bucket {self.bucket!r} at {self._where()} denied: check the credentials"
                else:
                    msg = f"{self.describe()} is not usable: {e}"
                raise StoreUnavailable(msg) from e

    def describe(self) -> str:
        return f"s3 bucket {self.bucket} at {self._where()}"


def open_store(settings) -> ObjectStore:
    """The store the settings name: a local folder (the embedded default) or an S3 bucket."""
    if settings.store == "s3":
        return S3Store(bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                       access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
                       public_endpoint_url=settings.s3_public_url, create_bucket=True,
                       part_bytes=settings.upload_part_bytes)
    return LocalStore(settings.data_dir / "store")
