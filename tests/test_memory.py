import dataclasses

import pytest

import jaxnst
from jaxnst.cli import main
from jaxnst.memory import _at, auto_size, estimate, free_bytes

SMALL = jaxnst.Config(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))


@pytest.mark.slow
def test_estimate_grows_with_the_image():
    small = estimate((48, 64), [(64, 40)], SMALL)
    large = estimate((96, 128), [(128, 80)], SMALL)
    assert 0 < small.peak < large.peak
    assert large.temporaries > 2 * small.temporaries  # activations scale with pixels
    # bf16 convolutions keep smaller activations
    assert estimate((96, 128), [(128, 80)], dataclasses.replace(SMALL, precision="bf16")).peak < large.peak


@pytest.mark.slow
def test_auto_size_fits_the_budget():
    budget = _at(224, (400, 300), [(300, 400)], SMALL).peak
    size, est = auto_size((400, 300), [(300, 400)], SMALL, budget)
    assert est.peak <= budget and size % 32 == 0
    assert 160 <= size <= 224
    with pytest.raises(jaxnst.JaxnstError, match="fits in"):
        auto_size((400, 300), [(300, 400)], SMALL, 1000)


def test_free_bytes_is_positive():
    assert free_bytes() > 0


@pytest.mark.slow
def test_estimate_command(images_dir, capsys):
    code = main(
        [
            "estimate",
            str(images_dir / "chelsea.png"),
            str(images_dir / "starry_night.jpg"),
            "--size",
            "64",
            "--content-layers",
            "relu2_1",
            "--style-layers",
            "relu1_1",
        ]
    )
    out, err = capsys.readouterr()
    assert (
        code == 0 and out.startswith("64x43 px, vgg19 fp32, adam: peak ") and "MiB free" not in out and "free on" in out
    )
    assert err.startswith("jaxnst: compiling the step for 64x43 to read its memory"), err  # not tens of silent seconds
