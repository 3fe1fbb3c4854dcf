"""Shared fixtures: test images from ../shared/images and tiny random networks."""

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
