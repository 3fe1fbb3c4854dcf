"""``jaxnst video`` as a user runs it: a clip in, a clip and its frames out, resumed, and refused."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_videoio import audio_seconds, make_clip

from jaxnst.cli import main
from jaxnst.image import load_image

pytest.importorskip("cv2")
pytest.importorskip("av")

FAST = ["--weights", "random", "--size", "32", "--steps", "4", "--content-layers", "relu2_1",
        "--style-layers", "relu1_1,relu2_1", "--quiet"]  # fmt: skip


def run(argv, capsys):
    code = main(["video", *map(str, argv)])
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if not ln.startswith("WARNING: --weights random")]


@pytest.fixture
def style(images_dir, tmp_path):
    return images_dir / "starry_night.jpg"


@pytest.mark.slow
def test_a_clip_with_sound_in_and_out_then_resumed_to_the_same_frames(tmp_path, style, capsys):
    clip = make_clip(tmp_path / "in.mp4", audio="aac")  # 10 frames of 32x24 at 10 fps, a tone
    out = tmp_path / "out.mp4"
    code, err = run([clip, style, "-o", out, "--frames", "4", *FAST], capsys)
    assert code == 0 and err == [], err
    frames = tmp_path / "out_frames"
    assert sorted(p.name for p in frames.iterdir()) == [*(f"frame_{k:05d}.png" for k in range(4)), "record.json"]
    record = json.loads((frames / "record.json").read_text())
    assert record["command"] == "video" and record["frames"] == 4 and record["content"] == str(clip)
    import av

    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == 4 and c.streams.video[0].width == 32
    assert abs(audio_seconds(out) - 0.4) < 0.1  # the input's sound, for the frames taken
    whole = [load_image(frames / f"frame_{k:05d}.png") for k in range(4)]
    # As if stopped after frame 1: the last frames gone, the video not yet made. --resume ends as the whole run.
    for k in (2, 3):
        (frames / f"frame_{k:05d}.png").unlink()
    out.unlink()
    code, err = run([clip, style, "-o", out, "--frames", "4", *FAST, "--resume"], capsys)
    assert code == 0 and out.exists(), err
    for k in range(4):
        np.testing.assert_array_equal(load_image(frames / f"frame_{k:05d}.png"), whole[k])
    # Other flags on resume are refused; without --resume the frames are kept.
    code, err = run([clip, style, "-o", out, "--frames", "4", *FAST, "--resume", "--temporal-weight", "5"], capsys)
    assert code == 2 and "were made with other settings or inputs" in err[0]
    code, err = run([clip, style, "-o", tmp_path / "out_frames", "--frames", "4", *FAST], capsys)
    assert code == 2 and "holds frames of an earlier run: add --resume" in err[0]


@pytest.mark.slow
def test_a_signal_keeps_the_finished_frames(tmp_path, style, images_dir):
    folder = tmp_path / "pan"
    folder.mkdir()
    photo = load_image(images_dir / "tubingen.jpg", 96)
    for k in range(12):
        Image.fromarray((photo[8:40, 3 * k : 3 * k + 48] * 255).round().astype(np.uint8)).save(folder / f"{k}.png")
    out = tmp_path / "frames"
    cmd = [sys.executable, "-m", "jaxnst", "video", str(folder), str(style), "-o", str(out), *FAST]
    env = {**os.environ, "JAXNST_COMPILATION_CACHE": "0"}
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    while not (out / "frame_00001.png").exists() and p.poll() is None:
        pass
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()
    assert p.wait(timeout=120) == 130, err
    assert "stopped by SIGINT after" in err and "run the same command with --resume" in err
    n = len(list(out.glob("frame_*.png")))
    assert 2 <= n < 12 and not list(out.glob(".*"))  # finished frames, no half-written one
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and len(list(out.glob("frame_*.png"))) == 12, r.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "v.mp4").write_text("not a video"), "is not a video FFmpeg can read"),
        (lambda d: (d / "v").mkdir(), "has no frames"),
        (lambda d: make_clip(d / "v.mp4", audio=None), "--start 99"),
    ],
)
def test_bad_clips_are_one_line(tmp_path, style, capsys, make, message):
    make(tmp_path)
    src = next(p for p in tmp_path.iterdir())
    extra = ["--start", "99"] if message.startswith("--start") else []
    code, err = run([src, style, "-o", tmp_path / "o.mp4", *FAST, *extra], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o_frames").exists()


def test_outputs_that_are_inputs_and_mixed_frames_are_refused(tmp_path, style, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    Image.new("RGB", (32, 24)).save(folder / "1.png")
    Image.new("RGB", (30, 24)).save(folder / "2.png")
    code, err = run([folder, style, "-o", folder, *FAST], capsys)
    assert code == 2 and "is also an input" in err[0]
    code, err = run([folder, style, "-o", tmp_path / "o.mp4", *FAST], capsys)
    assert code == 2 and "1.png" in err[0] and "2.png" in err[0], err
    code, err = run([folder, style, "-o", tmp_path / "o.avi", *FAST], capsys)
    assert code == 2 and len(err) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
