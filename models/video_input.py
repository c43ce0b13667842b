"""What a video input may be, decided from its first bytes, and the one way ffmpeg opens one.

ffmpeg left to itself guesses the format of an input and follows whatever it names: an HLS
playlist or a DASH manifest (recognised by content, whatever the file is called) reads the
segments it lists, a concat/ffconcat list reads the files it lists, `subfile:`/`concat:`/
`http:` URLs open other files or the network, a QuickTime alias (a `dref` atom) opens an
external track. Any of these turns an upload into a read of the server's own files. So:

- `sniff` decides the container from the file's first bytes, before ffmpeg sees it, against an
  allow-list of single-file containers (CONTAINERS); anything else is refused with what it is
  (a playlist, a manifest, a list, text, unknown bytes). The file's name is never consulted.
- `input_args` is how every ffmpeg run in models/video.py opens an input: that one demuxer
  forced (`-f`), no other allowed even for nested opens (`-format_whitelist`), only the `file`
  protocol (`-protocol_whitelist`), the path given as `file:<absolute path>` so no name is
  read as a URL, and for MP4/MOV external references kept off (`-enable_drefs 0`,
  `-use_absolute_path 0`: both are ffmpeg's defaults today; said here so that no default
  change can turn them on). None of the allowed demuxers opens another file, so a forced one
  with these whitelists reads the upload and nothing else. (`-safe` is the concat demuxer's
  option; that demuxer is never allowed, so it has nothing to guard here.)

Torch-free: the API's upload check (service/core/submit.py) calls the same `sniff`.
"""

from __future__ import annotations

import os
from pathlib import Path

SNIFF_BYTES = 4096  # enough for every signature below and to name a manifest's XML


class VideoError(ValueError):
    """A video we cannot (or will not) read or write; the message says what is wrong."""


# ffmpeg demuxer -> what people call it. Single-file containers whose demuxers open nothing
# but their own input. Left out on purpose: HLS, DASH and other manifests, concat lists,
# image sequences, raw elementary streams, and every format not listed (re-wrap into MP4/MKV).
CONTAINERS = {
    "mov": "MP4/MOV",
    "matroska": "Matroska/WebM",
    "avi": "AVI",
    "mpegts": "MPEG-TS",
    "mpeg": "MPEG-PS",
    "ogg": "Ogg",
    "gif": "GIF",
}
ACCEPTED = ", ".join(CONTAINERS.values())

# The first box of an ISO BMFF (MP4) or QuickTime file. `styp`/`sidx` (a DASH/CMAF segment
# without its init segment) are not here: such a file is not a video on its own.
_MOV_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}

# Text that names other files: refused with what it is, so the reason is clear.
_REFERENCING = (
    (lambda t: t.startswith("#EXTM3U"), "an HLS playlist (it names other files to read)"),
    (lambda t: "<MPD" in t or "urn:mpeg:dash" in t, "a DASH manifest (it names other files to read)"),
    (lambda t: t.startswith("ffconcat"), "an ffconcat list (it names other files to read)"),
    (lambda t: any(line.strip().startswith("file ") for line in t.splitlines()[:50]),
     "a concat list (it names other files to read)"),
    (lambda t: "<SmoothStreamingMedia" in t or "<smil" in t.lower(),
     "a streaming manifest (it names other files to read)"),
    (lambda t: t.startswith(("[playlist]", "#EXTINF", "<?wpl")), "a playlist (it names other files to read)"),
)


def _container(head: bytes) -> str | None:
    if len(head) >= 8 and head[4:8] in _MOV_FIRST_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska and WebM
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"\x00\x00\x01\xba"):  # an MPEG-2 program stream's pack header
        return "mpeg"
    for start, size in ((0, 188), (4, 192)):  # transport stream packets (192: M2TS's 4-byte prefix)
        if len(head) > start + 2 * size and all(head[start + i * size] == 0x47 for i in range(3)):
            return "mpegts"
    return None


def _text(head: bytes) -> str | None:
    """The head as text, or None if it is binary."""
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the end of the head
            return None
        text = head[:e.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return text.lstrip("\ufeff \t\r\n") if text and printable >= 0.95 * len(text) else None


def _named(name: str) -> str:
    name = Path(name).name or "the video"
    return name if len(name) <= 80 else name[:77] + "..."  # an uploaded name is the caller's, any length


def sniff(head: bytes, name: str = "the video") -> str:
    """The ffmpeg demuxer for a file beginning with `head` (its first SNIFF_BYTES), one of
    CONTAINERS; VideoError naming what it is otherwise."""
    container = _container(head)
    if container:
        return container
    if not head:
        raise VideoError(f"{_named(name)} is empty")
    text = _text(head)
    if text is not None:
        for matches, what in _REFERENCING:
            if matches(text):
                raise VideoError(f"{_named(name)}: {what}, not a video file; playlists, manifests and lists are "
                                 f"refused: send the video itself as one file ({ACCEPTED})")
        what = "an XML or HTML document" if text.startswith("<") else "text"
    else:
        what = f"its first bytes are {head[:8].hex(' ')}"
    raise VideoError(f"{_named(name)}: not a video file we read ({what}); accepted: {ACCEPTED}")


def sniff_file(path: str | os.PathLike) -> str:
    """`sniff` on a file's first bytes."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise VideoError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise VideoError(f"{p}: a folder, not a video file") from None
    return sniff(head, p.name)


def input_args(path: str | os.PathLike, container: str) -> list[str]:
    """The ffmpeg input options and `-i` for `path` read as `container` (a CONTAINERS key)
    and as nothing else. Goes right before the output options of one ffmpeg command."""
    if container not in CONTAINERS:
        raise VideoError(f"{container!r} is not a container we read; accepted: {', '.join(CONTAINERS)}")
    args = ["-f", container, "-format_whitelist", container, "-protocol_whitelist", "file"]
    if container == "mov":  # external tracks (dref aliases) stay off; ffmpeg's default, kept explicit
        args += ["-enable_drefs", "0", "-use_absolute_path", "0"]
    return [*args, "-i", "file:" + str(Path(path).resolve())]


def open_input(path: str | os.PathLike) -> list[str]:
    """Sniff `path`, then `input_args` for what it is: the only way models/video.py opens an input."""
    return input_args(path, sniff_file(path))
