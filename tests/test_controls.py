"""Perceptual controls (Gatys et al. 2017): fine and coarse structure from different styles, regions."""

import dataclasses

import jax
import numpy as np
import pytest

import jaxnst
from jaxnst.optimize import LossSpec, make_targets

BASE = jaxnst.Config(size=32, steps=3, min_size=None, style_layers=("relu1_1", "relu2_1", "relu3_1"),
                     content_layers=("relu2_1",))  # fmt: skip


def pictures(rng, *shapes):
    return [rng.uniform(0, 1, (*s, 3)).astype(np.float32) for s in shapes]


def test_fine_and_coarse_styles_split_the_layers(vgg19, rng):
    content, a, b = (x[None] for x in pictures(rng, (32, 32), (32, 24), (24, 32)))
    spec = LossSpec.from_config(BASE)
    split = make_targets(vgg19, content, [a], spec, coarse_styles=[b], split_layer="relu2_1")
    only_a, only_b = make_targets(vgg19, content, [a], spec), make_targets(vgg19, content, [b], spec)
    assert set(split.style) == set(BASE.style_layers)
    for name, want in [("relu1_1", only_a), ("relu2_1", only_a), ("relu3_1", only_b)]:
        jax.tree.map(np.testing.assert_array_equal, split.style[name], want.style[name])
    jax.tree.map(np.testing.assert_array_equal, split.content, only_a.content)


@pytest.mark.slow
def test_fine_equal_to_coarse_is_the_single_style_run(vgg19, rng):
    content, a = pictures(rng, (32, 32), (32, 24))
    # Scales of 16, 23 and 32 px: the coarse style shrinks too.
    cfg = dataclasses.replace(BASE, min_size=16, initial_steps=2, middle_steps=None)
    want = jaxnst.stylize(content, [a], vgg19, cfg)
    np.testing.assert_array_equal(jaxnst.stylize(content, [a], vgg19, cfg, coarse_styles=[a]), want)


def np_masked_gram(f, m, norm):
    f, m = np.asarray(f, np.float64)[0], np.asarray(m, np.float64)[0]
    z = m.sum() * (f.shape[-1] if norm == "chw" else 1)
    return np.einsum("hwc,hw,hwd->cd", f, m, f) / z


def test_masked_statistics_match_numpy_and_ignore_what_is_outside(rng):
    f = rng.standard_normal((1, 6, 5, 4)).astype(np.float32)
    m = (rng.uniform(0, 1, (1, 6, 5)) * (rng.uniform(0, 1, (1, 6, 5)) > 0.4)).astype(np.float32)
    for norm in ("chw", "hw"):
        np.testing.assert_allclose(jaxnst.losses.gram(f, norm=norm, where=m)[0], np_masked_gram(f, m, norm), rtol=1e-5)
        np.testing.assert_allclose(
            jaxnst.losses.gram(f, norm=norm, where=np.ones((1, 6, 5))), jaxnst.losses.gram(f, norm=norm), rtol=1e-6
        )
    mean, std = jaxnst.losses.mean_std(f, where=m)
    w = m[0, ..., None] / m.sum()
    np.testing.assert_allclose(mean[0], (f[0] * w).sum((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(std[0], np.sqrt((w * (f[0] - mean[0]) ** 2).sum((0, 1)) + 1e-5), rtol=1e-5)
    g = jaxnst.losses.gaussian_moments(f, where=m)
    np.testing.assert_allclose(
        g.cov[0], np_masked_gram(f - np.asarray(g.mean)[:, None, None], m, "hw"), rtol=1e-4, atol=1e-6
    )
    ones = jaxnst.losses.gaussian_moments(f, where=np.ones((1, 6, 5)))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ones, jaxnst.losses.gaussian_moments(f)
    )
    # Features where the mask is zero do not enter.
    changed = np.where(m[..., None] > 0, f, 100 * rng.standard_normal(f.shape)).astype(np.float32)
    for stat in (lambda x: jaxnst.losses.gram(x, where=m), lambda x: jaxnst.losses.gaussian_moments(x, where=m)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), stat(changed), stat(f))


@pytest.mark.slow
def test_mask_at_has_each_taps_shape(vgg19, rng):
    x = rng.uniform(0, 1, (1, 37, 29, 3)).astype(np.float32)
    taps = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "pool4")
    feats = jaxnst.features(vgg19, x, taps)
    m = rng.uniform(0, 1, (1, 37, 29)).astype(np.float32)
    for t in taps:
        assert jaxnst.vgg.mask_at(m, t).shape == feats[t].shape[:3]
    np.testing.assert_allclose(jaxnst.vgg.mask_at(m, "relu2_1")[0, 3, 5], m[0, 6:8, 10:12].mean(), rtol=1e-6)


@pytest.mark.slow
def test_complementary_regions_of_one_style_with_equal_statistics_equal_the_plain_loss(rng):
    """Left and right halves whose features are mirror images (the same positions, permuted) have the
    whole image's statistics: weighted by their shares, the two regions' distances are the plain one."""
    from jaxnst.optimize import LossWeights, Targets, regional_style_loss

    half = rng.standard_normal((1, 4, 3, 8)).astype(np.float32)
    feats = np.concatenate([half, half[:, :, ::-1]], axis=2)  # (1, 4, 6, 8)
    style = rng.standard_normal((1, 5, 7, 8)).astype(np.float32)
    left = np.zeros((1, 4, 6), np.float32)
    left[..., :3] = 1
    for statistic in ("gram", "w2", "mean_std"):
        spec = LossSpec(("relu1_1",), ("relu1_1",), style_statistic=statistic)
        target = spec.prepare(spec.statistic(style))
        lw = LossWeights.from_config(jaxnst.Config(style_layers=("relu1_1",), content_layers=("relu1_1",)))
        plain = jaxnst.losses.style_loss({"relu1_1": spec.statistic(feats)}, {"relu1_1": target}, lw.style_layers,
                                         distance=spec.distance)  # fmt: skip
        stacked = jax.tree.map(lambda a: np.stack([a, a]), target)
        regions = Targets({}, {"relu1_1": stacked}, {"relu1_1": np.stack([left, 1 - left])})
        got = regional_style_loss({"relu1_1": feats}, regions, lw.style_layers, spec)
        np.testing.assert_allclose(got, plain, rtol=2e-4, err_msg=statistic)
        whole = Targets({}, {"relu1_1": jax.tree.map(lambda a: a[None], target)}, {"relu1_1": np.ones((1, 1, 4, 6))})
        np.testing.assert_allclose(regional_style_loss({"relu1_1": feats}, whole, lw.style_layers, spec), plain,
                                   rtol=1e-5, err_msg=statistic)  # fmt: skip


@pytest.mark.slow
def test_an_all_ones_content_mask_is_the_unmasked_run(vgg19, rng):
    content, a = pictures(rng, (32, 32), (32, 24))
    for statistic in ("gram", "w2"):
        cfg = dataclasses.replace(BASE, min_size=16, initial_steps=2, middle_steps=None, style_statistic=statistic)
        want = jaxnst.stylize(content, [a], vgg19, cfg)
        got = jaxnst.stylize(content, [a], vgg19, cfg, content_masks=[np.ones((32, 32))])
        # The same sums in another order (a weighted sum over the area, not a mean): float rounding, which
        # Adam's normalised steps carry into the pixels.
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=statistic)


@pytest.mark.slow
def test_two_regions_take_their_own_styles(vgg19, rng):
    """Each region's style loss falls when the region is painted; a style mask picks part of a style."""
    content, a, b = pictures(rng, (32, 32), (32, 32), (32, 32))
    b = b * 0.2  # a dark style
    top = np.zeros((32, 32), np.float32)
    top[:16] = 1
    cfg = dataclasses.replace(BASE, steps=40, content_weight=0.0, style_weight=1e3, tv_weight=0.0)
    out = np.asarray(jaxnst.stylize(content, [a, b], vgg19, cfg, content_masks=[top, 1 - top]))
    assert out[20:].mean() < out[:12].mean() - 0.1, (out[:12].mean(), out[20:].mean())  # the bottom went dark
    half = np.zeros((32, 32), np.float32)
    half[:, 16:] = 1
    masked = jaxnst.stylize(content, [a, b], vgg19, cfg, content_masks=[top, 1 - top], style_masks=[None, half])
    assert np.abs(np.asarray(masked) - out).max() > 1e-3  # the style mask changed the bottom's target


FAST = ["--weights", "random", "--size", "32", "--min-size", "none", "--steps", "3", "--content-layers", "relu2_1",
        "--style-layers", "relu1_1,relu2_1", "--quiet"]  # fmt: skip


def cli(argv, capsys):
    from jaxnst.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_cli_controls_and_reproduce(images_dir, tmp_path, capsys):
    """Masks, coarse styles and colour from the command line; `jaxnst reproduce` gives them back."""
    from PIL import Image

    mask = np.zeros((40, 60), np.uint8)
    mask[:, :30] = 255
    Image.fromarray(mask).save(tmp_path / "left.png")
    Image.fromarray(255 - mask).save(tmp_path / "right.png")
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None] * 4, (40, 1))).save(tmp_path / "ramp.png")  # 1.6:1
    content, a, b = images_dir / "coffee.png", images_dir / "the_scream.jpg", images_dir / "starry_night.jpg"
    runs = {
        "masks": [content, a, b, "--content-masks", tmp_path / "left.png", tmp_path / "right.png",
                  "--style-masks", "none", tmp_path / "ramp.png"],
        "coarse": [content, a, "--style-coarse", b, "--split-layer", "relu1_1", "--preserve-color", "luminance"],
    }  # fmt: skip
    for name, argv in runs.items():
        out = tmp_path / f"{name}.png"
        code, err = cli([*argv, *FAST, "-o", out], capsys)
        assert code == 0, err
        code, err = cli(["reproduce", out], capsys)
        assert code == 0 and "same pixels" in err, err
    plain = tmp_path / "plain.png"
    assert cli([content, a, *FAST, "-o", plain], capsys)[0] == 0
    assert not np.array_equal(np.asarray(Image.open(plain)), np.asarray(Image.open(tmp_path / "coarse.png")))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--content-masks", "M"], "1 --content-masks for 2 style images: give one per style"),
        (["--style-masks", "M", "M"], "--style-masks need content masks: give one content mask per style too"),
        (["--content-masks", "M", "M", "--style-masks", "none"], "1 --style-masks for 2 style images: give one per"),
        (["--content-masks", "M", "M", "--style-blend-weights", "1,2"], "--style-blend-weights with --content-masks"),
        (
            ["--content-masks", "M", "M", "--style-masks", "nothere.png", "none"],
            "style mask nothere.png does not exist",
        ),
        (["--content-masks", "TALL", "M"], "content mask"),
        (["--split-layer", "relu9_1"], "unknown vgg19 layer relu9_1"),
        (["--preserve-color", "colour"], "invalid choice"),
    ],
)
def test_bad_controls_exit_2_with_one_line(images_dir, tmp_path, capsys, extra, message):
    from PIL import Image

    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(tmp_path / "m.png")
    Image.fromarray(np.full((90, 20), 255, np.uint8)).save(tmp_path / "tall.png")
    extra = [{"M": tmp_path / "m.png", "TALL": tmp_path / "tall.png"}.get(e, e) for e in extra]
    out = tmp_path / "out.png"
    argv = [images_dir / "coffee.png", images_dir / "the_scream.jpg", images_dir / "starry_night.jpg", *FAST, "-o", out]
    try:
        code, err = cli([*argv, *extra], capsys)
    except SystemExit as e:  # argparse's own errors
        code, err = e.code, capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not out.exists()


def test_one_mask_count_check_speaks_for_the_library_and_the_cli(vgg19, rng, images_dir, tmp_path, capsys):
    """stylize, stylize_batch and the command line once counted masks three times, in three messages."""
    from PIL import Image

    content, a, b = pictures(rng, (32, 32), (32, 32), (32, 32))
    one = [np.ones((32, 32), np.float32)]
    errors = []
    for run in (lambda: jaxnst.stylize(content, [a, b], vgg19, BASE, content_masks=one),
                lambda: jaxnst.stylize_batch([content], [[a, b]], vgg19, BASE, content_masks=[one])):  # fmt: skip
        with pytest.raises(jaxnst.JaxnstError) as e:
            run()
        errors.append(e.value)
    assert str(errors[0]) == str(errors[1]) == "1 content_masks for 2 style images: give one per style"
    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(tmp_path / "m.png")
    styles = [images_dir / "the_scream.jpg", images_dir / "starry_night.jpg"]
    argv = [images_dir / "coffee.png", *styles, *FAST, "-o", tmp_path / "o.png", "--content-masks", tmp_path / "m.png"]
    code, err = cli(argv, capsys)
    assert code == 2 and err.strip() == f"jaxnst: error: {errors[0].for_cli()}", err
    assert errors[0].for_cli() == "1 --content-masks for 2 style images: give one per style"


@pytest.mark.slow
def test_batch_items_with_regions_equal_single_runs(vgg19, rng):
    """Multi-scale, W2, two regions per item, a style mask on one: each item is its single run."""
    contents = pictures(rng, (32, 32), (32, 32))
    a, b = pictures(rng, (32, 24), (24, 32))
    top = np.zeros((32, 32), np.float32)
    top[:14] = 1
    left = np.zeros((24, 32), np.float32)
    left[:, :16] = 1
    cfg = dataclasses.replace(BASE, min_size=16, initial_steps=2, middle_steps=None, steps=2)
    configs = [cfg, dataclasses.replace(cfg, style_weight=1e2)]
    masks = [[top, 1 - top], [1 - top, top]]
    outs = jaxnst.stylize_batch(contents, [[a, b]], vgg19, configs, multiple=8, content_masks=masks,
                                style_masks=[[None, left]])  # fmt: skip
    for c, m, cf, out in zip(contents, masks, configs, outs, strict=True):
        want = jaxnst.stylize(c, [a, b], vgg19, cf, content_masks=m, style_masks=[None, left])
        np.testing.assert_allclose(out, want, atol=1e-5)


@pytest.mark.slow
def test_batch_items_with_coarse_styles_equal_single_runs(vgg19, rng):
    """Two scales, per-item coarse styles (one item without): each item is its single run (the Gram:
    W2's batched eigh rounds apart from the single one), and the coarse style changes the image."""
    contents = pictures(rng, (32, 32), (32, 32))
    a, b, c = pictures(rng, (32, 24), (24, 32), (28, 28))
    cfg = dataclasses.replace(
        BASE,
        min_size=16,
        initial_steps=2,
        middle_steps=None,
        steps=2,
        style_statistic="gram",
        style_weight=1e3,
        split_layer="relu2_1",
    )  # relu3_1 from the coarse style
    configs = [cfg, dataclasses.replace(cfg, style_weight=1e2)]
    outs = jaxnst.stylize_batch(contents, [a], vgg19, configs, multiple=8, coarse_styles=[[b], [c]])
    for content, coarse, cf, out in zip(contents, [b, c], configs, outs, strict=True):
        want = jaxnst.stylize(content, [a], vgg19, cf, coarse_styles=[coarse])
        np.testing.assert_allclose(out, want, atol=1e-5)
    plain = jaxnst.stylize(contents[0], [a], vgg19, cfg)
    assert np.abs(plain - outs[0]).max() > 1e-3
