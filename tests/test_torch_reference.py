"""jaxnst against an independent PyTorch implementation of the same maths (skipped without torch)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import jaxnst

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from torch_nst import TorchNST  # noqa: E402


@pytest.mark.parametrize("gram_norm, tv_kind", [("chw", "l2"), ("hw", "l1")])
def test_adam_trajectory_matches_pytorch(vgg19, rng, gram_norm, tv_kind):
    cfg = jaxnst.preset(  # the PyTorch reference is Gatys with Grams, one scale, the last iterate
        "gatys",
        steps=5,
        content_layers=("relu3_1",),
        style_layers=("relu1_1", "relu2_1", "relu3_1"),
        gram_norm=gram_norm,
        tv_kind=tv_kind,
        tv_weight=10.0,
        style_weight=1e-2 if gram_norm == "hw" else 100.0,
    )
    content = rng.uniform(size=(1, 24, 32, 3)).astype(np.float32)
    style = rng.uniform(size=(1, 32, 20, 3)).astype(np.float32)
    ref = TorchNST(vgg19, content, style, cfg)
    torch_losses = [float(ref.step()) for _ in range(cfg.steps)]
    seen = []
    out = jaxnst.stylize(content, [style], vgg19, cfg, callback=seen.append, every=1)
    np.testing.assert_allclose([p.loss for p in seen], torch_losses, rtol=2e-4)
    want = ref.image.detach().numpy().transpose(0, 2, 3, 1)[0]
    np.testing.assert_allclose(out, want, atol=2e-4)
