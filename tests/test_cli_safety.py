"""The user's work is never lost: inputs never overwritten, outputs checked first, interrupts save, resume."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxnst.cli import main

FAST = ["--weights", "random", "--size", "32", "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("jaxnst: error:"), err
    return lines[0]


@pytest.fixture
def pair(images_dir, tmp_path):
    """A content and a style copied into tmp_path (so a test may try to overwrite them)."""
    c, s = tmp_path / "content.png", tmp_path / "style.jpg"
    c.write_bytes((images_dir / "chelsea.png").read_bytes())
    s.write_bytes((images_dir / "starry_night.jpg").read_bytes())
    return c, s


@pytest.mark.parametrize("which", ["content", "init"])
def test_an_input_is_never_the_output(pair, tmp_path, capsys, which):
    c, s = pair
    before = c.read_bytes()
    extra = ["--init", c] if which == "init" else []
    target = c
    if which == "init":
        other = tmp_path / "other.png"
        other.write_bytes(c.read_bytes())
        c = other
    code, err = run([c, s, *FAST, "--steps", "1", "-o", target, "--overwrite", *extra, "--quiet"], capsys)
    assert code == 2 and f"is also the {which} image" in one_error_line(err)
    assert target.read_bytes() == before


@pytest.mark.slow
def test_an_existing_output_is_kept_unless_overwrite(pair, tmp_path, capsys):
    c, s = pair
    out = tmp_path / "out.png"
    out.write_bytes(b"earlier work")
    code, err = run([c, s, *FAST, "--steps", "1", "-o", out, "--quiet"], capsys)
    assert code == 2 and "out.png exists: add --overwrite" in one_error_line(err)
    assert out.read_bytes() == b"earlier work"
    code, _ = run([c, s, *FAST, "--steps", "1", "-o", out, "--quiet", "--overwrite"], capsys)
    assert code == 0 and Image.open(out).size == (32, 21)


@pytest.mark.parametrize(
    ("output", "message"),
    [("/proc/jaxnst-out.png", "cannot write in /proc"), ("folder.png", "is a folder: give a file name")],
)
def test_an_unwritable_output_fails_before_the_run(pair, tmp_path, capsys, monkeypatch, output, message):
    c, s = pair
    (tmp_path / "folder.png").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("jaxnst.image.load_image", lambda *a, **k: pytest.fail("an image was read"))
    code, err = run([c, s, *FAST, "--steps", "1", "-o", output, "--quiet"], capsys)
    assert code == 2 and message in one_error_line(err)


@pytest.mark.parametrize(("flag", "value"), [("--lr", "inf"), ("--style-weight", "nan"), ("--style-scale", "inf")])
def test_non_finite_values_are_refused(pair, tmp_path, capsys, flag, value):
    c, s = pair
    code, err = run([c, s, *FAST, "-o", tmp_path / "o.png", flag, value, "--quiet"], capsys)
    assert code == 2 and f"{flag} {float(value)} must be a finite number" in one_error_line(err)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_a_failed_snapshot_warns_and_the_run_goes_on(pair, tmp_path, capsys, monkeypatch):
    import jaxnst.image

    real = jaxnst.image.save_image

    def flaky(image, path, **kw):
        if "_2" in str(path):
            raise OSError(28, "No space left on device")
        return real(image, path, **kw)

    monkeypatch.setattr(jaxnst.image, "save_image", flaky)
    c, s = pair
    code, err = run([c, s, *FAST, "--steps", "4", "--save-every", "2", "-o", tmp_path / "o.png"], capsys)
    assert code == 0 and "could not write the snapshot at step 2 (No space left on device); going on" in err
    assert (tmp_path / "o.png").exists()


def test_an_output_that_fails_at_the_end_is_rescued(pair, tmp_path, capsys, monkeypatch):
    import jaxnst.image

    real = jaxnst.image.save_image

    def full_disk(image, path, **kw):
        if "rescued" not in str(path):
            raise OSError(28, "No space left on device")
        return real(image, path, **kw)

    monkeypatch.setattr(jaxnst.image, "save_image", full_disk)
    c, s = pair
    code, err = run([c, s, *FAST, "--steps", "2", "-o", tmp_path / "o.png", "--quiet"], capsys)
    line = one_error_line(err)
    assert code == 2 and "could not write" in line and "No space left on device" in line
    rescued = line.rsplit("the result is in ", 1)[1]
    assert Image.open(rescued).size == (32, 21) and not (tmp_path / "o.png").exists()
    # The next rescue of the same name keeps the first; a rescue that fails too is one line.
    code, err = run([c, s, *FAST, "--steps", "3", "-o", tmp_path / "o.png", "--quiet"], capsys)
    second = one_error_line(err).rsplit("the result is in ", 1)[1]
    assert code == 2 and second != rescued and Image.open(second).size == (32, 21)
    assert not np.array_equal(np.asarray(Image.open(second)), np.asarray(Image.open(rescued)))
    monkeypatch.setattr(jaxnst.image, "save_image", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    code, err = run([c, s, *FAST, "--steps", "2", "-o", tmp_path / "o.png", "--quiet"], capsys)
    assert code == 2 and "nor a copy in" in one_error_line(err) and "free some space" in err


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
@pytest.mark.slow
def test_checkpoint_and_resume_give_the_uninterrupted_pixels(pair, tmp_path, capsys, optimizer):
    c, s = pair
    args = [c, s, *FAST, "--optimizer", optimizer, "--init", "noise", "--quiet"]
    assert run([*args, "--steps", "6", "-o", tmp_path / "whole.png"], capsys)[0] == 0
    assert run([*args, "--steps", "3", "--checkpoint-every", "3", "-o", tmp_path / "part.png"], capsys)[0] == 0
    ckpt = tmp_path / "part.ckpt.npz"
    assert ckpt.exists()
    code, err = run([*args, "--steps", "6", "--resume", ckpt, "-o", tmp_path / "part.png"], capsys)
    assert code == 0, err
    whole, resumed = (np.asarray(Image.open(tmp_path / n)) for n in ("whole.png", "part.png"))
    np.testing.assert_array_equal(resumed, whole)
    # --size auto resumes at the size the checkpoint's run picked, without picking again.
    with pytest.MonkeyPatch.context() as m:
        m.setattr("jaxnst.memory.auto_size", lambda *a, **k: pytest.fail("picked a size again"))
        again = [*args, "--steps", "6", "--resume", ckpt, "--size", "auto", "-o", tmp_path / "auto.png"]
        code, err = run(again, capsys)
    assert code == 0, err
    # Another run's checkpoint is refused, with the flag that differs.
    code, err = run([*args, "--steps", "6", "--resume", ckpt, "--style-weight", "7", "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "was made with --style-weight 1.0, this run has 7.0" in one_error_line(err)
    # ...or with other images under the same names; and an output edited since is never replaced.
    edited = tmp_path / "part.png"
    Image.open(edited).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(edited)
    before = edited.read_bytes()
    code, err = run([*args, "--steps", "6", "--resume", ckpt, "-o", edited], capsys)
    assert code == 2 and "is not the image checkpoint" in one_error_line(err) and edited.read_bytes() == before
    Image.open(s).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(s)
    code, err = run([*args, "--steps", "6", "--resume", ckpt, "-o", tmp_path / "y.png"], capsys)
    assert code == 2 and "was made from other images" in one_error_line(err) and not (tmp_path / "y.png").exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.slow
def test_a_signal_saves_the_image_and_a_checkpoint(pair, tmp_path, sig, code):
    """A real process, stopped after its first step: it saves and exits 128 + signal; --resume goes on."""
    c, s = pair
    out = tmp_path / "o.png"
    cmd = [sys.executable, "-m", "jaxnst", str(c), str(s), *FAST, "--steps", "100000", "--print-every", "1"]
    env = {**os.environ, "JAXNST_COMPILATION_CACHE": "0"}
    p = subprocess.Popen([*cmd, "-o", str(out)], stderr=subprocess.PIPE, text=True, env=env)
    for line in p.stderr:
        if line.startswith("step "):  # a step is done: the loop is running
            p.send_signal(sig)
            break
    err = p.stderr.read()
    assert p.wait(timeout=120) == code, err
    assert f"stopped by {signal.Signals(sig).name} at step" in err and "--resume" in err
    ckpt = tmp_path / "o.ckpt.npz"
    assert Image.open(out).size == (32, 21) and ckpt.exists()
    r = subprocess.run([*cmd[:-4], "--steps", "12", "--resume", str(ckpt), "-o", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_a_signal_before_the_run_leaves_at_once(pair, tmp_path):
    """Ctrl-C during JAX's import (an ImportError traceback, a C++ abort, or swallowed by JAX's gc
    callback and the run went on) and during ``--size auto``'s timing (a segfault): one line, 130."""
    code = "import jaxnst.__main__, os, signal; os.kill(os.getpid(), signal.SIGINT); import jax; print('went on')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (130, "", "jaxnst: interrupted\n")
    c, s = pair
    cmd = [sys.executable, "-m", "jaxnst", str(c), str(s), *FAST, "--size", "auto", "-o", str(tmp_path / "o.png")]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "JAXNST_COMPILATION_CACHE": "0"})
    assert "--size auto: timing a step" in p.stderr.readline()
    p.send_signal(signal.SIGINT)
    assert (p.wait(timeout=120), p.stderr.read()) == (130, "jaxnst: interrupted\n")
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted([c.name, s.name])


@pytest.mark.slow
def test_a_closed_stderr_is_no_failure(pair, tmp_path):
    """Started with `2>&-`: the progress bar failed on it (exit 1, no message); errors now go to stdout."""
    c, s = pair
    # The shell closes fd 2 (a preexec_fn would fork this multithreaded process).
    cmd = ["sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, "-m", "jaxnst", str(c), str(s), *FAST, "--steps", "2"]
    closed = {"stdout": subprocess.PIPE, "text": True, "timeout": 120}
    r = subprocess.run([*cmd, "-o", str(tmp_path / "o.png")], **closed)
    assert r.returncode == 0 and "wrote" in r.stdout and (tmp_path / "o.png").exists()
    r = subprocess.run([*cmd, "-o", str(tmp_path / "o.png")], **closed)
    assert r.returncode == 2 and "jaxnst: error: " in r.stdout and "o.png exists" in r.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--style-weight", "1e30", "--preset", "gatys"],  # the Gram's fourth powers overflow Adam
            "the image did not change in 4 steps, so nothing was written: --style-weight 1e+30",
        ),
        (["--lr", "5"], "--lr 5.0 is too large for pixels in [0, 1]"),
        # With the default moving average the image's float noise once passed for a change (exit 0).
        (["--lr", "1e-30"], "the image did not change in 4 steps, so nothing was written: --lr 1e-30 is too small"),
        (["--style-weight", "1e30"], "the image did not change in 4 steps, so nothing was written: --style-weight"),
        (["--size", "16", "--style-layers", "relu5_1"], "layer relu5_1 needs at least 16 px on each side"),
    ],
)
@pytest.mark.slow
def test_useless_runs_fail_with_the_cause(pair, tmp_path, capsys, extra, message):
    c, s = pair
    code, err = run([c, s, *FAST, "--steps", "4", "-o", tmp_path / "o.png", *extra, "--quiet"], capsys)
    assert code == 2 and message in one_error_line(err)
    assert list(tmp_path.glob("o*")) == []


def test_a_nan_in_the_weight_file_is_named(pair, tmp_path, capsys):
    import jaxnst

    w = jaxnst.random_weights("vgg19", seed=0)
    w.params["conv1_2"]["bias"] = w.params["conv1_2"]["bias"].at[3].set(float("nan"))
    jaxnst.save_weights(w, tmp_path / "nan.h5")
    c, s = pair
    args = [c, s, *FAST[2:], "--weights", tmp_path / "nan.h5", "--steps", "3", "-o", tmp_path / "o.png", "--quiet"]
    code, err = run(args, capsys)
    line = one_error_line(err)
    assert code == 2 and "nan.h5: conv1_2/bias holds NaN or infinite values: the file is damaged" in line
    assert not (tmp_path / "o.png").exists()


def test_a_one_pixel_high_panorama_is_refused_by_the_library(vgg19):
    import jaxnst

    with pytest.raises(jaxnst.JaxnstError, match="content image is 64x1 px: layer relu2_1 needs at least 2 px"):
        jaxnst.stylize(np.ones((1, 64, 3)), [np.ones((16, 16, 3))], vgg19, jaxnst.Config(
            steps=1, content_layers=("relu2_1",), style_layers=("relu1_1",)))  # fmt: skip


def test_out_of_memory_is_one_line(pair, tmp_path, capsys, monkeypatch):
    def oom(*a, **k):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123456789 bytes.")

    monkeypatch.setattr(sys.modules["jaxnst.single"], "stylize", oom)
    c, s = pair
    code, err = run([c, s, *FAST, "--steps", "2", "-o", tmp_path / "o.png", "--quiet"], capsys)
    assert code == 2 and "out of memory at --size 32 (32x21 px)" in one_error_line(err)
    assert not (tmp_path / "o.png").exists()


def test_checkpoint_files_are_checked(pair, tmp_path, capsys):
    c, s = pair
    args = [c, s, *FAST, "--steps", "2", "--quiet"]
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    code, err = run([*args, "--resume", tmp_path / "junk.npz", "-o", tmp_path / "a.png"], capsys)
    assert code == 2 and "junk.npz is not a jaxnst checkpoint" in one_error_line(err)
    (tmp_path / "b.ckpt.npz").write_bytes(b"an earlier run's checkpoint")
    code, err = run([*args, "-o", tmp_path / "b.png"], capsys)
    assert code == 2 and "b.ckpt.npz exists (an earlier run's checkpoint): --resume it, or add --overwrite" in err
    assert (tmp_path / "b.ckpt.npz").read_bytes() == b"an earlier run's checkpoint"


@pytest.mark.parametrize("seed", [2**64, 2**32, -1])
def test_a_seed_a_jax_key_cannot_hold_is_refused(pair, tmp_path, capsys, seed):
    """A key holds 32 bits: seed 2**32 once gave seed 0's image."""
    c, s = pair
    code, err = run([c, s, *FAST, "--seed", str(seed), "-o", tmp_path / "o.png", "--quiet"], capsys)
    assert code == 2 and f"--seed {seed} is too large or negative: give 0 to 4294967295" in one_error_line(err)


def test_no_steps_at_all_is_refused(pair, tmp_path, capsys):
    c, s = pair
    code, err = run([c, s, *FAST, "--steps", "0", "-o", tmp_path / "o.png", "--quiet"], capsys)
    assert code == 2 and "--steps 0 (and no --initial-steps) would write the start image" in one_error_line(err)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_the_png_records_its_run_and_reproduce_remakes_it(pair, tmp_path, capsys):
    import json

    c, s = pair
    out = tmp_path / "o.png"
    assert run([c, s, *FAST, "--steps", "3", "--init", "noise", "--seed", "5", "-o", out, "--quiet"], capsys)[0] == 0
    rec = json.loads(Image.open(out).text["jaxnst"])
    assert rec["content"] == str(c.resolve()) and rec["config"]["seed"] == 5 and rec["config"]["steps"] == 3
    assert rec["weights"] == "random" and len(rec["weights_sha256"]) == 64
    code, err = run(["reproduce", out, "--quiet"], capsys)
    assert code == 0 and "o_reproduced.png has the same pixels as" in err, err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o_reproduced.png")), np.asarray(Image.open(out)))
    Image.open(out).save(tmp_path / "plain.png")  # the pixels without the record
    code, err = run(["reproduce", tmp_path / "plain.png"], capsys)
    assert code == 2 and "plain.png has no jaxnst record" in one_error_line(err)
    assert rec["record"] == 2 and rec["command"] == "stylize"
    # A record written before records had a version still reproduces; its output path is never used.
    old = {k: v for k, v in rec.items() if k not in ("record", "command")}
    save_with_record(out, tmp_path / "old.png", {**old, "output": str(tmp_path / "elsewhere.png")})
    code, err = run(["reproduce", tmp_path / "old.png", "--quiet"], capsys)
    assert code == 0 and "old_reproduced.png has the same pixels" in err and not (tmp_path / "elsewhere.png").exists()


def test_an_older_record_keeps_the_schedule_it_ran():
    """A version 1 record knew no middle_steps: its middle scales took --steps, and so they do again; a
    version 2 record without it takes the default."""
    from jaxnst.config import Config, scale_schedule
    from jaxnst.record import read_record

    base = {"content": "/c.png", "styles": ["/s.png"], "output": "/o.png", "weights": None, "weights_sha256": "x"}
    old = read_record({**base, "record": 1, "config": {"initial_steps": 320, "steps": 160}}, "old.png")["config"]
    assert scale_schedule(Config(**old)) == [(128, 320), (181, 160), (256, 160), (362, 160), (512, 160)]
    new = read_record({**base, "record": 2, "config": {"steps": 160}}, "new.png")["config"]
    m = Config.middle_steps
    assert scale_schedule(Config(**new))[1:] == [(181, m), (256, m), (362, m), (512, 160)]


def save_with_record(src, dst, record: dict) -> None:
    """``src``'s pixels in ``dst`` with ``record`` as its jaxnst text chunk."""
    import json

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("jaxnst", json.dumps(record))
    Image.open(src).save(dst, pnginfo=info)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: {**r, "config": {**r["config"], "output": "EVIL", "overwrite": True}}, "with settings this jaxnst"),
        (lambda r: {**r, "styles": ["--output=EVIL"]}, "image --output=EVIL does not exist"),
        (lambda r: {**r, "config": {**r["config"], "init": "--output=EVIL"}}, "--init --output=EVIL: give content"),
        (lambda r: {**r, "style_coarse": ["--output=EVIL"]}, "the record's style_coarse is damaged"),
        (lambda r: {**r, "config": {**r["config"], "size": "big"}}, "its record's size 'big' is not a whole number"),
        (lambda r: {**r, "record": 3}, "has a record of version 3"),
        (lambda r: {**r, "styles": "s.png"}, "its jaxnst record is damaged"),
        (lambda r: {**r, "content_masks": [3]}, "the record's content_masks is damaged"),
        # The web page's and batch's records run again as a batch: their sweep is data too.
        (lambda r: {**r, "command": "serve", "sweep": {"model": ["vgg16"]}}, "its sweep is not one the page makes"),
        (lambda r: {**r, "command": "serve", "sweep": {"seed": list(range(1000))}}, "its sweep is not one the page"),
        (lambda r: {**r, "command": "serve", "sweep": {"seed": [1, "x"]}}, "seed 'x' is not a whole number"),
        (lambda r: {**r, "command": "serve", "sweep": {"seed": [7, 8]}}, "its settings are not one of its sweep's"),
        (lambda r: {**r, "command": "serve", "styles": ["--output=EVIL"]}, "--output=EVIL does not exist"),
        (lambda r: {**r, "command": "batch", "bucket": [24, 32]}, "has no bucket multiple"),
        (lambda r: {"command": "serve", "record": 0, "config": r["config"]}, "whose record holds only the settings"),
    ],
)
@pytest.mark.slow
def test_a_record_never_chooses_an_output_or_a_flag(pair, tmp_path, capsys, change, message):
    """A record is data from a file: a crafted one is one line, exit 2, and nothing is written."""
    import json

    c, s = pair
    out = tmp_path / "o.png"
    assert run([c, s, *FAST, "--steps", "1", "-o", out, "--quiet"], capsys)[0] == 0
    evil = tmp_path / "evil.png"
    rec = json.loads(json.dumps(change(json.loads(Image.open(out).text["jaxnst"]))).replace("EVIL", str(evil)))
    save_with_record(out, tmp_path / "crafted.png", rec)
    before = sorted(tmp_path.iterdir())
    code, err = run(["reproduce", tmp_path / "crafted.png"], capsys)
    assert code == 2 and message.replace("EVIL", str(evil)) in one_error_line(err)
    assert sorted(tmp_path.iterdir()) == before and not evil.exists()


def test_trace_version_and_init_choices(pair, tmp_path, capsys):
    import json

    import jaxnst

    c, s = pair
    out, trace = tmp_path / "o.png", tmp_path / "t.json"
    code, _ = run([c, s, *FAST, "--steps", "3", "--print-every", "2", "-o", out, "--trace", trace, "--quiet"], capsys)
    assert code == 0
    t = json.loads(trace.read_text())
    assert [e["step"] for e in t["losses"]] == [1, 2, 3] and t["steps"] == 3 and "reached" in t["stopped"]
    assert set(t["final"]) == {"loss", "content", "style", "tv"} and t["config"]["steps"] == 3
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"jaxnst {jaxnst.__version__}"
    code, err = run([c, s, *FAST, "--init", "Noise", "-o", tmp_path / "n.png"], capsys)
    choices = "content, noise, gray, normal, style, style-stats"
    assert code == 2 and f"--init Noise: give {choices}, or the path of an image file" in err


def test_a_second_signal_quits_at_once(capsys):
    """The first SIGINT/SIGTERM asks for a stop at the block's end; the second raises at once,
    which ``main`` turns into exit 130; the handlers are restored afterwards."""
    from jaxnst.cli.stylize import stop_requests

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_requests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop == {"signum": signal.SIGTERM}
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the second signal did not stop the run")
    assert signal.getsignal(signal.SIGINT) is before
    assert "again to quit without saving" in capsys.readouterr().err


def test_a_signal_after_the_last_step_still_writes_the_image(pair, tmp_path, capsys, monkeypatch):
    """Ctrl-C between the last step and the write once lost the finished run (the handler was gone)."""
    import jaxnst.cli.stylize as cli_stylize

    real = cli_stylize._save

    def save_after_a_signal(*a):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*a)

    monkeypatch.setattr(cli_stylize, "_save", save_after_a_signal)
    c, s = pair
    code, err = run([c, s, *FAST, "--steps", "2", "-o", tmp_path / "o.png", "--quiet"], capsys)
    assert code == 0 and Image.open(tmp_path / "o.png").size == (32, 21), err


def test_keyboard_interrupt_is_exit_130_and_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("jaxnst.cli.run_stylize", interrupted)
    code, err = run(["c.png", "s.png"], capsys)
    assert code == 130 and err == "jaxnst: interrupted\n"


@pytest.mark.slow
def test_a_multiscale_run_stopped_mid_scale_resumes_to_the_same_pixels(pair, tmp_path, capsys, monkeypatch):
    """Coarse to fine with a moving average: a stop at the second scale saves a checkpoint of that
    scale; --resume finishes the run as if it had not stopped. Lines name the scale's size."""
    c, s = pair
    args = [c, s, *FAST, "--min-size", "16", "--initial-steps", "4", "--middle-steps", "3", "--steps", "3",
            "--ema", "0.5", "--print-every", "2"]  # fmt: skip
    code, err = run([*args, "-o", tmp_path / "whole.png"], capsys)
    assert code == 0, err
    assert "scales 16, 23, 32 px, at most 4, 3, 3 adam steps (10 in all)" in err
    assert "step     6/10 at 23x15" in err and "step    10/10 at 32x21" in err

    class StopAtFifthBlock(dict):  # as if Ctrl-C came during the fifth block (steps 1, 2, 4 | 5, 6 of 7)
        calls = 0

        def get(self, key, default=None):
            self.calls += 1
            if self.calls == 5:
                self[key] = signal.SIGINT
            return super().get(key, default)

    import contextlib

    monkeypatch.setattr("jaxnst.cli.stylize.stop_requests", lambda: contextlib.nullcontext(StopAtFifthBlock()))
    code, err = run([*args, "-o", tmp_path / "part.png"], capsys)
    assert code == 130 and "stopped by SIGINT at step 6/10" in err, err
    assert Image.open(tmp_path / "part.png").size == (23, 15)
    monkeypatch.undo()
    code, err = run([*args, "--resume", tmp_path / "part.ckpt.npz", "-o", tmp_path / "part.png"], capsys)
    assert code == 0 and "resuming" in err and "at step 6" in err, err
    whole, resumed = (np.asarray(Image.open(tmp_path / n)) for n in ("whole.png", "part.png"))
    np.testing.assert_array_equal(resumed, whole)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serv"], "no command 'serv' and no such image: did you mean `jaxnst serve`?"),
        (["wieghts", "list"], "did you mean `jaxnst weights`?"),
        (["reproduc", "x.png"], "did you mean `jaxnst reproduce`?"),
    ],
)
def test_a_mistyped_command_is_named(argv, message, capsys):
    code, err = run(argv, capsys)
    assert code == 2 and message in one_error_line(err)


def test_a_trace_into_a_missing_folder_is_refused_before_the_run(pair, tmp_path, capsys):
    c, s = pair
    code, err = run([c, s, *FAST, "--trace", tmp_path / "no" / "t.json", "-o", tmp_path / "o.png"], capsys)
    assert code == 2 and "--trace folder" in one_error_line(err) and "does not exist" in err
    assert not (tmp_path / "o.png").exists()
