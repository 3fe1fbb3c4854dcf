"""``jaxnst batch`` as a user runs it (in-process through ``jaxnst.cli.main``)."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxnst.batch import grid_configs
from jaxnst.cli import main
from jaxnst.cli.batch import SWEEPABLE, parse_sweeps
from jaxnst.config import INIT_CHOICES, Config, validate

FAST = ["--weights", "random", "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--quiet"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_every_content_with_every_style_grid_and_trace(images_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(
        ["batch", "--content", images_dir / "chelsea.png", images_dir / "[w]*.jpg", "--style"]
        + [images_dir / "starry_night.jpg", images_dir / "the_scream.jpg", "--out", out, "--grid", *FAST]
        + ["--size", 32, "--steps", 4, "--every", 2, "--bucket-multiple", 8],
        capsys,
    )
    assert code == 0, err
    names = [f"{c}__{s}.png" for c in ("chelsea", "woman-with-hat-matisse") for s in ("starry_night", "the_scream")]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "grid.png", "trace.json"])
    # Each output has its content's size (451x300 and 591x800 at 32 px), not its bucket's.
    assert {Image.open(out / n).size for n in names[:2]} == {(32, 21)}
    assert {Image.open(out / n).size for n in names[2:]} == {(24, 32)}
    grid = Image.open(out / "grid.png")
    assert grid.width > 2 * 192 and grid.height > 2 * 192  # 2 rows x 2 columns, plus labels
    trace = json.loads((out / "trace.json").read_text())
    assert [it["output"] for it in trace["items"]] == names
    for it in trace["items"]:
        assert [e["step"] for e in it["losses"]] == [1, 2, 4] and it["steps"] == 4  # the first step, then every 2
        assert set(it["final"]) == {"loss", "content", "style", "tv"}
        assert it["bucket"] == ([24, 32] if it["shape"] == [21, 32] else [32, 24])
    rec = json.loads(Image.open(out / names[0]).text["jaxnst"])  # each image records its run
    assert rec["command"] == "batch" and rec["content"].endswith("chelsea.png") and rec["bucket"] == [24, 32]
    assert rec["styles"][0].endswith("starry_night.jpg") and rec["config"]["steps"] == 4
    # `jaxnst reproduce` runs the item again as a batch of one at its bucket.
    code, err = run(["reproduce", out / names[0], "--quiet"], capsys)
    assert code == 0 and "has the same pixels as" in err, err


@pytest.mark.slow
def test_a_rerun_keeps_finished_items_and_does_the_rest(images_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", "--content", images_dir / "chelsea.png", "--style", images_dir / "starry_night.jpg"]
    args += [images_dir / "the_scream.jpg", "--out", out, *FAST, "--size", 32, "--steps", 2, "--quiet"]
    assert run([*args, "--grid"], capsys)[0] == 0
    kept, redo = out / "chelsea__starry_night.png", out / "chelsea__the_scream.png"
    before = kept.read_bytes()
    redo.unlink()  # as if the first run had stopped before it
    code, err = run([*args, "--grid"], capsys)
    assert code == 0, err
    assert kept.read_bytes() == before and redo.exists()
    trace = json.loads((out / "trace.json").read_text())
    first, second = trace["items"]
    assert first["kept"] and first["final"] and "kept" not in second and second["steps"] == 2
    code, _ = run([*args, "--overwrite"], capsys)
    assert code == 0 and "kept" not in json.loads((out / "trace.json").read_text())["items"][0]


@pytest.mark.slow
def test_a_rerun_into_the_content_folder_keeps_its_results_and_does_the_rest(images_dir, tmp_path, capsys):
    """--out is the content folder: what a run wrote there (its images, the grid) is a result, not a content. And
    before the silent compile a line says what it is doing."""
    shutil.copy(images_dir / "chelsea.png", tmp_path)
    args = ["batch", "--content", tmp_path, "--style", images_dir / "starry_night.jpg", "--out", tmp_path, "--grid"]
    args += [a for a in FAST if a != "--quiet"] + ["--size", 32, "--steps", 2]
    code, err = run(args, capsys)
    assert code == 0, err
    assert "jaxnst batch: compiling the targets and the step for each image shape (not kept" in err, err
    result = tmp_path / "chelsea__starry_night.png"
    before = result.read_bytes()
    shutil.copy(images_dir / "coffee.png", tmp_path)  # a new photo in the folder
    code, err = run(args, capsys)
    assert code == 0, err
    assert "2 content x 1 style x 1 setting(s) = 2 images at 32 px, 1 already in" in err, err
    assert result.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["chelsea.png", "coffee.png", "chelsea__starry_night.png", "coffee__starry_night.png", "grid.png", "trace.json"]
    )
    photos = tmp_path / "photos"  # a photo of the user's named grid.png is an input, never replaced by the grid
    photos.mkdir()
    Image.open(images_dir / "coffee.png").save(photos / "grid.png")
    code, err = run([photos if a == tmp_path else a for a in args], capsys)
    assert code == 2 and f"output {photos / 'grid.png'} is also an input image" in err, err


@pytest.mark.slow
def test_sweep_grid_equals_single_runs(images_dir, tmp_path, capsys):
    content, style = images_dir / "coffee.png", images_dir / "shipwreck.jpg"
    common = [*FAST, "--size", 24, "--steps", 3]
    code, err = run(
        ["batch", "--content", content, "--style", style, "--out", tmp_path, "--grid", *common]
        + ["--sweep", "style_weight=1e2,1e4", "--sweep", "content-weight=1,5", "--bucket-multiple", 1],
        capsys,
    )
    assert code == 0, err
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert trace["sweep"] == {"style_weight": ["1e2", "1e4"], "content_weight": ["1", "5"]}
    assert [it["params"] for it in trace["items"]] == [
        {"style_weight": sw, "content_weight": cw} for sw in (1e2, 1e4) for cw in (1.0, 5.0)
    ]
    for it in trace["items"]:
        sw, cw = it["params"]["style_weight"], it["params"]["content_weight"]
        name = f"coffee__shipwreck__style_weight={'1e2' if sw == 1e2 else '1e4'}__content_weight={cw:g}.png"
        assert it["output"] == name
        single = tmp_path / "single.png"
        assert (
            run(
                [content, style, "-o", single, "--overwrite", *common, "--style-weight", sw, "--content-weight", cw],
                capsys,
            )[0]
            == 0
        )
        np.testing.assert_allclose(
            np.asarray(Image.open(tmp_path / name), float), np.asarray(Image.open(single)), atol=1
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sweep", "pooling=avg"], "cannot sweep it"),
        (["--sweep", "style_weight"], "NAME=V,V"),
        (["--sweep", "lr=0.1,x"], "--sweep lr 'x' is not a number"),
        (["--sweep", "init=noise,photo.png"], f"'photo.png' is not one of {', '.join(INIT_CHOICES)}"),
        (["--sweep", "ema=0,1"], "--ema 1.0 must be in [0, 1)"),
        (["--sweep", "lr=0.1,-1"], "--lr -1.0 must be positive"),
        (["--bucket-multiple", "0"], "--bucket-multiple 0 must be >= 1"),
    ],
)
def test_user_errors_are_one_line_exit_2(images_dir, tmp_path, capsys, extra, message):
    args = ["batch", "--content", images_dir / "coffee.png", "--style", images_dir / "shipwreck.jpg"]
    code, err = run([*args, "--out", tmp_path, *FAST, *extra], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_ema_and_initial_steps_sweep_and_the_bar_counts_every_scale(images_dir, tmp_path, capsys):
    """The README's sweeps of ema and initial_steps (once refused), coarse to fine: 32, 23 and 16 px. The
    progress bar's total is every step of every scale (it once counted --steps per item)."""
    args = ["batch", "--content", images_dir / "coffee.png", "--style", images_dir / "shipwreck.jpg", "--out", tmp_path]
    args += [*FAST[:-1], "--size", 32, "--min-size", 16, "--middle-steps", 2, "--steps", 2, "--bucket-multiple", 8]
    code, err = run([*args, "--sweep", "ema=0,0.99", "--sweep", "initial-steps=1,3"], capsys)
    assert code == 0, err
    trace = json.loads((tmp_path / "trace.json").read_text())
    params = [it["params"] for it in trace["items"]]
    assert params == [{"ema": e, "initial_steps": n} for e in (0.0, 0.99) for n in (1, 3)]
    assert [it["steps"] for it in trace["items"]] == [1 + 2 + 2, 3 + 2 + 2] * 2
    assert "100%" in err and "24/24" in err, err  # (5 + 7) x 2 steps
    images = [np.asarray(Image.open(tmp_path / it["output"])) for it in trace["items"]]
    assert not np.array_equal(images[0], images[2])  # the EMA reached the items


@pytest.mark.slow
def test_a_swept_init_is_not_overridden_by_an_init_file(images_dir, tmp_path, capsys):
    """--init FILE with --sweep init=...: each item starts as swept (the file once started them all)."""
    args = ["batch", "--content", images_dir / "coffee.png", "--style", images_dir / "shipwreck.jpg", "--out", tmp_path]
    args += [*FAST, "--size", 24, "--steps", 1, "--init", images_dir / "chelsea.png", "--sweep", "init=content,gray"]
    code, err = run(args, capsys)
    assert code == 0, err
    a, b = (np.asarray(Image.open(tmp_path / f"coffee__shipwreck__init={v}.png")) for v in ("content", "gray"))
    assert np.abs(a.astype(int) - b).mean() > 10


def test_every_sweepable_setting_parses_and_varies_per_item():
    values = {int: "1,2", float: "0.5,0.9", str: "content,noise"}
    for name in SWEEPABLE:
        kind = type(getattr(Config(), name))
        parsed = parse_sweeps([f"{name}={values[kind]}"])[name]
        configs = grid_configs(Config(), {name: [v for _, v in parsed]})
        assert [getattr(c, name) for _, c in configs] == [v for _, v in parsed] and len(configs) == 2
        for _, c in configs:
            validate(c)
    assert parse_sweeps(["--initial-steps=none,2"]) == {"initial_steps": [("none", None), ("2", 2)]}


def test_content_discovery_errors(images_dir, tmp_path, capsys):
    style = images_dir / "shipwreck.jpg"
    for content, message in ((tmp_path / "*.png", "no file matches"), (tmp_path / "nope.png", "does not exist")):
        code, err = run(["batch", "--content", content, "--style", style, "--out", tmp_path, *FAST], capsys)
        assert code == 2 and message in err
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "chelsea.png")
    code, err = run(
        ["batch", "--content", images_dir / "chelsea.png", tmp_path / "a", "--style", style, "--out", tmp_path, *FAST],
        capsys,
    )
    assert code == 2 and "two content images are named 'chelsea'" in err
    assert parse_sweeps(["tv-weight=0,1"]) == {"tv_weight": [("0", 0.0), ("1", 1.0)]}


@pytest.mark.slow
def test_coarse_styles_reach_every_item_and_equal_the_library(images_dir, tmp_path, capsys):
    """--style-coarse: one set for every item, loaded as the styles are, recorded; the pixels are
    ``stylize_batch(..., coarse_styles=)``'s on the same inputs (the Gram, one program), and differ without it."""
    import jaxnst
    from jaxnst.cli.batch import build_parser
    from jaxnst.cli.common import config_from_args
    from jaxnst.config import style_size
    from jaxnst.image import load_image, save_image

    content, coarse = images_dir / "coffee.png", images_dir / "starry_night.jpg"
    styles = [images_dir / "shipwreck.jpg", images_dir / "the_scream.jpg"]
    args = ["batch", "--content", content, "--style", *styles, *FAST, "--size", 24, "--steps", 3]
    args += ["--style-statistic", "gram", "--style-weight", 1e4, "--split-layer", "relu1_1", "--bucket-multiple", 1]
    code, err = run([*args, "--out", tmp_path / "coarse", "--style-coarse", coarse], capsys)
    assert code == 0, err
    code, err = run([*args, "--out", tmp_path / "plain"], capsys)
    assert code == 0, err
    names = ["coffee__shipwreck.png", "coffee__the_scream.png"]
    cfg = config_from_args(build_parser().parse_args([str(a) for a in [*args[1:], "--out", tmp_path]]))
    load = lambda p: load_image(p, style_size(cfg))  # noqa: E731
    want = jaxnst.stylize_batch([load_image(content, cfg.size)], [load(s) for s in styles],
                                jaxnst.random_weights("vgg19", cfg.seed), cfg, multiple=1,
                                coarse_styles=[[load(coarse)]])  # fmt: skip
    for name, w in zip(names, want, strict=True):
        save_image(w, tmp_path / name)
        got = np.asarray(Image.open(tmp_path / "coarse" / name))
        np.testing.assert_array_equal(got, np.asarray(Image.open(tmp_path / name)))
        assert np.abs(got.astype(int) - np.asarray(Image.open(tmp_path / "plain" / name))).max() > 2, name
        rec = json.loads(Image.open(tmp_path / "coarse" / name).text["jaxnst"])
        assert rec["style_coarse"] == [str(coarse.resolve())] and rec["config"]["split_layer"] == "relu1_1"
        assert "style_coarse" not in json.loads(Image.open(tmp_path / "plain" / name).text["jaxnst"])
    assert json.loads((tmp_path / "coarse" / "trace.json").read_text())["style_coarse"] == [str(coarse)]


@pytest.mark.parametrize("bad", ["missing.png", "text.png"])
def test_a_bad_coarse_style_is_one_line_and_nothing_is_written(images_dir, tmp_path, capsys, bad):
    (tmp_path / "text.png").write_text("not an image")
    out = tmp_path / "out"
    args = ["batch", "--content", images_dir / "coffee.png", "--style", images_dir / "shipwreck.jpg", "--out", out]
    code, err = run([*args, *FAST, "--style-coarse", images_dir / "starry_night.jpg", tmp_path / bad], capsys)
    message = "does not exist" if bad == "missing.png" else "is not an image Pillow can read"
    assert code == 2 and err.count("\n") == 1 and f"{tmp_path / bad}" in err and message in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["text.png"]


@pytest.mark.slow
def test_a_signal_stops_a_batch_and_keeps_its_finished_images(images_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C (SIGINT) during the second chunk: the first chunk's image and the trace stay, exit 130,
    and the same command finishes the folder."""
    import os
    import signal

    import jaxnst.cli.batch as cli_batch

    out = tmp_path / "out"
    args = ["batch", "--content", images_dir / "chelsea.png", "--style", images_dir / "starry_night.jpg"]
    args += [images_dir / "the_scream.jpg", "--out", out, *FAST, "--size", 32, "--steps", 4, "--every", 2]
    args += ["--batch-size", 1, "--quiet"]
    real = cli_batch._Report.__call__
    calls = []

    def interrupt_in_the_second_chunk(self, p):
        calls.append(p.items)
        if p.items == (1,) and not p.done and len(calls) == 5:  # the second block of the second chunk
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, p)

    monkeypatch.setattr(cli_batch._Report, "__call__", interrupt_in_the_second_chunk)
    code, err = run(args, capsys)
    assert code == 130 and "stopped by SIGINT: 1 of 2 images written" in err, (calls, err)
    assert sorted(p.name for p in out.iterdir()) == ["chelsea__starry_night.png", "trace.json"]
    monkeypatch.setattr(cli_batch._Report, "__call__", real)
    code, err = run(args, capsys)
    assert code == 0 and (out / "chelsea__the_scream.png").exists(), err


@pytest.mark.slow
def test_an_unreadable_content_is_skipped_and_reported_at_the_end(images_dir, tmp_path, capsys):
    """One damaged photo in a folder once stopped the whole batch before anything was made."""
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    (folder / "a.png").write_bytes((images_dir / "chelsea.png").read_bytes())
    (folder / "b.jpg").write_bytes((images_dir / "starry_night.jpg").read_bytes()[:300])  # cut short
    args = ["batch", "--content", folder, "--style", images_dir / "the_scream.jpg", "--out", out, "--grid", *FAST]
    code, err = run([*args, "--size", 32, "--steps", 2], capsys)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("WARNING: --weights random")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("jaxnst: error: 1 content image(s) could not"), err
    assert "b.jpg is not an image Pillow can read" in lines[0] and "their 1 images were not made" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["a__the_scream.png", "grid.png", "trace.json"]
    trace = json.loads((out / "trace.json").read_text())
    assert "b.jpg is not an image" in trace["items"][1]["skipped"] and "final" in trace["items"][0]
    code, err = run([*args, "--size", 32, "--steps", 2], capsys)  # again: the finished image is kept
    assert code == 2 and (out / "a__the_scream.png").exists()
    (folder / "b.jpg").unlink()
    assert run([*args, "--size", 32, "--steps", 2], capsys)[0] == 0
