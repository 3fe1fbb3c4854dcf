"""jaxnst.videoio on tiny clips made here: 10 frames of 32x24 at 10 fps, frame i grey 10 + 20 i with a red
square moving right, and a 440 Hz tone."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxnst import videoio
from jaxnst.errors import JaxnstError
from jaxnst.image import save_image

N, FPS, W, H = 10, 10, 32, 24


def frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    a = np.full((h, w, 3), 10 + 20 * i, np.uint8)
    a[4:12, 2 * i : 2 * i + 8] = (255, 0, 0)
    return a


def index_of(image: np.ndarray) -> int:
    """The frame number written into the grey (bottom-right corner) of a frame."""
    return round((image[-2:, -2:].mean() * 255 - 10) / 20)


def make_clip(path: Path, audio: str | None = "pcm_s16le", rotation: int | None = None) -> Path:
    """A lossless H.264 (4:4:4, qp 0) clip of ``N`` frames, with a tone in ``audio`` (an encoder) for its length."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=FPS, options={"qp": "0"})
        v.width, v.height, v.pix_fmt = W, H, "yuv444p"
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = c.add_stream(audio, rate=44100, layout="mono") if audio else None
        for i in range(N):
            f = av.VideoFrame.from_ndarray(frame(i), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        if a is not None:
            tone = np.sin(2 * np.pi * 440 * np.arange(44100 * N // FPS) / 44100)
            fmt = a.codec_context.format.name
            for j in range(0, len(tone), 1024):
                chunk = tone[None, j : j + 1024]
                chunk = (chunk * 8000).astype(np.int16) if fmt == "s16" else chunk.astype(np.float32) * 0.25
                af = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                af.sample_rate, af.pts = 44100, j
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"mkv": make_clip(d / "pcm.mkv"), "mp4": make_clip(d / "aac.mp4", audio="aac")}


def pngs(folder: Path, count: int, w: int = W, h: int = H) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"f{i}.png" for i in range(count)]
    for i, p in enumerate(paths):
        save_image(frame(i, w, h) / 255.0, p)
    return paths


def audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        (s,) = c.streams.audio
        return float(sum(p.duration or 0 for p in c.demux(s)) * s.time_base)


def refused(fn, *args, **kw) -> str:
    with pytest.raises(JaxnstError) as e:
        fn(*args, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("kind", ["mkv", "mp4"])
def test_open_clip_and_frames(clips, kind):
    clip = videoio.open_clip(clips[kind])
    assert (clip.count, clip.fps, clip.hw, clip.audio, clip.kind) == (N, FPS, (H, W), True, "video")
    got = list(videoio.iter_frames(clip))
    assert len(got) == N and all(g.dtype == np.float32 and g.shape == (H, W, 3) for g in got)
    assert np.abs(np.stack(got) - np.stack([frame(i) for i in range(N)]) / 255.0).max() <= 3 / 255
    small = videoio.open_clip(clips[kind], size=16)
    assert small.hw == (12, 16) and next(videoio.iter_frames(small)).shape == (12, 16, 3)


@pytest.mark.parametrize(
    "selection, want",
    [
        ({"start": 0.35}, [3, 4, 5, 6, 7, 8, 9]),  # the frame shown at 0.35 s, and on
        ({"start": 0.3}, [3, 4, 5, 6, 7, 8, 9]),
        ({"frames": 3}, [0, 1, 2]),
        ({"fps": 5}, [0, 2, 4, 6, 8]),  # dropped
        ({"fps": 20, "frames": 5}, [0, 0, 1, 1, 2]),  # repeated
        ({"start": 0.35, "fps": 5, "frames": 2}, [3, 5]),
        ({"start": 0.95}, [9]),
    ],
)
def test_selection(clips, selection, want):
    clip = videoio.open_clip(clips["mkv"], **selection)
    assert clip.count == len(want) and clip.fps == selection.get("fps", FPS)
    assert [index_of(f) for f in videoio.iter_frames(clip)] == want


def test_rotation_is_applied(tmp_path):
    clip = videoio.open_clip(make_clip(tmp_path / "turned.mp4", audio=None, rotation=90))
    assert clip.hw == (W, H) and not clip.audio
    first = next(videoio.iter_frames(clip))
    assert first.shape == (W, H, 3)
    assert np.allclose(first[28, 6], (1, 0, 0), atol=0.05)  # the square, top left, turned a quarter left


def test_folder_in_natural_order(tmp_path):
    for i, name in enumerate(["frame1.png", "frame2.jpg", "frame10.png"]):
        Image.fromarray(frame(i)).save(tmp_path / name, quality=100)
    (tmp_path / "notes.txt").write_text("not a frame")
    Image.fromarray(frame(7, 8, 8)).save(tmp_path / ".hidden.png")
    clip = videoio.open_clip(tmp_path)
    assert (clip.count, clip.fps, clip.hw, clip.audio, clip.kind) == (3, 24, (H, W), False, "folder")
    assert [index_of(f) for f in videoio.iter_frames(clip)] == [0, 1, 2]
    later = videoio.open_clip(tmp_path, fps=10, start=0.1, frames=1, size=16)
    assert later.count == 1 and later.fps == 10
    assert [(index_of(f), f.shape) for f in videoio.iter_frames(later)] == [(1, (12, 16, 3))]


def test_folder_of_mixed_sizes_refused(tmp_path):
    pngs(tmp_path, 2)
    save_image(frame(2, 30, 20) / 255.0, tmp_path / "f2.png")
    message = refused(videoio.open_clip, tmp_path)
    assert "f0.png is 32x24" in message and "f2.png 30x20" in message


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing", "does not exist"),
        ("empty folder", "has no frames"),
        ("text.mp4", "not a video FFmpeg can read"),
        ("audio only", "has no video stream"),
        ("start past video", "--start 99 is past the end of"),
        ("start past folder", "--start 1 is past the end of"),
        ("fps 0", "--fps 0 must be more than 0"),
        ("start -1", "--start -1 must be 0 or more"),
        ("frames 0", "--frames 0 must be at least 1"),
    ],
)
def test_refusals(clips, tmp_path, case, words):
    pytest.importorskip("av")
    path, kw = tmp_path / "nothing", {}
    if case == "empty folder":
        path = tmp_path
    elif case == "text.mp4":
        path.write_text("this is not a video\n")
    elif case == "audio only":
        import av

        path = tmp_path / "tone.wav"
        with av.open(str(path), "w") as c:
            a = c.add_stream("pcm_s16le", rate=8000, layout="mono")
            f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            f.sample_rate, f.pts = 8000, 0
            c.mux(a.encode(f))
            c.mux(a.encode(None))
    elif case.startswith("start past"):
        path = clips["mkv"] if case.endswith("video") else tmp_path
        kw = {"start": 99.0} if case.endswith("video") else {"start": 1.0}
        if case.endswith("folder"):
            pngs(tmp_path, 3)  # 3 frames at 24 fps: 0.125 s
    elif case != "missing":
        flag, value = case.split()
        path, kw = clips["mkv"], {flag: float(value) if flag != "frames" else int(value)}
    assert words in refused(videoio.open_clip, path, **kw)


def test_early_end_names_the_frame(clips, tmp_path):
    cut = tmp_path / "cut.mkv"
    data = clips["mkv"].read_bytes()
    cut.write_bytes(data)
    clip = videoio.open_clip(cut)
    cut.write_bytes(data[: len(data) // 2])  # changed after opening: fewer frames than the clip says
    with pytest.raises(JaxnstError, match=r"frame \d+"):
        list(videoio.iter_frames(clip))


@pytest.mark.parametrize(
    "suffix, source, codec",
    [(".mp4", "mkv", "aac"), (".mp4", "mp4", "aac"), (".mkv", "mkv", "pcm_s16le"), (".mov", "mp4", "aac"),
     (".webm", "mp4", "opus")],
)  # fmt: skip
def test_write_video_round_trip_with_audio(clips, tmp_path, suffix, source, codec):
    import av

    out = tmp_path / f"out{suffix}"
    videoio.write_video(pngs(tmp_path / "frames", 6), FPS, out, audio_from=clips[source], start=0.2)
    clip = videoio.open_clip(out)
    assert (clip.count, clip.fps, clip.hw, clip.audio) == (6, FPS, (H, W), True)
    got = list(videoio.iter_frames(clip))
    assert np.abs(np.stack(got) - np.stack([frame(i) for i in range(6)]) / 255.0).mean() < 0.02
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == codec
    assert audio_seconds(out) == pytest.approx(0.6, abs=0.05)
    assert [p.name for p in tmp_path.iterdir()] == ["frames", out.name]  # no temporary file left


def test_odd_sizes_are_padded(tmp_path):
    pytest.importorskip("av")
    out = tmp_path / "odd.mp4"
    videoio.write_video(pngs(tmp_path / "frames", 3, 33, 25), 12.5, out)
    clip = videoio.open_clip(out)
    assert (clip.count, clip.fps, clip.hw, clip.audio) == (3, 12.5, (26, 34), False)
    last = next(videoio.iter_frames(clip))
    assert np.abs(last[-1] - last[-2]).max() < 0.05  # the edge row repeated


def test_gif(tmp_path, clips):
    out = tmp_path / "out.gif"
    videoio.write_video(pngs(tmp_path / "frames", 4, 33, 25), 24, out, audio_from=clips["mp4"])  # no sound in a GIF
    with Image.open(out) as img:
        assert (img.n_frames, img.size, img.info["loop"]) == (4, (33, 25), 0)
        durations = []
        for k in range(img.n_frames):
            img.seek(k)
            durations.append(img.info["duration"])
    assert durations == [40, 40, 40, 50]  # 1/24 s in whole centiseconds, without drift


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failed_write_leaves_nothing(tmp_path, suffix):
    if suffix != ".gif":
        pytest.importorskip("av")
    frames = pngs(tmp_path / "frames", 3)
    save_image(frame(3, 16, 16) / 255.0, frames[2])
    out = tmp_path / f"out{suffix}"
    assert "f2.png is 16x16 px" in refused(videoio.write_video, frames, FPS, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    out.write_bytes(b"before")
    refused(videoio.write_video, frames, FPS, out)
    assert out.read_bytes() == b"before" and len(list(tmp_path.iterdir())) == 2


def test_output_kind(tmp_path):
    assert [videoio.output_kind(tmp_path / n) for n in ("a.MP4", "a.mov", "a.mkv", "a.webm", "a.gif")] == ["video"] * 5
    assert videoio.output_kind(tmp_path / "frames") == "folder" and videoio.output_kind(tmp_path) == "folder"
    assert "give a .mp4" in refused(videoio.output_kind, tmp_path / "a.avi")


def test_without_av(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av fails
    (tmp_path / "a.mp4").write_bytes(b"x")
    assert 'pip install "jaxnst[video]"' in refused(videoio.open_clip, tmp_path / "a.mp4")
    frames = pngs(tmp_path / "frames", 2)
    assert videoio.open_clip(tmp_path / "frames").count == 2  # folders and GIFs need no PyAV
    videoio.write_video(frames, FPS, tmp_path / "a.gif")
    assert "jaxnst[video]" in refused(videoio.write_video, frames, FPS, tmp_path / "b.mp4")
