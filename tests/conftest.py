"""Shared fixtures: test images from ../shared/images and tiny random networks."""

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxnst

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session")
def images_dir() -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"test images not found at {IMAGES}")
    return IMAGES


@pytest.fixture(scope="session")
def vgg19() -> jaxnst.Weights:
    return jaxnst.random_weights("vgg19", seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def small_params(seed=0, arch="vgg19"):
    """Random params of the full architecture as float32 NumPy arrays, with non-zero biases."""
    shapes = jaxnst.vgg.param_shapes(arch)
    r = np.random.default_rng(seed)
    out = {}
    for name, s in shapes.items():
        fan_in = np.prod(s["kernel"][:3])
        out[name] = {
            "kernel": (r.standard_normal(s["kernel"]) * np.sqrt(2 / fan_in)).astype(np.float32),
            "bias": (r.standard_normal(s["bias"]) * 0.1).astype(np.float32),
        }
    return out


def to_jax(params):
    return jax.tree.map(jax.numpy.asarray, params)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Tests reach 127.0.0.1 only: any other URL fails as if offline, so a test
    that forgets ``--weights`` cannot start an 80 MB download from the real host."""
    real = urllib.request.urlopen

    def urlopen(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused (tests are offline)"))
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
