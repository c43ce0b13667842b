"""Archives made by the tests: good ones, and the hostile kinds (headers that lie about sizes,
bzip2 members, many bombs in one request), built without holding their content in memory."""

from __future__ import annotations

import io
import struct
import zipfile

ZEROS = bytes(1 << 20)


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def bomb(unpacked_mib: int, *, claimed_size: int | None = None, name: str = "bomb.png",
         method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A member of `unpacked_mib` MiB of zeros (deflate packs it to about a thousandth, bzip2 to
    a few hundred bytes); with `claimed_size`, its headers say it unpacks to that many bytes."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name)
    info.compress_type = method
    with zipfile.ZipFile(buf, "w") as z:
        with z.open(info, "w") as w:
            for _ in range(unpacked_mib):
                w.write(ZEROS)
    data = bytearray(buf.getvalue())
    if claimed_size is not None:
        local = data.find(b"PK\x03\x04")
        struct.pack_into("<I", data, local + 22, claimed_size)  # local header: uncompressed size
        central = data.find(b"PK\x01\x02")
        struct.pack_into("<I", data, central + 24, claimed_size)  # central directory: the same
    return bytes(data)
