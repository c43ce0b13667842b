"""The validating worker (workers/validate.py) on archives made here, good and hostile, on the
local store and on S3 (moto's server over HTTP): what it keeps, what it refuses, and that a
failed set leaves nothing but its record."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from service.core.content_sets import (NAME_SHOWN, REASON_SHOWN, SKIPPED_KEPT, SKIPPED_SHOWN, ContentSetRecord,
                                       ContentSetState, ContentSource)
from service.core.stores import Stores
from service.core.keys import Keys, new_id
from service.core.settings import Settings
from service.core.storage import LocalStore, S3Store, StoreUnavailable
from workers.validate import ACTIVE, sweep_content_sets, validate_content_set


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store(bucket=f"validate-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, access_key="test",
                   secret_key="test", create_bucket=True)


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data", max_pixels=100_000)


def image(seed: int, size: int = 16, fmt: str = "PNG") -> bytes:
    """A deterministic small image of seeded noise."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def tar(members: list[tuple[str, bytes] | tarfile.TarInfo], mode: str = "w") -> bytes:
    """A tar of (name, bytes) regular files and ready-made TarInfo entries (links, devices...)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def new_set(store, archive: bytes) -> str:
    set_id = new_id()
    Stores(store).content_sets.create(ContentSetRecord(id=set_id, owner=new_id(), source=ContentSource.archive,
                                                       state=ContentSetState.validating))
    store.put_bytes(Keys.content_archive(set_id), archive)
    return set_id


def validated(settings, store, archive: bytes) -> tuple[ContentSetRecord, str]:
    set_id = new_set(store, archive)
    validate_content_set(settings, store, set_id)
    return Stores(store).content_sets.get(set_id), set_id


def assert_failed_leaving_only_the_record(store, set_id: str, record: ContentSetRecord, *words: str) -> None:
    assert record.state == ContentSetState.failed, record
    for word in words:
        assert word in record.error, record.error
    assert store.list(Keys.content_set_prefix(set_id)) == [Keys.content_meta(set_id)]
    assert not store.exists(Keys.active(ACTIVE, set_id))  # nothing left for the sweep either


GOOD = [("a/one.png", image(1)), ("a/two.jpg", image(2, fmt="JPEG")), ("three.png", image(3, size=24))]


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_a_good_archive_becomes_ready_with_its_images_stored_one_by_one_in_its_order(settings, store, kind):
    archive = zip_of(GOOD) if kind == "zip" else tar([entry("a", tarfile.DIRTYPE), *GOOD],
                                                     "w:gz" if kind == "tar.gz" else "w")
    record, set_id = validated(settings, store, archive)
    assert record.state == ContentSetState.ready and record.count == 3 and record.skipped == [], record
    assert (record.progress.members, record.progress.bytes_read, record.progress.total_bytes) \
        == (3, len(archive), len(archive)) and record.attempts == 1
    manifest = Stores(store).content_sets.get_manifest(set_id)
    assert [i.name for i in manifest.images] == [name for name, _ in GOOD]
    assert [i.key for i in manifest.images] == [Keys.content_member(set_id, 0, ".png"),
                                                Keys.content_member(set_id, 1, ".jpg"),
                                                Keys.content_member(set_id, 2, ".png")]
    for item, (_, data) in zip(manifest.images, GOOD):
        assert store.get_bytes(item.key) == data and item.bytes == len(data) and item.bucket is None
    assert (manifest.images[2].width, manifest.images[2].height) == (24, 24)
    assert not store.exists(Keys.content_archive(set_id))
    # Deterministic: the same bytes validate to the same manifest (but for the set's own keys).
    again, other = validated(settings, store, archive)
    second = Stores(store).content_sets.get_manifest(other).images
    assert [(i.name, i.bytes, i.width, i.key.replace(other, set_id)) for i in second] \
        == [(i.name, i.bytes, i.width, i.key) for i in manifest.images]


def test_unreadable_members_are_skipped_with_their_reasons_and_the_rest_kept(settings, store):
    big = image(4, size=400)  # 160,000 pixels: over this test's max_pixels
    members = [("ok.png", image(5)), ("notes.txt", b"not an image at all"), ("cut.png", image(6)[:60]),
               ("big.png", big), ("ok2.png", image(7)), ("ok.png", image(8))]
    record, set_id = validated(settings, store, tar(members, "w:gz"))
    assert record.state == ContentSetState.ready and record.count == 2, record
    reasons = {s["name"]: s["reason"] for s in record.skipped}
    assert "not an image" in reasons["notes.txt"]
    assert "cannot decode" in reasons["cut.png"] or "truncated" in reasons["cut.png"]
    assert "400x400" in reasons["big.png"] and "100000" in reasons["big.png"]
    manifest = Stores(store).content_sets.get_manifest(set_id)
    assert [s.name for s in manifest.skipped] == ["notes.txt", "cut.png", "big.png", "ok.png"]
    assert [i.name for i in manifest.images] == ["ok.png", "ok2.png"]


HOSTILE = {
    "absolute path": ([("/etc/evil.png", image(1))], "an absolute path"),
    "dot-dot": ([("ok.png", image(1)), ("a/../../evil.png", image(2))], "'..'"),
    "symlink": ([("ok.png", image(1)), entry("link.png", tarfile.SYMTYPE, "/etc/passwd")], "symbolic link"),
    "hardlink": ([("ok.png", image(1)), entry("hard.png", tarfile.LNKTYPE, "ok.png")], "hard link"),
    "character device": ([entry("tty", tarfile.CHRTYPE)], "device or fifo"),
    "block device": ([entry("sda", tarfile.BLKTYPE)], "device or fifo"),
    "fifo": ([entry("pipe", tarfile.FIFOTYPE)], "device or fifo"),
    "nested zip": ([("ok.png", image(1)), ("pictures.dat", zip_of([("x.png", image(2))]))], "itself an archive (zip)"),
    "nested tar.gz": ([("more.bin", tar([("x.png", image(2))], "w:gz"))], "itself an archive (gzip)"),
    "nested tar": ([("more.bin", tar([("x.png", image(2))]))], "itself an archive (tar)"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_tar_fails_naming_the_member_and_leaves_nothing(settings, store, case):
    members, words = HOSTILE[case]
    record, set_id = validated(settings, store, tar(members, "w:gz"))
    name = next(m.name if isinstance(m, tarfile.TarInfo) else m[0] for m in members[::-1])
    assert_failed_leaving_only_the_record(store, set_id, record, words, repr(name))


def test_a_hostile_zip_fails_naming_the_member_and_leaves_nothing(settings, store):
    record, set_id = validated(settings, store, zip_of([("ok.png", image(1)), ("../../evil.png", image(2))]))
    assert_failed_leaving_only_the_record(store, set_id, record, "'..'", "'../../evil.png'")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.png", image(1))
        link = zipfile.ZipInfo("link.png")
        link.create_system, link.external_attr = 3, (0o120777 << 16)  # how Info-ZIP stores a symlink
        zf.writestr(link, "/etc/passwd")
    record, set_id = validated(settings, store, buf.getvalue())
    assert_failed_leaving_only_the_record(store, set_id, record, "symbolic link", "'link.png'")


def bomb_settings(tmp_path, **caps) -> Settings:
    return Settings(data_dir=tmp_path / "data", **{"max_member_bytes": 1 << 20,
                                                   "max_dataset_unpacked_bytes": 1 << 30, **caps})


def test_a_tar_bomb_fails_by_the_bytes_it_unpacks_to(tmp_path, store):
    zeros = [(f"z{i}.bin", bytes(900_000)) for i in range(6)]  # 5.4 MB of zeros in a few KB
    record, set_id = validated(bomb_settings(tmp_path), store, tar(zeros, "w:gz"))
    assert_failed_leaving_only_the_record(store, set_id, record, "max_dataset_unpack_ratio", "bomb")
    # With the ratio lifted, the total cap stops it; one member over the member cap, that one.
    caps = bomb_settings(tmp_path, max_dataset_unpack_ratio=1e9, max_dataset_unpacked_bytes=3_000_000)
    record, set_id = validated(caps, store, tar([("ok.png", image(1)), *zeros], "w:gz"))
    assert_failed_leaving_only_the_record(store, set_id, record, "more than 3000000 bytes", "'z3.bin'")
    record, set_id = validated(caps, store, tar([("big.bin", bytes(3 << 20))], "w:gz"))
    assert_failed_leaving_only_the_record(store, set_id, record, "'big.bin' unpacks to more than 1048576 bytes")


def lie_about_sizes(archive: bytes, size: int) -> bytes:
    """A zip whose local headers and central directory all declare `size` bytes per member
    (the CRC of the real bytes kept): what a size check on headers alone would trust."""
    data = bytearray(archive)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size field
        at = data.find(sig)
        while at != -1:
            struct.pack_into("<I", data, at + offset, size)
            at = data.find(sig, at + 4)
    return bytes(data)


def test_a_zip_bomb_fails_by_the_bytes_it_unpacks_to_whatever_its_headers_say(tmp_path, store):
    zeros = zip_of([(f"z{i}.bin", bytes(900_000)) for i in range(6)])
    record, set_id = validated(bomb_settings(tmp_path), store, zeros)
    assert_failed_leaving_only_the_record(store, set_id, record, "max_dataset_unpack_ratio")
    # Headers that claim 100 bytes a member: never more is unpacked than counted, and the
    # members that do not match their checksums fail the set.
    record, set_id = validated(bomb_settings(tmp_path), store, lie_about_sizes(zeros, 100))
    assert_failed_leaving_only_the_record(store, set_id, record, "truncated or corrupt archive")
    # Headers that claim 3 GB a member: nothing is refused for what it only says.
    good = lie_about_sizes(zip_of([("ok.png", image(1))]), 3_000_000_000)
    record, set_id = validated(bomb_settings(tmp_path), store, good)
    assert record.state == ContentSetState.ready and record.count == 1


@pytest.mark.parametrize("kind", ["tar.gz", "tar", "zip"])
def test_a_truncated_archive_fails_as_truncated_and_leaves_nothing(settings, store, kind):
    members = [(f"m{i}.png", image(i, size=32)) for i in range(5)]
    archive = zip_of(members) if kind == "zip" else tar(members, "w:gz" if kind == "tar.gz" else "w")
    # Half of it; and the last member's data cut short (tar), or the last bytes (tar.gz: the
    # gzip trailer; zip: its directory).
    for cut in (len(archive) // 2, archive.find(b"m4.png") + 600 if kind == "tar" else len(archive) - 10):
        record, set_id = validated(settings, store, archive[:cut])
        assert_failed_leaving_only_the_record(store, set_id, record, "truncated or corrupt archive")


def test_a_tar_cut_at_a_member_boundary_is_truncated_too(settings, store):
    archive = tar([("a.png", image(1)), ("b.png", image(2))])
    second = archive.find(b"b.png")  # the second member's header starts with its name
    record, set_id = validated(settings, store, archive[:second])
    assert_failed_leaving_only_the_record(store, set_id, record, "end-of-archive")


@pytest.mark.parametrize("data", [b"", b"hello, this is plain text" * 100, image(1), gzip.compress(image(1))],
                         ids=["empty", "text", "png", "png.gz"])
def test_what_is_not_an_archive_fails_saying_so(settings, store, data):
    record, set_id = validated(settings, store, data)
    assert_failed_leaving_only_the_record(store, set_id, record, "not an archive this server reads")


def test_an_archive_of_more_members_than_the_limit_fails(tmp_path, store):
    caps = Settings(data_dir=tmp_path / "data", max_dataset_members=5)
    six = [(f"{i}.txt", b"") for i in range(4)] + [(f"{i}.png", image(i)) for i in range(2)]
    record, set_id = validated(caps, store, tar(six))
    assert_failed_leaving_only_the_record(store, set_id, record, "more than 5 members (max_dataset_members)")
    five = [entry("d", tarfile.DIRTYPE)] + [(f"d/{i}.png", image(i)) for i in range(5)]
    record, set_id = validated(caps, store, tar(five))
    assert record.state == ContentSetState.ready and record.count == 5  # folders are not members


def test_an_archive_without_a_readable_image_fails_with_the_first_reasons(settings, store):
    record, set_id = validated(settings, store, tar([("a.txt", b"text"), ("b.png", b"\x89PNG broken")], "w:gz"))
    assert_failed_leaving_only_the_record(store, set_id, record, "no readable image (2 members skipped", "a.txt:",
                                          "b.png:")


def test_a_second_delivery_changes_nothing_and_a_retry_starts_from_scratch(settings, store):
    set_id = new_set(store, tar(GOOD))
    stray = Keys.content_member(set_id, 7, ".png")  # what a try that died partway left
    store.put_bytes(stray, image(9))
    assert validate_content_set(settings, store, set_id) == ContentSetState.ready
    assert not store.exists(stray) and Stores(store).content_sets.get(set_id).count == 3
    before = store.list(Keys.content_set_prefix(set_id))
    version = Stores(store).content_sets.get(set_id).version
    assert validate_content_set(settings, store, set_id) == ContentSetState.ready
    assert store.list(Keys.content_set_prefix(set_id)) == before
    assert Stores(store).content_sets.get(set_id).version == version


class DeletingStore(LocalStore):
    """A local store on which the set is deleted (as DELETE /v1/content-sets/{id} does) just
    before the validator reads its record for the third time (to note its progress)."""

    reads = 0

    def get_versioned(self, key):
        if key.endswith("/meta.json"):
            self.reads += 1
            if self.reads == 3:
                self.delete_prefix(key.rsplit("/", 1)[0])
        return super().get_versioned(key)


def test_a_set_deleted_while_validating_is_cleaned_up(settings, tmp_path, monkeypatch):
    import workers.validate

    monkeypatch.setattr(workers.validate, "PROGRESS_EVERY_S", 0.0)  # look at the record after every member
    store = DeletingStore(tmp_path / "deleting")
    set_id = new_set(store, tar([(f"m{i}.png", image(i)) for i in range(6)]))
    assert validate_content_set(settings, store, set_id) is None
    assert store.reads == 3 and store.list(Keys.content_set_prefix(set_id)) == []


class FullStore(LocalStore):
    def put_bytes(self, key, data, **kw):
        if "/images/" in key:
            raise OSError(28, "No space left on device")
        super().put_bytes(key, data, **kw)


def test_an_unexpected_error_fails_the_set_with_its_type_and_leaves_nothing(settings, tmp_path):
    store = FullStore(tmp_path / "full")
    record, set_id = validated(settings, store, tar(GOOD))
    assert_failed_leaving_only_the_record(store, set_id, record, "OSError: [Errno 28] No space left on device")


def test_a_set_deleted_before_its_turn_is_nothing_to_do(settings, store):
    set_id = new_set(store, tar(GOOD))
    Stores(store).content_sets.delete(set_id)
    assert validate_content_set(settings, store, set_id) is None
    assert store.list(Keys.content_set_prefix(set_id)) == []


def test_a_registered_prefix_is_read_in_place_in_key_order(settings, s3_endpoint):
    store = S3Store(bucket=f"ours-{uuid.uuid4().hex[:12]}", endpoint_url=s3_endpoint, access_key="test",
                    secret_key="test", create_bucket=True)
    theirs = S3Store(bucket=f"theirs-{uuid.uuid4().hex[:12]}", endpoint_url=s3_endpoint, access_key="test",
                     secret_key="test", create_bucket=True)
    objects = {"photos/b.png": image(1), "photos/a/c.jpg": image(2, fmt="JPEG"), "photos/notes.txt": b"text",
               "photos/more.zip": zip_of([("x.png", image(3))]), "photos/z.png": image(4),
               "photosynthesis/not-under.png": image(5)}
    for key, data in objects.items():
        theirs.put_bytes(key, data)
    theirs._client.put_object(Bucket=theirs.bucket, Key="photos/with space.png", Body=image(6))
    theirs._client.put_object(Bucket=theirs.bucket, Key="photos/a/", Body=b"")  # a console's folder marker
    stores = Stores(store)

    def registered(bucket: str | None, prefix: str) -> tuple[ContentSetRecord, str]:
        set_id = new_id()
        stores.content_sets.create(ContentSetRecord(id=set_id, owner=new_id(), source=ContentSource.prefix, bucket=bucket,
                                                    prefix=prefix, state=ContentSetState.validating))
        validate_content_set(settings, store, set_id)
        return stores.content_sets.get(set_id), set_id

    record, set_id = registered(theirs.bucket, "photos/")
    assert record.state == ContentSetState.ready and record.count == 3, record
    manifest = stores.content_sets.get_manifest(set_id)
    assert [(i.name, i.bucket, i.key) for i in manifest.images] == [
        ("a/c.jpg", theirs.bucket, "photos/a/c.jpg"), ("b.png", theirs.bucket, "photos/b.png"),
        ("z.png", theirs.bucket, "photos/z.png")]
    assert [i.bytes for i in manifest.images] == [len(objects[i.key]) for i in manifest.images]
    reasons = {s.name: s.reason for s in manifest.skipped}
    assert set(reasons) == {"more.zip", "notes.txt", "with space.png"}
    assert "not an image" in reasons["more.zip"] and "characters" in reasons["with space.png"]
    assert store.list(Keys.content_set_prefix(set_id)) == [Keys.content_manifest(set_id), Keys.content_meta(set_id)]
    assert len(theirs.list("photos")) == 7  # nothing of theirs moved or deleted
    # A prefix emptied since it was registered, and a bucket gone, fail with the reason.
    record, set_id = registered(theirs.bucket, "photos/nothing-here/")
    assert_failed_leaving_only_the_record(store, set_id, record, "no object under", "photos/nothing-here/")
    record, set_id = registered(f"gone-{uuid.uuid4().hex[:12]}", "photos/")
    assert_failed_leaving_only_the_record(store, set_id, record, "cannot list", "does not exist")


def started(store, archive: bytes, *, attempts: int, seconds_ago: float) -> str:
    """A set some worker started validating `attempts` times, its record last written then."""
    set_id = new_set(store, archive)
    when = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    Stores(store).content_sets.update(set_id, lambda r: setattr(r, "attempts", attempts))
    record = Stores(store).content_sets.get(set_id).model_copy(update={"updated_at": when})
    store.put_bytes(Keys.content_meta(set_id), record.model_dump_json().encode())
    store.put_bytes(Keys.active(ACTIVE, set_id), b"")
    return set_id


def test_a_set_another_worker_is_validating_is_left_to_it(settings, tmp_path):
    store = LocalStore(tmp_path / "store")
    set_id = started(store, tar(GOOD), attempts=1, seconds_ago=1)
    stray = Keys.content_member(set_id, 0, ".png")
    store.put_bytes(stray, image(1))  # what that worker wrote so far
    assert validate_content_set(settings, store, set_id) == ContentSetState.validating
    assert store.exists(stray) and store.exists(Keys.content_archive(set_id))
    assert Stores(store).content_sets.get(set_id).attempts == 1


def test_a_set_whose_worker_died_is_swept_and_validated_again_within_max_attempts(settings, tmp_path):
    store = LocalStore(tmp_path / "store")
    dead = started(store, tar(GOOD), attempts=1, seconds_ago=settings.stale_after_s + 5)
    alive = started(store, tar(GOOD), attempts=1, seconds_ago=1)
    finished, _ = validated(settings, store, tar(GOOD))
    store.put_bytes(Keys.active(ACTIVE, finished.id), b"")  # a marker a worker died before removing
    sent: list[str] = []
    assert sweep_content_sets(settings, store, sent.append) == [dead] and sent == [dead]
    assert not store.exists(Keys.active(ACTIVE, finished.id))
    assert validate_content_set(settings, store, dead) == ContentSetState.ready
    record = Stores(store).content_sets.get(dead)
    assert record.count == 3 and record.attempts == 2
    assert store.list(Keys.active_prefix(ACTIVE)) == [Keys.active(ACTIVE, alive)]
    # One cut off max_attempts times (an archive that kills its worker) is given up.
    doomed = started(store, tar(GOOD), attempts=settings.max_attempts, seconds_ago=settings.stale_after_s + 5)
    assert validate_content_set(settings, store, doomed) == ContentSetState.failed
    assert_failed_leaving_only_the_record(store, doomed, Stores(store).content_sets.get(doomed),
                                          f"cut off {settings.max_attempts} times")


class UnreachableStore(LocalStore):
    """A local store that stops answering once the archive is being read (an S3 outage)."""

    def iter_chunks(self, key, chunk_size=1 << 20):
        raise StoreUnavailable(f"cannot reach the store for {key}")


def test_a_store_outage_leaves_the_set_validating_to_be_tried_again(settings, tmp_path):
    store = UnreachableStore(tmp_path / "store")
    set_id = new_set(store, tar(GOOD))
    with pytest.raises(StoreUnavailable):  # the task retries it later (workers/tasks.py)
        validate_content_set(settings, store, set_id)
    record = Stores(store).content_sets.get(set_id)
    assert record.state == ContentSetState.validating and record.attempts == 1
    assert store.exists(Keys.content_archive(set_id)) and store.exists(Keys.active(ACTIVE, set_id))
    # Once the store answers and the record is stale, the next delivery validates it whole.
    store = LocalStore(tmp_path / "store")
    stale = record.model_copy(update={"updated_at": record.updated_at - timedelta(seconds=settings.stale_after_s + 1)})
    store.put_bytes(Keys.content_meta(set_id), stale.model_dump_json().encode())
    assert validate_content_set(settings, store, set_id) == ContentSetState.ready
    assert Stores(store).content_sets.get(set_id).attempts == 2


# --- names and headers: counted, bounded, cut where stored ------------------------------------

GNU, PAX = tarfile.GNU_FORMAT, tarfile.PAX_FORMAT
MB = 1_000_000
RECORD_BOUND = 16 * 1024  # a set's stored record, whatever its archive named (ASCII names here)


def named_tar(fmt: int, members: list[tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    """A tar whose long names tarfile writes its format's way: GNU as ././@LongLink members
    before each header, PAX as an extended header holding `path`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def stored_bytes(store, key: str) -> int:
    return len(store.get_bytes(key))


@pytest.mark.parametrize("fmt", [GNU, PAX], ids=["gnu", "pax"])
def test_names_of_megabytes_fail_the_set_before_they_are_read(settings, store, fmt):
    # The archive, smaller: two members named with megabytes (tens of KB gzipped), and an image.
    archive = named_tar(fmt, [("a" * (3 * MB) + "1.txt", b"x"), ("b" * (3 * MB) + "2.txt", b"y"),
                              ("ok.png", image(1))])
    assert len(archive) < 50_000
    record, set_id = validated(settings, store, archive)
    assert_failed_leaving_only_the_record(store, set_id, record, "headers", "more than 65536 bytes",
                                          "refused unread")
    assert stored_bytes(store, Keys.content_meta(set_id)) < RECORD_BOUND


@pytest.mark.parametrize("fmt", [GNU, PAX], ids=["gnu", "pax"])
def test_a_long_name_is_refused_unread(tmp_path, fmt):
    """What the worker allocates while it refuses an 8 MB name: far less than the name (Python's
    own allocations, traced; the local store, so no S3 server shares the process)."""
    import tracemalloc

    store = LocalStore(tmp_path / "store")
    set_id = new_set(store, named_tar(fmt, [("n" * (8 * MB), b"x"), ("ok.png", image(1))]))
    tracemalloc.start()
    try:
        validate_content_set(Settings(data_dir=tmp_path / "data"), store, set_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert Stores(store).content_sets.get(set_id).state == ContentSetState.failed
    assert peak < 3 * MB, f"{peak / MB:.1f} MB allocated to refuse an 8 MB name"


def test_names_and_headers_count_against_the_unpack_limits(tmp_path, store):
    # 40 empty members named with 60 KB each (under the header bound): 2.4 MB of names that
    # gzip packs into a few KB, a bomb of headers.
    members = [(f"{i:02d}" + "n" * 60_000, b"") for i in range(40)]
    record, set_id = validated(bomb_settings(tmp_path), store, named_tar(PAX, members))
    assert_failed_leaving_only_the_record(store, set_id, record, "max_dataset_unpack_ratio", "the headers of member")
    caps = bomb_settings(tmp_path, max_dataset_unpack_ratio=1e9, max_dataset_unpacked_bytes=1 * MB)
    record, set_id = validated(caps, store, named_tar(GNU, members, "w"))
    assert_failed_leaving_only_the_record(store, set_id, record, "more than 1000000 bytes (max_dataset_unpacked_bytes)")


def pax_records(fields: dict[str, str]) -> bytes:
    """A pax header's body: '<length> <key>=<value>\\n' records, the length counting itself."""
    out = bytearray()
    for key, value in fields.items():
        body = f" {key}={value}\n".encode()
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n += 1
        out += str(n).encode() + body
    return bytes(out)


def test_global_pax_headers_are_bounded_in_all(settings, store):
    """tarfile keeps a global pax header's fields for every member after it: each of these adds
    30 KB of new fields, under the bound one at a time, over it together."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=PAX) as tf:
        for i in range(4):
            body = pax_records({f"comment.{i}.{k}": "c" * 1000 for k in range(30)})
            glob = tarfile.TarInfo("pax_global_header")
            glob.type, glob.size = tarfile.XGLTYPE, len(body)
            tf.addfile(glob, io.BytesIO(body))
            info = tarfile.TarInfo(f"{i}.png")
            data = image(i)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    record, set_id = validated(settings, store, buf.getvalue())
    assert_failed_leaving_only_the_record(store, set_id, record, "global pax headers hold more than 65536 bytes")


@pytest.mark.parametrize("fmt", [GNU, PAX], ids=["gnu", "pax"])
def test_long_names_are_cut_where_stored_and_the_record_and_manifest_stay_small(settings, store, fmt):
    long = "d/" + "x" * 60_000  # under the header bound: read, and cut where kept
    many = SKIPPED_KEPT + 50  # skipped members: more than a manifest lists
    members = [(f"{long}{i}.png", image(i)) for i in range(3)]
    members += [("y" * 300 + "a.png", image(10)), ("y" * 300 + "b.png", image(11))]  # the same once cut
    members += [(f"{long}{i}.txt", b"text") for i in range(3)]
    members += [(f"skip/{i:04d}-" + "s" * 1000, b"text") for i in range(many)]
    record, set_id = validated(settings, store, named_tar(fmt, members))
    assert record.state == ContentSetState.ready and record.count == 5, record.error
    manifest = Stores(store).content_sets.get_manifest(set_id)
    names = [i.name for i in manifest.images]
    assert all(len(n) == NAME_SHOWN and n.endswith("\u2026") for n in names), names
    assert names[0].startswith("d/xxx") and names[3] == names[4] == "y" * (NAME_SHOWN - 1) + "\u2026"
    assert len({i.key for i in manifest.images}) == 5  # two members whose names differ past the cut: both kept
    assert manifest.skipped_count == many + 3 and len(manifest.skipped) == SKIPPED_KEPT
    assert all(len(s.name) <= NAME_SHOWN for s in manifest.skipped)
    assert len(record.skipped) == SKIPPED_SHOWN and all(len(s["name"]) == NAME_SHOWN for s in record.skipped)
    assert stored_bytes(store, Keys.content_meta(set_id)) < RECORD_BOUND
    # Each entry at most a cut name, a cut reason and its key: 1,000 skipped and 5 images.
    assert stored_bytes(store, Keys.content_manifest(set_id)) < (SKIPPED_KEPT + 5) * (NAME_SHOWN + REASON_SHOWN + 200)


def test_a_zip_of_many_long_names_is_counted_bounded_and_cut(tmp_path, store):
    names = [f"{i:02d}/" + "z" * 30_000 + ".png" for i in range(60)]  # a 1.8 MB directory
    archive = zip_of([(name, image(i)) for i, name in enumerate(names)])
    small = Settings(data_dir=tmp_path / "data", max_pixels=100_000, max_dataset_zip_directory_bytes=1 << 20)
    record, set_id = validated(small, store, archive)
    assert_failed_leaving_only_the_record(store, set_id, record, "the zip's directory", "over the limit of 1048576",
                                          "max_dataset_zip_directory_bytes", "refused unread")
    counted = Settings(data_dir=tmp_path / "data", max_pixels=100_000, max_dataset_unpacked_bytes=1_500_000)
    record, set_id = validated(counted, store, archive)
    assert_failed_leaving_only_the_record(store, set_id, record, "max_dataset_unpacked_bytes",
                                          "reached at the zip's directory")
    record, set_id = validated(Settings(data_dir=tmp_path / "data", max_pixels=100_000), store, archive)
    assert record.state == ContentSetState.ready and record.count == 60, record.error
    manifest = Stores(store).content_sets.get_manifest(set_id)
    assert [i.name for i in manifest.images] == [n[:NAME_SHOWN - 1] + "\u2026" for n in names]
    assert stored_bytes(store, Keys.content_manifest(set_id)) < 60 * (NAME_SHOWN + 200)
    assert stored_bytes(store, Keys.content_meta(set_id)) < RECORD_BOUND
