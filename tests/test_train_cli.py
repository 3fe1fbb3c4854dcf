"""``jaxnst train`` and ``jaxnst apply`` end to end, on tiny photos, a tiny network and a truncated VGG."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest
from loopback import free_port
from PIL import Image

from jaxnst import fast
from jaxnst.cli import main

pytestmark = pytest.mark.slow  # each test trains (a few steps)

TINY = ["--steps", "4", "--batch", "2", "--crop", "16", "--width", "4", "--blocks", "1", "--checkpoint-every", "2",
        "--samples", "1", "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--style-statistic",
        "gram", "--ops", "lax", "--weights", "random", "--quiet"]  # fmt: skip


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    for k in range(4):
        Image.fromarray(rng.integers(0, 255, (24 + k, 30, 3), dtype=np.uint8)).save(
            (photos / "more" if k % 2 else photos) / f"p{k}.png"
        )
    style = tmp_path / "style.png"
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(style)
    return photos, style


def params(path):
    return [np.asarray(a) for a in jax.tree.leaves(fast.load_model(path).params)]


def test_train_writes_a_model_samples_and_a_loss_plot_and_resume_equals_one_run(tmp_path, data, capsys):
    photos, style = data
    whole = tmp_path / "whole.h5"
    assert main(["train", str(style), "-o", str(whole), "--data", str(photos), *TINY]) == 0
    model = fast.load_model(whole)
    assert model.info["steps_done"] == 4 and model.info["photos"] == 3 and model.info["held_out"] == 1
    assert model.net == fast.TransformNet(4, 1)
    assert Image.open(tmp_path / "whole_loss.png").size == (640, 360)
    assert sorted(p.name for p in (tmp_path / "whole_samples").iterdir()) == [
        "sample0_step000002.png", "sample0_step000004.png"]  # fmt: skip

    parts = tmp_path / "parts.h5"
    half = [*TINY]
    half[1] = "2"
    assert main(["train", str(style), "-o", str(parts), "--data", str(photos), *half]) == 0
    assert main(["train", str(style), "-o", str(parts), "--data", str(photos), *TINY, "--resume"]) == 0
    for a, b in zip(params(whole), params(parts), strict=True):
        np.testing.assert_array_equal(a, b)

    capsys.readouterr()
    assert main(["train", str(style), "-o", str(parts), "--data", str(photos), *TINY, "--resume",
                 "--style-weight", "7"]) == 2  # fmt: skip
    assert "other loss" in capsys.readouterr().err
    assert main(["train", str(style), "-o", str(parts), "--data", str(photos), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err


def test_a_corrupt_photo_is_skipped_and_counted(tmp_path, data, capsys):
    photos, style = data
    (photos / "more" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    out = tmp_path / "m.h5"
    args = [a for a in TINY if a != "--quiet"]
    assert main(["train", str(style), "-o", str(out), "--data", str(photos), *args, "--steps", "6"]) == 0
    assert fast.load_model(out).info["skipped"] == 1
    assert "1 photos could not be read and were skipped" in capsys.readouterr().err


def test_apply_paints_odd_sizes_folders_and_refuses_what_is_not_a_model(tmp_path, data, capsys):
    photos, style = data
    model = tmp_path / "m.h5"
    assert main(["train", str(style), "-o", str(model), "--data", str(photos), *TINY]) == 0
    odd = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (13, 21, 3), dtype=np.uint8)).save(odd)
    assert main(["apply", str(model), str(odd), "-o", str(tmp_path / "out.png")]) == 0
    assert Image.open(tmp_path / "out.png").size == (21, 13)
    assert main(["apply", str(model), str(odd), "-o", str(tmp_path / "out.png")]) == 2  # exists
    assert main(["apply", str(model), str(photos / "more"), "-o", str(tmp_path / "folder"), "--preserve-color"]) == 0
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["p1.png", "p3.png"]

    capsys.readouterr()
    not_model = tmp_path / "w.h5"
    with h5py.File(not_model, "w") as f:
        f.attrs["format"] = "jaxnst-vgg"
    for bad in (not_model, odd, tmp_path / "missing.h5"):
        assert main(["apply", str(bad), str(odd), "-o", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err
        assert not (tmp_path / "x.png").exists()
    assert main(["apply", str(model), str(odd), "-o", str(odd), "--overwrite"]) == 2
    assert "also an input" in capsys.readouterr().err


def test_apply_paints_a_clip_and_keeps_its_sound(tmp_path, data):
    av = pytest.importorskip("av")
    from test_videoio import N, make_clip

    photos, style = data
    model = tmp_path / "m.h5"
    assert main(["train", str(style), "-o", str(model), "--data", str(photos), *TINY]) == 0
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "painted.mp4"
    assert main(["apply", str(model), str(clip), "-o", str(out), "--quiet"]) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == N and len(c.streams.audio) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no frames left behind


ROOT = Path(__file__).resolve().parents[1]


def child_env(tmp_path) -> dict:
    """The environment of a `python -m jaxnst` child: this checkout, CPU only, one device, a home of its own."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", JAXNST_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_two_processes_train_as_one_process_with_two_devices(tmp_path, data):
    # jax.distributed over 127.0.0.1, one CPU device each; each process decodes its own row of each batch.
    photos, style = data
    env = child_env(tmp_path)
    cmd = [sys.executable, "-m", "jaxnst", "train", str(style), "--data", str(photos), *TINY]
    (tmp_path / "two").mkdir()
    two = tmp_path / "two" / "m.h5"
    hosts = [*cmd, "-o", str(two), "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    procs = [subprocess.Popen([*hosts, "--process-id", str(i)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]  # fmt: skip
    try:
        logs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], logs
    one = tmp_path / "one.h5"
    two_devices = {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    r = subprocess.run([*cmd, "-o", str(one)], env=two_devices, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    # Two devices sum two gradients in either order alike; the processes' programs are the devices' programs.
    for a, b in zip(params(one), params(two), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == ["m.h5", "m.h5.ckpt.npz", "m_loss.png", "m_samples"]  # one set: process 0's


def test_distributed_flags_that_cannot_start_say_so_in_one_line(tmp_path, data):
    photos, style = data
    env = child_env(tmp_path)
    cmd = [sys.executable, "-m", "jaxnst", "train", str(style), "--data", str(photos), "-o", str(tmp_path / "m.h5"),
           *TINY]  # fmt: skip
    bad_id = ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "7"]
    for flags, says in ((["--num-processes", "2"], "coordinator"), (bad_id, "process_id")):
        r = subprocess.run([*cmd, *flags], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "style.png"]  # nothing written
