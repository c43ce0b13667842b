"""Video inputs are opened only as what they are (models/video_input.py): hostile files that make
a plain ffmpeg read another local file (HLS, DASH, ffconcat, a `subfile:`/`concat:` URL) are
refused with what they are, and the other file's frames never come back; every accepted
container still stylises. Real ffmpeg (the one imageio-ffmpeg ships), real files, no mocks.

The "secret" is a solid red clip in a folder of its own; the probes look for its red."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from models.transformer_net import TransformerNet
from models.video import VideoError, probe_video, read_video, stylize_video
from models.video_input import CONTAINERS, input_args, sniff, sniff_file

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SIZE = "48x40"


def ffmpeg(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)],
                          capture_output=True, cwd=cwd)


def clip(path: Path, *, source: str = f"testsrc=size={SIZE}:rate=10", codec: tuple[str, ...] = ("-c:v", "libx264",
         "-pix_fmt", "yuv420p"), audio: tuple[str, ...] | None = ("-c:a", "aac")) -> Path:
    args: list[str] = ["-f", "lavfi", "-i", source]
    if audio is not None:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=2", *audio, "-shortest"]
    p = ffmpeg(*args, "-frames:v", "8", *codec, path)
    assert p.returncode == 0, p.stderr.decode()
    return path


def is_red(frame: np.ndarray) -> bool:
    r, g, b = (frame[..., i].astype(int).mean() for i in range(3))
    return r > 200 and g < 60 and b < 60


def first_frame_plain(url: str, cwd: Path) -> np.ndarray | None:
    """What ffmpeg with no restrictions decodes first from `url` (as ffmpeg opened uploads before)."""
    p = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", url, "-frames:v", "1",
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, cwd=cwd)
    return np.frombuffer(p.stdout, np.uint8).reshape(40, 48, 3) if len(p.stdout) == 48 * 40 * 3 else None


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """Another owner's output, say: a file the upload must never be able to read."""
    return clip(tmp_path_factory.mktemp("private") / "secret.mp4", source=f"color=c=red:size={SIZE}:rate=10",
                audio=None)


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(decoder="deconv").eval()


def hls(secret: Path, folder: Path) -> Path:
    (folder / "up.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n")
    return folder / "up.m3u8"


def dash(secret: Path, folder: Path) -> Path:
    """A DASH manifest named .mp4: ffmpeg recognises it by content."""
    (folder / "clip.mp4").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
  <Period duration="PT1S"><AdaptationSet mimeType="video/mp4">
    <Representation id="0" bandwidth="1000" width="48" height="40" codecs="avc1.64000a">
      <BaseURL>file:{secret}</BaseURL>
    </Representation>
  </AdaptationSet></Period>
</MPD>
""")
    return folder / "clip.mp4"


def ffconcat(secret: Path, folder: Path) -> Path:
    (folder / "list.mp4").write_text(f"ffconcat version 1.0\nfile '{secret.name}'\n")
    (folder / secret.name).write_bytes(secret.read_bytes())  # beside it: the concat demuxer's safe mode allows that
    return folder / "list.mp4"


def concat_list(secret: Path, folder: Path) -> Path:
    (folder / "list.txt").write_text(f"file '{secret}'\n")
    return folder / "list.txt"


def hls_subfile(secret: Path, folder: Path) -> Path:
    """An HLS playlist whose segment is a `subfile:` URL into the secret."""
    (folder / "sub.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n"
                                     f"subfile,,start,0,end,0,,:{secret}\n#EXT-X-ENDLIST\n")
    return folder / "sub.m3u8"


HOSTILE = {  # name -> (make, a fragment of the reason it is refused with)
    "hls": (hls, "an HLS playlist"),
    "dash named .mp4": (dash, "a DASH manifest"),
    "ffconcat named .mp4": (ffconcat, "an ffconcat list"),
    "concat list": (concat_list, "a concat list"),
    "hls with a subfile segment": (hls_subfile, "an HLS playlist"),
}


def test_the_hostile_files_read_the_secret_through_a_plain_ffmpeg(secret, tmp_path):
    """The fixtures are real attacks: ffmpeg opened as before this fix returns the secret's red
    (the plain concat list and the subfile segment need options no upload can set, so they are
    shown refused below only)."""
    for name in ("hls", "dash named .mp4", "ffconcat named .mp4"):
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        path = HOSTILE[name][0](secret, folder)
        frame = first_frame_plain(path.name, cwd=folder)
        assert frame is not None and is_red(frame), name


@pytest.mark.parametrize("name", list(HOSTILE))
def test_files_that_name_other_files_are_refused_with_what_they_are(net, secret, tmp_path, name):
    make, reason = HOSTILE[name]
    path = make(secret, tmp_path)
    with pytest.raises(VideoError, match=reason) as refused:
        sniff_file(path)
    assert path.name in str(refused.value) and "send the video itself as one file" in str(refused.value)
    for read in (probe_video, lambda p: next(read_video(p))):
        with pytest.raises(VideoError, match=reason):
            read(path)
    with pytest.raises(VideoError, match=reason):
        stylize_video(net, path, tmp_path / "out" / "styled.mp4")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing written, no temp


@pytest.mark.parametrize("container", list(CONTAINERS))
@pytest.mark.parametrize("name", list(HOSTILE))
def test_no_accepted_demuxer_follows_a_reference_even_past_the_sniff(secret, tmp_path, name, container):
    """The second lock, alone: ffmpeg forced to each accepted container, with the format and
    protocol whitelists, on each hostile file. It fails; no frame of the secret comes out."""
    path = HOSTILE[name][0](secret, tmp_path)
    p = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", *input_args(path, container), "-frames:v", "1",
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, cwd=tmp_path)
    assert p.returncode != 0 and p.stdout == b"", (container, p.stderr.decode()[-500:])


@pytest.mark.parametrize("url_name", ["subfile,,start,0,end,0,,:secret.mp4", "concat:secret.mp4|secret.mp4"])
def test_a_file_named_like_an_ffmpeg_url_is_read_as_that_file(secret, tmp_path, monkeypatch, url_name):
    """Given as a path, `subfile,,...:secret.mp4` or `concat:...` makes a plain ffmpeg read the
    secret; here it is the file of that name (a blue clip) and nothing else."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.mp4").write_bytes(secret.read_bytes())
    clip(tmp_path / "blue.mp4", source=f"color=c=blue:size={SIZE}:rate=10", audio=None)
    (tmp_path / "blue.mp4").rename(tmp_path / url_name)
    plain = first_frame_plain(url_name, cwd=tmp_path)
    assert plain is not None and is_red(plain)  # the attack, against a plain ffmpeg
    frames = list(read_video(Path(url_name)))
    assert len(frames) == 8 and not any(is_red(f) for f in frames)
    assert all(f[..., 2].mean() > 150 for f in frames)  # the blue clip itself


def test_the_sniff_says_what_a_refused_file_is():
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    assert sniff(ftyp) == "mov" and sniff(b"\x1a\x45\xdf\xa3" + bytes(60)) == "matroska"
    assert sniff((b"\x47" + bytes(187)) * 3) == "mpegts" and sniff((bytes(4) + b"\x47" + bytes(187)) * 3) == "mpegts"
    cases = {
        b"": "is empty",
        b"\xef\xbb\xbf  #EXTM3U\n#EXTINF:1,\nseg.ts\n": "an HLS playlist",
        b"<?xml version='1.0'?>\n<MPD xmlns='urn:mpeg:dash:schema:mpd:2011'>": "a DASH manifest",
        b"<?xml version='1.0'?><SmoothStreamingMedia MajorVersion='2'>": "a streaming manifest",
        b"<html><body>hello</body></html>": "not a video file we read (an XML or HTML document)",
        b"plain words": "not a video file we read (text)",
        b"\x89PNG\r\n\x1a\n" + bytes(20): "its first bytes are 89 50 4e 47",
        b"RIFF\x00\x00\x00\x00WAVEfmt ": "not a video file we read",
        b"\x00\x00\x00\x18stypmsdh" + bytes(16): "not a video file we read",  # a DASH segment alone
    }
    for head, fragment in cases.items():
        with pytest.raises(VideoError) as refused:
            sniff(head, "x" * 500 + ".mp4")
        assert fragment in str(refused.value), (head, str(refused.value))
        assert len(str(refused.value)) < 300  # a long uploaded name is cut, not echoed whole


# (suffix, encoder options, audio options or None): one clip per accepted container.
ORDINARY = [
    ("mp4", ("-c:v", "libx264", "-pix_fmt", "yuv420p"), ("-c:a", "aac")),
    ("mov", ("-c:v", "libx264", "-pix_fmt", "yuv420p"), ("-c:a", "aac")),
    ("mkv", ("-c:v", "libx264", "-pix_fmt", "yuv420p"), ("-c:a", "aac")),
    ("webm", ("-c:v", "libvpx", "-b:v", "300k"), ("-c:a", "libopus")),
    ("avi", ("-c:v", "mpeg4"), ("-c:a", "pcm_s16le")),
    ("ts", ("-c:v", "libx264", "-pix_fmt", "yuv420p"), ("-c:a", "aac")),
    ("mpg", ("-c:v", "mpeg2video"), ("-c:a", "mp2")),
    ("ogv", ("-c:v", "libtheora"), ("-c:a", "libvorbis")),
    ("gif", (), None),
]


@pytest.mark.parametrize("suffix, codec, audio", ORDINARY, ids=[o[0] for o in ORDINARY])
def test_every_accepted_container_still_stylises(net, tmp_path, suffix, codec, audio):
    src = clip(tmp_path / f"clip.{suffix}", codec=codec, audio=audio)
    assert sniff_file(src) in CONTAINERS
    result = stylize_video(net, src, tmp_path / "styled.mp4")
    assert (result.frames, result.fps, result.size, result.has_audio) == (8, 10.0, (48, 40), audio is not None)
    out = probe_video(result.output)
    assert (out.frames, out.width, out.height, out.has_audio) == (8, 48, 40, audio is not None)


def test_a_misnamed_video_is_read_by_its_content(net, tmp_path):
    """The name's suffix is never consulted: a Matroska file called .m3u8 is a Matroska file."""
    src = clip(tmp_path / "clip.mkv", audio=None).rename(tmp_path / "clip.m3u8")
    assert sniff_file(src) == "matroska"
    assert probe_video(src).frames == 8
