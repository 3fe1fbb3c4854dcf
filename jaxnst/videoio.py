"""Video in and out for ``jaxnst video``: a clip (a video file or a folder of frames) as float32 RGB frames,
and PNG frames encoded back into a video (H.264, VP9 or GIF) with the source's audio.

Videos are read and written with PyAV (the ``video`` extra), imported only when a video is touched.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from jaxnst._files import atomic_path
from jaxnst.errors import JaxnstError
from jaxnst.image import fit_long_side, image_size, load_image

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FOLDER_FPS = 24.0
MAX_FPS = 1000.0
# output suffix -> (FFmpeg container format, video encoder); .gif is written by Pillow
CONTAINERS = {".mp4": ("mp4", "libx264"), ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264"),
              ".webm": ("webm", "libvpx-vp9")}  # fmt: skip
VIDEO_SUFFIXES = (*CONTAINERS, ".gif")
ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"},
                   "libvpx-vp9": {"crf": "30", "b:v": "0", "row-mt": "1", "cpu-used": "4"}}  # fmt: skip
AUDIO_ENCODER = {"webm": "libopus"}  # else AAC
# audio codecs copied into an .mp4 (players take these there); other containers take what FFmpeg muxes into them
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac"}
_EPS = 1e-6  # seconds: timestamps this close count as equal
_READABLE = "give an .mp4, .mov, .mkv, .webm, .avi, ... or a folder of frames"


class Clip(NamedTuple):
    """An opened clip: what ``iter_frames`` will yield."""

    path: Path
    fps: float  # frames per second of the selection
    count: int  # frames that iter_frames yields
    hw: tuple[int, int]  # (height, width) of each frame
    audio: bool  # the source has an audio stream
    kind: str  # "video" or "folder"
    start: float = 0.0  # seconds skipped
    picks: tuple = ()  # what iter_frames reads, in order: frame numbers of the video (repeats kept), or frame files

    def __repr__(self) -> str:
        return (f"Clip(path={str(self.path)!r}, fps={self.fps:g}, count={self.count}, hw={self.hw}, "
                f"audio={self.audio}, kind={self.kind!r}, start={self.start:g})")  # fmt: skip


def _av():
    try:
        import av
    except ImportError:
        raise JaxnstError('jaxnst video needs the video extra (av is missing): pip install "jaxnst[video]"') from None
    return av


def output_kind(out: str | os.PathLike) -> str:
    """What ``out`` is: "video" for a .mp4, .mov, .mkv, .webm or .gif path; "folder" (of PNG frames) for
    an existing folder or a path without a suffix."""
    out = Path(out)
    if out.is_dir():
        return "folder"
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    if not out.suffix:
        return "folder"
    raise JaxnstError(f"output {out}: give a .mp4, .mov, .mkv, .webm or .gif file, or a folder (a path without "
                      "a suffix) for PNG frames")  # fmt: skip


# -- reading -----------------------------------------------------------------------------------------------


def open_clip(
    path: str | os.PathLike,
    *,
    size: int | None = None,
    fps: float | None = None,
    start: float = 0.0,
    frames: int | None = None,
) -> Clip:
    """Opens a video file or a folder of frames, reading only timestamps and headers (and a video's first
    frame). ``size``: long side in px; ``fps``: frames per second to take (a video's frames dropped or
    repeated by timestamp; a folder's rate, default 24); ``start``: seconds to skip; ``frames``: at most
    this many."""
    _check_values(size, fps, start, frames)
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise JaxnstError(f"{path} does not exist: check the path") from None
    except OSError as e:
        raise JaxnstError(f"{path} cannot be read ({e.strerror}): check the path and its permissions") from None
    if stat.S_ISDIR(mode):
        return _open_folder(path, size, fps, start, frames)
    if not stat.S_ISREG(mode):
        raise JaxnstError(f"{path} is not a regular file: {_READABLE}")
    return _open_video(path, size, fps, start, frames)


def _check_values(size, fps, start, frames) -> None:
    if size is not None and not size >= 1:
        raise JaxnstError(f"--size {size} must be at least 1 (pixels)")
    if fps is not None and not 0 < fps <= MAX_FPS:
        raise JaxnstError(f"--fps {fps:g} must be more than 0 and at most {MAX_FPS:g} (frames per second)")
    if not 0 <= start < math.inf:
        raise JaxnstError(f"--start {start:g} must be 0 or more (seconds)")
    if frames is not None and frames < 1:
        raise JaxnstError(f"--frames {frames} must be at least 1")


def _pick(times: Sequence[float], end: float, fps: float | None, start: float, frames: int | None) -> list[int]:
    """Indices into ``times`` (sorted frame times in seconds, the first 0; the clip ends at ``end``) of the
    frames shown at ``start`` and after: each frame, or with ``fps`` the one shown at each tick of that rate.

    >>> _pick([0.0, 0.1, 0.2, 0.3], 0.4, None, 0.15, None)
    [1, 2, 3]
    >>> _pick([0.0, 0.1, 0.2, 0.3], 0.4, 5.0, 0.0, None), _pick([0.0, 0.1, 0.2, 0.3], 0.4, 20.0, 0.0, 3)
    ([0, 2], [0, 0, 1])
    """
    limit = math.inf if frames is None else frames
    shown = lambda t: max(0, bisect.bisect_right(times, t + _EPS) - 1)
    if start >= end - _EPS:
        return []
    if fps is None:
        first = shown(start)
        return list(range(first, min(len(times), first + limit)))
    picks, k = [], 0
    while len(picks) < limit and start + k / fps < end - _EPS:
        picks.append(shown(start + k / fps))
        k += 1
    return picks


def _natural_key(name: str) -> tuple:
    """``frame2`` before ``frame10``: runs of digits compare as numbers."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _frame_files(path: Path) -> list[Path]:
    """The image files in the folder ``path`` (not hidden ones), in natural order."""
    try:
        files = [f for f in path.iterdir() if f.suffix.lower() in FRAME_SUFFIXES and not f.name.startswith(".")]
    except OSError as e:
        raise JaxnstError(f"folder {path} cannot be read ({e.strerror}): check its permissions") from None
    return sorted((f for f in files if f.is_file()), key=lambda f: _natural_key(f.name))


def _open_folder(path: Path, size, fps, start, frames) -> Clip:
    files = _frame_files(path)
    if not files:
        raise JaxnstError(f"folder {path} has no frames ({', '.join(FRAME_SUFFIXES)} files): put the frames in it, "
                          "or give a video file")  # fmt: skip
    fps = FOLDER_FPS if fps is None else float(fps)
    picks = _pick([i / fps for i in range(len(files))], len(files) / fps, None, start, frames)
    if not picks:
        raise _past_end(start, path, f"{len(files)} frames at {fps:g} fps: {len(files) / fps:.3g} s")
    chosen = [files[i] for i in picks]
    wh = image_size(chosen[0])
    for f in chosen[1:]:
        other = image_size(f)
        if other != wh:
            raise JaxnstError(f"the frames in {path} differ in size: {chosen[0].name} is {wh[0]}x{wh[1]} px, "
                              f"{f.name} {other[0]}x{other[1]}: give frames of one size")  # fmt: skip
    w, h = wh if size is None else fit_long_side(wh, size)
    return Clip(path, fps, len(chosen), (h, w), False, "folder", float(start), tuple(chosen))


def _past_end(start: float, path: Path, length: str) -> JaxnstError:
    return JaxnstError(f"--start {start:g} is past the end of {path} ({length}): give a smaller --start")


def _unreadable(path: Path, e: Exception) -> JaxnstError:
    if isinstance(e, PermissionError):
        return JaxnstError(f"{path} cannot be read (permission denied): check its permissions")
    why = getattr(e, "strerror", None) or e.__class__.__name__
    return JaxnstError(f"{path} is not a video FFmpeg can read ({why}): {_READABLE}")


def _open_container(path: Path):
    av = _av()
    try:
        return av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, OSError, ValueError, UnicodeError) as e:
        raise _unreadable(path, e) from None


def _video_stream(container, path: Path):
    """The first video stream that is not a cover picture."""
    av = _av()
    attached = av.stream.Disposition.attached_pic
    for s in container.streams.video:
        if not s.disposition & attached:
            s.thread_type = "AUTO"
            return s
    raise JaxnstError(f"{path} has no video stream (only {_stream_kinds(container)}): give a video file, "
                      "or a folder of frames")  # fmt: skip


def _stream_kinds(container) -> str:
    kinds = sorted({s.type for s in container.streams} - {"video"})
    return ", ".join(kinds) if kinds else "no streams"


def _open_video(path: Path, size, fps, start, frames) -> Clip:
    av = _av()
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        ts, durations, first = [], [], None
        try:
            for packet in container.demux(stream):
                t = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or packet.is_discard:
                    continue
                ts.append(t)
                durations.append(packet.duration or 0)
                if first is None:
                    first = next(iter(packet.decode()), None)
            if first is None:
                first = next(iter(stream.decode(None)), None)
        except (av.FFmpegError, ValueError) as e:
            n = f" at frame {len(ts)}" if ts else ""
            why = getattr(e, "strerror", None) or e
            raise JaxnstError(f"{path} is damaged{n} ({why}): {_READABLE}") from None
        if first is None:
            raise JaxnstError(f"{path} has no video frame FFmpeg can decode: {_READABLE}")
        keys, times, end = _times(ts, durations, stream.time_base, _rate(stream.guessed_rate))
        picks = _pick(times, end, fps, start, frames)
        if not picks:
            raise _past_end(start, path, f"{end:.3g} s")
        w, h = _display_size(first, stream)
        if size is not None:
            w, h = fit_long_side((w, h), size)
        clip_fps = float(fps) if fps is not None else _clip_rate(len(times) / end, stream)
        audio = bool(container.streams.audio)
    return Clip(path, clip_fps, len(picks), (h, w), audio, "video", float(start), tuple(keys[i] for i in picks))


def _rate(r) -> float | None:
    return float(r) if r and r > 0 else None


def _clip_rate(measured: float, stream) -> float:
    """Frames per second: the stream's stated rate if it is within 1 % of the frames' count over the clip's
    length (``measured``; exact for 30000/1001), else that."""
    for r in (_rate(stream.average_rate), _rate(stream.guessed_rate)):
        if r and abs(r / measured - 1) < 0.01:
            return r
    return measured


def _times(ts: list, durations: list, time_base, rate: float | None) -> tuple[list[int], list[float], float]:
    """The frames' keys (their timestamps sorted, or their numbers in a stream without timestamps), their
    times in seconds (the first at 0), and the clip's end."""
    step = 1.0 / rate if rate else 1.0 / 25
    if None in ts or time_base is None:  # a raw stream: frames one after the other at ``rate``
        return list(range(len(ts))), [i * step for i in range(len(ts))], len(ts) * step
    order = sorted(range(len(ts)), key=ts.__getitem__)
    keys = [ts[i] for i in order]
    times = [float((t - keys[0]) * time_base) for t in keys]
    last = float(durations[order[-1]] * time_base) or step
    return keys, times, times[-1] + last


def _display_size(frame, stream) -> tuple[int, int]:
    """(width, height) the frame is shown at: non-square pixels stretched, a rotation applied."""
    w, h = frame.width, frame.height
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        w = max(1, round(w * float(sar)))
    return (h, w) if _quarter_turns(frame) % 2 else (w, h)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that show the frame upright (its display matrix)."""
    try:
        return round((frame.rotation or 0) / 90) % 4
    except (ValueError, TypeError):
        return 0


_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def iter_frames(clip: Clip) -> Iterator[np.ndarray]:
    """The clip's frames in order, float32 RGB (H, W, 3) in [0, 1] of size ``clip.hw``."""
    if clip.kind == "folder":
        yield from _folder_frames(clip)
    else:
        yield from _video_frames(clip)


def _folder_frames(clip: Clip) -> Iterator[np.ndarray]:
    for f in clip.picks:
        image = load_image(f, max(clip.hw))
        if image.shape[:2] != clip.hw:
            h, w = image.shape[:2]
            raise JaxnstError(f"frame {f} is now {w}x{h} px after resizing, unlike the clip's "
                              f"{clip.hw[1]}x{clip.hw[0]}: give frames of one size")  # fmt: skip
        yield image


def _video_frames(clip: Clip) -> Iterator[np.ndarray]:
    """Each pick is served by the frame shown at its time: the last decoded one with a key (timestamp, or
    number) not after it. A frame the decoder drops (a GOP cut short) is so replaced by its neighbour."""
    picks, k, shown, image, n = clip.picks, 0, None, None, -1  # the next pick; the frame shown until the next
    with contextlib.closing(_decoded(clip)) as frames:
        for n, frame in enumerate(frames):
            key = frame.pts if frame.pts is not None else n
            while k < len(picks) and picks[k] < key:
                if image is None:
                    image = _to_rgb(frame if shown is None else shown, clip.hw)  # none before: the first
                yield image.copy()
                k += 1
            if k == len(picks):
                return
            shown, image = frame, None
    if shown is None:
        raise JaxnstError(f"{clip.path} has no video frame FFmpeg can decode now: {_READABLE}")
    last = shown.pts if shown.pts is not None else n
    if len({p for p in picks[k:] if p > last}) > 1:  # the decoder may drop the last frame; not more
        raise JaxnstError(f"{clip.path} ended at frame {k} of the {len(picks)} selected: it is truncated or "
                          "damaged; re-encode it, or give --frames")  # fmt: skip
    image = _to_rgb(shown, clip.hw)
    for _ in range(k, len(picks)):
        yield image.copy()


def _decoded(clip: Clip) -> Iterator:
    """The decoded frames of the clip's video stream; the file is closed when the iterator is."""
    av = _av()
    with _open_container(clip.path) as container:
        frames = container.decode(_video_stream(container, clip.path))
        for n in itertools.count():
            try:
                frame = next(frames, None)
            except (av.FFmpegError, ValueError) as e:
                why = getattr(e, "strerror", None) or e
                raise JaxnstError(f"{clip.path} is damaged at its frame {n} ({why}): re-encode or repair it, "
                                  "or leave that part out with --start/--frames") from None  # fmt: skip
            if frame is None:
                return
            yield frame


def _to_rgb(frame, hw: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(frame.to_ndarray(format="rgb24"), "RGB")
    turns = _quarter_turns(frame)
    if turns:
        img = img.transpose(_TURNS[turns])
    if img.size != (hw[1], hw[0]):
        img = img.resize((hw[1], hw[0]), Image.Resampling.LANCZOS)
    return np.asarray(img, np.float32) / 255.0


# -- writing -----------------------------------------------------------------------------------------------


def write_video(
    frames: Sequence[str | os.PathLike],
    fps: float,
    out: str | os.PathLike,
    *,
    audio_from: str | os.PathLike | None = None,
    start: float = 0.0,
) -> None:
    """Encodes the image files ``frames`` (all of one size) at ``fps`` into ``out``, atomically: .mp4, .mov
    and .mkv as H.264 (yuv420p, crf 18), .webm as VP9, .gif with Pillow (looping). Odd sizes are padded
    to even ones with the edge pixels (4:2:0 needs them; not for .gif). With ``audio_from``, its audio from
    ``start`` s for the clip's length comes along: copied where the container takes its codec, else encoded
    as AAC (Opus in .webm). A GIF has no sound: the audio is left out."""
    out = Path(out)
    if output_kind(out) != "video" or out.is_dir():
        raise JaxnstError(f"output {out} must be a .mp4, .mov, .mkv, .webm or .gif file")
    if not frames:
        raise JaxnstError(f"no frames to write to {out}: the clip is empty")
    if not 0 < fps <= MAX_FPS:
        raise JaxnstError(f"--fps {fps:g} must be more than 0 and at most {MAX_FPS:g} (frames per second)")
    if not out.parent.is_dir():
        raise JaxnstError(f"output folder {out.parent} does not exist: create it first")
    if out.suffix.lower() == ".gif":
        _write_gif(frames, fps, out)
    else:
        _write_av(frames, fps, out, audio_from, start)


def _frames_8bit(frames: Sequence[str | os.PathLike]) -> Iterator[np.ndarray]:
    """Each frame file as uint8 RGB; one of another size than the first is a ``JaxnstError``."""
    shape = None
    for f in frames:
        a = np.round(load_image(f) * 255).astype(np.uint8)
        if shape is not None and a.shape != shape:
            raise JaxnstError(f"frame {f} is {a.shape[1]}x{a.shape[0]} px, unlike the first "
                              f"({shape[1]}x{shape[0]}): give frames of one size")  # fmt: skip
        shape = a.shape
        yield a


def _write_gif(frames, fps: float, out: Path) -> None:
    images = [Image.fromarray(a, "RGB") for a in _frames_8bit(frames)]
    cs = [round(i * 100 / fps) for i in range(len(images) + 1)]  # GIF times are in centiseconds: no drift
    durations = [max(1, b - a) * 10 for a, b in zip(cs, cs[1:], strict=False)]
    with atomic_path(out) as tmp:
        images[0].save(tmp, "GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)


def _encoder(av, name: str, suffix: str):
    try:
        return av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        raise JaxnstError(f"the FFmpeg in PyAV has no {name} encoder (for {suffix}): install PyAV's own wheel "
                          "(pip install --force-reinstall av), or give another output format") from None  # fmt: skip


def _write_av(frames, fps: float, out: Path, audio_from, start: float) -> None:
    av = _av()
    fmt, codec = CONTAINERS[out.suffix.lower()]
    _encoder(av, codec, out.suffix)
    rate = Fraction(fps).limit_denominator(1001)
    pixels = _frames_8bit(frames)
    first = _pad_even(next(pixels))
    with atomic_path(out) as tmp:
        with av.open(tmp, "w", format=fmt) as output:
            stream = output.add_stream(codec, rate=rate, options=ENCODER_OPTIONS[codec])
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = "yuv420p"
            cc = stream.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709, as the frames are converted
            cc.color_range = 1  # limited (MPEG) range
            audio = _audio_packets(av, output, Path(audio_from), start, len(frames) / fps) if audio_from else []
            k = 0  # the next audio packet
            try:
                for i, a in enumerate(_chain(first, map(_pad_even, pixels))):
                    while k < len(audio) and audio[k][0] <= i / fps:  # interleaved by time
                        output.mux(audio[k][1])
                        k += 1
                    frame = av.VideoFrame.from_ndarray(a, format="rgb24")
                    frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
                    frame.pts = i
                    frame.time_base = 1 / rate
                    output.mux(stream.encode(frame))
                output.mux(stream.encode(None))
                for _, packet in audio[k:]:
                    output.mux(packet)
            except av.FFmpegError as e:
                raise JaxnstError(f"encoding {out} failed ({e.strerror or e}): check the disk space, or give "
                                  "another output format") from None  # fmt: skip


def _chain(first, rest):
    yield first
    yield from rest


def _pad_even(a: np.ndarray) -> np.ndarray:
    """``a`` with its last row and/or column repeated to make both sides even (4:2:0 chroma needs it)."""
    h, w = a.shape[:2]
    return np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else a


def _audio_packets(av, output, source: Path, start: float, duration: float) -> list:
    """The audio of ``source`` from ``start`` s for ``duration`` s as packets of a new stream of ``output``,
    each with its time in s: copied where the container takes the codec, else encoded (AAC, or Opus in
    WebM). Times count from the source's video stream, as the frames' do."""
    with _open_container(source) as src:
        if not src.streams.audio:
            return []
        audio = src.streams.audio[0]
        video = [s for s in src.streams.video if s.start_time is not None]
        zero = video[0].start_time * video[0].time_base if video else (audio.start_time or 0) * audio.time_base
        t0, t1 = float(zero) + start, float(zero) + start + duration
        try:
            copies = MP4_AUDIO if output.format.name == "mp4" else output.supported_codecs
            if audio.codec_context.name in copies:
                return _copy_audio(src, audio, output.add_stream_from_template(audio), t0, t1)
            return _encode_audio(av, src, audio, output, t0, t1)
        except (av.FFmpegError, ValueError) as e:
            raise JaxnstError(f"the audio of {source} cannot be read ({getattr(e, 'strerror', None) or e}): "
                              "repair it, or remove its audio") from None  # fmt: skip


def _copy_audio(src, audio, stream, t0: float, t1: float) -> list:
    tb = audio.time_base
    shift = round(t0 / tb)
    packets = []
    for packet in src.demux(audio):
        if packet.size == 0 or packet.pts is None:
            continue
        t = float(packet.pts * tb)
        if t < t0 - _EPS:
            continue
        if t >= t1 - _EPS:
            break
        packet.pts -= shift
        packet.dts = packet.pts if packet.dts is None else packet.dts - shift
        packet.stream = stream
        packets.append((t - t0, packet))
    return packets


def _encode_audio(av, src, audio, output, t0: float, t1: float) -> list:
    name = AUDIO_ENCODER.get(output.format.name, "aac")
    codec = _encoder(av, name, Path(output.name).suffix)
    rates = codec.audio_rates
    rate = audio.sample_rate if not rates or audio.sample_rate in rates else max(rates)
    stream = output.add_stream(name, rate=rate, layout="stereo" if audio.channels > 1 else "mono")
    packets, at = [], None  # the next frame's first sample, counted from t0
    for frame in src.decode(audio):
        if frame.time is None or frame.time < t0 - _EPS:
            continue
        if frame.time >= t1 - _EPS:
            break
        if at is None:
            at = round((frame.time - t0) * frame.sample_rate)
        frame.pts, frame.time_base = at, Fraction(1, frame.sample_rate)  # gapless, whatever the source's rounding
        at += frame.samples
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return [(float(p.pts * p.time_base) if p.pts is not None else 0.0, p) for p in packets]
