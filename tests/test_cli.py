"""The CLI as a user runs it: one subprocess run of the console entry, the rest in-process."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxnst.cli import main
from jaxnst.cli.stylize import REFERENCE_STEP_TIMES

FAST = ["--weights", "random", "--size", "32", "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]


def test_the_command_runs_openblas_on_one_thread_unless_told():
    # W2's eigendecompositions run in SciPy's OpenBLAS, whose threads spin against XLA's (docs/benchmarks.md): the
    # command, not the library, asks for one thread before it loads; a user's own setting wins.
    code = "import os, sys, jaxnst.__main__; print(os.environ['OPENBLAS_NUM_THREADS'], 'scipy' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for given, expected in ((None, "1 False"), ("3", "3 False")):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env=env if given is None else {**env, "OPENBLAS_NUM_THREADS": given})  # fmt: skip
        assert r.returncode == 0 and r.stdout.strip() == expected, r.stderr


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, err


@pytest.mark.slow
def test_end_to_end_subprocess(images_dir, tmp_path):
    out = tmp_path / "out.png"
    cmd = [
        sys.executable,
        "-m",
        "jaxnst",
        images_dir / "chelsea.png",
        images_dir / "starry_night.jpg",
        "-o",
        out,
        *FAST,
        "--steps",
        "30",
        "--print-every",
        "10",
    ]
    env = {k: v for k, v in os.environ.items() if k != "JAXNST_COMPILATION_CACHE"}  # as a user runs it: cache on
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert "NOT pretrained" in r.stderr
    cache = Path(env["JAXNST_HOME"]) / "jax-cache"
    assert f"compiling the targets and the step for 32x21 (kept in {cache} for the next run" in r.stderr
    assert len(list(cache.iterdir())) >= 2, "the compiled targets and step are kept for the next run"
    img = Image.open(out)
    assert img.size == (32, 21)  # chelsea is 451x300: the content's aspect ratio
    losses = [float(m) for m in re.findall(r"step\s+\d+/30\s+loss (\S+)", r.stderr)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert re.search(r"wrote .* after 30 steps .* s/step .* on cpu", r.stderr)
    # The cost said before the wait: the first run on this device has nothing to go by and times its steps
    # for the next one, which says how long its steps take.
    # The default step on a CPU: the reference machine's time, 30 steps at 32x21 px.
    guess = re.search(r"no earlier run on this device to time the steps by yet; on the 2-core CPU of "
                      r"docs/benchmarks.md they take about (\d+) s", r.stderr)  # fmt: skip
    ((pixels, rate), *_) = REFERENCE_STEP_TIMES
    assert guess and int(guess[1]) == max(1, round(30 * rate * 32 * 21 / pixels)), r.stderr
    times = json.loads((Path(env["JAXNST_HOME"]) / "step_times.json").read_text())
    ((key, rows),) = times.items()
    assert key.startswith("cpu") and rows[0][0] == 32 * 21 and 0 < rows[0][1] < 60
    again = subprocess.run(
        [str(c) for c in cmd] + ["--overwrite"], capture_output=True, text=True, timeout=600, env=env
    )
    assert again.returncode == 0 and "the steps take about" in again.stderr, again.stderr


def test_the_time_of_the_steps_is_estimated_from_the_nearest_size_measured():
    from jaxnst.cli.stylize import estimate_seconds

    times = {"k": [[100, 0.5], [10000, 2.0], ["junk"], [0, 1.0]]}
    # 200 steps at 120 px (nearest: 100 px at 0.5 s) and 100 at 8000 px (nearest: 10000 px at 2 s)
    assert estimate_seconds(times, "k", [(120, 200), (8000, 100)]) == pytest.approx(200 * 0.6 + 100 * 1.6)
    assert estimate_seconds(times, "other", [(120, 200)]) is None


@pytest.mark.slow
def test_the_bar_shows_the_first_step_at_once(images_dir, tmp_path, capsys):
    """The first block is one step: the bar draws 1/20 when it is done, not 0/20 until the next block ends."""
    argv = [images_dir / "coffee.png", images_dir / "the_scream.jpg", *FAST, "--steps", "20", "-o", tmp_path / "o.png"]
    code, err = run(argv, capsys)
    assert code == 0, err
    drawn = re.findall(r"\b(\d+)/20 \[", err)
    assert "1" in drawn and drawn[-1] == "20", drawn


@pytest.mark.slow
def test_same_seed_same_pixels(images_dir, tmp_path, capsys):
    args = [
        images_dir / "coffee.png",
        images_dir / "the_scream.jpg",
        *FAST,
        "--steps",
        "5",
        "--init",
        "noise",
        "--quiet",
    ]
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, err = run([*args, "--seed", seed, "-o", tmp_path / f"{name}.png"], capsys)
        assert code == 0 and [ln for ln in err.splitlines() if not ln.startswith("WARNING")] == []  # --quiet
        outs.append(np.asarray(Image.open(tmp_path / f"{name}.png")))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


@pytest.mark.slow
def test_save_every_and_jpeg(images_dir, tmp_path, capsys):
    code, _ = run(
        [
            images_dir / "astronaut.png",
            images_dir / "shipwreck.jpg",
            *FAST,
            "--steps",
            "4",
            "--save-every",
            "2",
            "-o",
            tmp_path / "o.jpg",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jpg", "o_2.jpg"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--content-layers", "relu9_1"], "unknown vgg19 layer relu9_1"),
        (["--size", "abc"], "invalid size 'abc': give pixels"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["--steps", "-1"], "--steps -1 must be >= 0"),
        (["--style-blend-weights", "1,2"], "2 --style-blend-weights for 1 style images: give one per style"),
        (["--style-layer-weights", "1,2,3"], "--style-layer-weights gives 3 weights for 2 layers: give one per layer"),
        (["--tv-weight", "-1"], "--tv-weight -1.0 must be >= 0"),
        (["--style-statistic", "cov"], "invalid choice: 'cov'"),
        (["--weights", "missing.h5"], "weight file missing.h5 does not exist"),
        (["--min-size", "8"], "--min-size 8 is too small: use at least 16 pixels"),
        (["--min-size", "x"], "invalid int value: 'x'"),
        (["--initial-steps", "-3"], "--initial-steps -3 must be >= 0"),
        (["--ema", "1"], "--ema 1.0 must be in [0, 1), e.g. 0.99"),
        (["--style-layer-ratio", "0"], "--style-layer-ratio 0.0 must be positive"),
        (["--style-layer-ratio", "1e200"], "--style-layer-ratio 1e+200 must be positive, at most 1e6"),
        (["--size", "1000000000000000000000000000000"], "is too large: use at most 16384 pixels"),
        (["--steps", "1000000000000000000000000000000"], "is too many: use at most 10000000"),
        (["--style-scale", "1e30"], "--style-scale 1e+30 makes styles of"),
        (["--preset", "fast"], "invalid choice: 'fast' (choose from 'draft', 'best', 'gatys', 'crowsonkb')"),
        (["--init", "Noise"], "give content, noise, gray, normal, style, style-stats, or the path of an image file"),
    ],
)
def test_bad_values_exit_2_with_one_line(images_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "o.png"
    code, err = run(
        [
            images_dir / "chelsea.png",
            images_dir / "starry_night.jpg",
            *FAST,
            "--steps",
            "1",
            "-o",
            out,
            *extra,
            "--quiet",
        ],
        capsys,
    )
    assert code == 2
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("jaxnst: error:") and message in lines[0], err
    assert not out.exists()


def test_bad_files_exit_2(images_dir, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    cases = [
        ([tmp_path / "missing.jpg", images_dir / "starry_night.jpg"], "does not exist"),
        ([text, images_dir / "starry_night.jpg"], "is not an image"),
        ([images_dir / "chelsea.png", images_dir / "starry_night.jpg", "-o", tmp_path / "o.gif"], "must end in .png"),
    ]
    for argv, message in cases:
        code, err = run([*argv, *FAST, "--steps", "1", "--quiet"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.png"]


def test_output_given_as_a_style_is_caught(images_dir, tmp_path, capsys, monkeypatch):
    # `jaxnst content style out.png`: out.png is read as a second style unless the CLI says otherwise.
    monkeypatch.chdir(tmp_path)
    argv = [images_dir / "chelsea.png", images_dir / "starry_night.jpg", "out.png", *FAST, "--steps", "1", "--quiet"]
    code, err = run(argv, capsys)
    assert code == 2 and "style image out.png does not exist" in err and "-o out.png" in err, err
    assert not (tmp_path / "out.png").exists()
    # Run again after a run that wrote out.png (the default output): not blended in as a style.
    Image.new("RGB", (8, 8)).save(tmp_path / "out.png")
    code, err = run(argv, capsys)
    assert code == 2 and "style image out.png is also the output file" in err, err
    # `-o` naming the one style: a style, not an output typed without -o, so no "use -o" for it.
    (tmp_path / "starry.jpg").write_bytes((images_dir / "starry_night.jpg").read_bytes())
    code, err = run([images_dir / "chelsea.png", "starry.jpg", "-o", "starry.jpg", *FAST, "--quiet"], capsys)
    assert code == 2 and "output starry.jpg is also the style image starry.jpg" in err and "use -o" not in err, err
    assert "give another -o" in err


@pytest.mark.parametrize("flag", ["--no-download", None])
def test_no_weights_says_where_to_get_them(images_dir, tmp_path, capsys, monkeypatch, flag):
    # Without --no-download the default file is fetched; tests are offline (conftest), so that fails.
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path / "cache"))
    argv = [images_dir / "chelsea.png", images_dir / "starry_night.jpg", "-o", tmp_path / "o.png"]
    code, err = run([*argv, *([flag] if flag else [])], capsys)
    assert code == 2 and "no vgg19 weights in" in err and "https://" in err and "--weights" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_help_lists_every_flag_with_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per help text
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in [
        "--output",
        "--size",
        "--style-scale",
        "--steps",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--content-layers",
        "--style-layers",
        "--gram-norm",
        "--optimizer",
        "--lr",
        "--init",
        "--seed",
        "--pooling",
        "--model",
        "--weights",
        "--save-every",
        "--print-every",
        "--quiet",
        "--style-blend-weights",
    ]:
        assert flag in text, flag
    assert "(default: 512)" in text and "(default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)" in text


@pytest.mark.slow
def test_size_auto_picks_a_size_that_fits(images_dir, tmp_path, capsys, monkeypatch):
    import jaxnst
    import jaxnst.memory as memory

    cfg = jaxnst.Config(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    budget = memory._at(96, (451, 300), [(1024, 640)], cfg).peak
    monkeypatch.setattr(memory, "free_bytes", lambda device=None: int(budget / memory.MARGIN))
    out = tmp_path / "o.png"
    code, err = run(
        [
            images_dir / "chelsea.png",
            images_dir / "starry_night.jpg",
            *FAST,
            "--size",
            "auto",
            "--steps",
            "1",
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    size = int(re.search(r"--size auto: (\d+) px", err)[1])
    assert 64 <= size <= 96 and max(Image.open(out).size) == size


@pytest.mark.slow
def test_size_auto_also_keeps_within_the_time_budget(images_dir, tmp_path, capsys, monkeypatch):
    import jaxnst.memory as memory

    monkeypatch.setattr(memory, "seconds_per_step", lambda *a, **k: 1.0)  # as if 1 s per step at 256 px
    out = tmp_path / "o.png"
    args = [images_dir / "chelsea.png", images_dir / "starry_night.jpg", *FAST, "--size", "auto", "--steps", "30",
            "--min-size", "none"]  # fmt: skip
    code, err = run([*args, "--time-budget", "0.25", "-o", out], capsys)
    assert code == 0, err
    # 15 s for 30 steps of 1 s x (S / 256)^2: S = 256 / sqrt(2) = 181, so 160 (a multiple of 32).
    assert "--size auto: 160 px, set by --time-budget 0.25 min (memory allows" in err, err
    assert re.search(r"the run takes about \d+ min here, after the \d+ s this choice took\)", err), err
    assert max(Image.open(out).size) == 160
    code, err = run([*args, "--time-budget", "0", "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "--time-budget 0.0 must be a positive number of minutes" in err
