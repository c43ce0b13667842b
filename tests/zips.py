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


def long_name_tar_gz(fmt: str, name_bytes: int, *, members: int = 2, data: bytes = b"x") -> bytes:
    """A tar.gz of `members` members each named with `name_bytes` bytes, written as tarfile
    writes a long name in its format: 'gnu', a ././@LongLink member before the header; 'pax', an
    extended header holding `path`. Made a megabyte at a time: the names are never held whole
    (two 100 MiB names gzip to about 200 KB)."""
    import tarfile
    import zlib

    gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    out = bytearray()

    def write(chunk: bytes) -> None:
        out.extend(gz.compress(chunk))

    def block_padding(size: int) -> bytes:
        return bytes(-size % tarfile.BLOCKSIZE)

    for i in range(members):
        fill, head = b"abcdefghijklmnopqrstuvwxyz"[i % 26:][:1], f"{i}/".encode()
        if fmt == "gnu":
            size = name_bytes + 1  # NUL-terminated
            info = tarfile.TarInfo("././@LongLink")
            info.type, info.size = tarfile.GNUTYPE_LONGNAME, size
            write(info.tobuf(tarfile.GNU_FORMAT))
            prefix, suffix = head, b"\0"
        else:
            body = len(" path=") + name_bytes + 1  # the record: '<length> path=<name>\n'
            size = body + len(str(body))
            size += len(str(size)) - len(str(body))
            info = tarfile.TarInfo(f"PaxHeaders/{i}")
            info.type, info.size = tarfile.XHDTYPE, size
            write(info.tobuf(tarfile.USTAR_FORMAT))
            prefix, suffix = f"{size} path=".encode() + head, b"\n"
        write(prefix)
        left = name_bytes - len(head)
        while left > 0:
            n = min(left, len(ZEROS))
            write(fill * n)
            left -= n
        write(suffix + block_padding(size))
        member = tarfile.TarInfo(f"{i}.txt")  # the short name the long one replaces
        member.size = len(data)
        write(member.tobuf(tarfile.USTAR_FORMAT) + data + block_padding(len(data)))
    write(bytes(2 * tarfile.BLOCKSIZE))
    out.extend(gz.flush())
    return bytes(out)
