"""Fast style transfer: a feed-forward network that paints a photo in one pass (Johnson, Alahi & Fei-Fei 2016).

``TransformNet`` is Johnson et al.'s image transformation network with Ulyanov et al.'s instance
normalisation and resize-then-convolve upsampling (Odena et al., against checkerboard artefacts):
a 9x9 convolution, two stride-2 convolutions, residual blocks, two nearest-neighbour doublings each
followed by a 3x3 convolution, and a 9x9 convolution back to RGB; reflection padding throughout, so
no border is dark. ``jaxnst.train`` fits it to one style with jaxnst's own objective.

A model file is HDF5: the parameters as datasets named by their path, and root attributes saying
what it is (``format``, ``version``, the architecture, the training record as JSON, the style
image's SHA-256, the jaxnst version). ``load_model`` reads only arrays and strings, checks every
one against the architecture the file names, and refuses anything else in one line.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import h5py
import jax
import jax.numpy as jnp
import numpy as np

from jaxnst._files import atomic_path, check_file
from jaxnst.errors import JaxnstError

FORMAT = "jaxnst-fast"
VERSION = 1
MULTIPLE = 4  # the two stride-2 convolutions: sides are padded (by reflection) to a multiple of this


def _pad(x: jax.Array, before: tuple[int, int], after: tuple[int, int]) -> jax.Array:
    return jnp.pad(x, ((0, 0), (before[0], after[0]), (before[1], after[1]), (0, 0)), mode="reflect")


class _Conv(nn.Module):
    """Reflection padding, then a convolution (``stride``), then instance norm and ReLU unless ``last``."""

    features: int
    kernel: int
    stride: int = 1
    last: bool = False

    @nn.compact
    def __call__(self, x):
        p = self.kernel // 2
        k, s = (self.kernel, self.kernel), (self.stride, self.stride)
        # A bias before instance norm would be subtracted with the mean: only the last convolution has one.
        x = nn.Conv(self.features, k, s, "VALID", use_bias=self.last, name="conv")(_pad(x, (p, p), (p, p)))
        return x if self.last else nn.relu(nn.InstanceNorm(epsilon=1e-5, name="norm")(x))


class _Residual(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        y = _Conv(self.features, 3, name="a")(x)
        y = nn.Conv(self.features, (3, 3), padding="VALID", use_bias=False, name="conv")(_pad(y, (1, 1), (1, 1)))
        return x + nn.InstanceNorm(epsilon=1e-5, name="norm")(y)


def _phases(k: jax.Array) -> jax.Array:
    """A 3x3 kernel (3, 3, I, O) read on a nearest-neighbour doubled image, as the 2x2 kernels (2, 2, I, 4 O)
    of its four output phases on the image itself. Along an axis, output 2i reads doubled pixels 2i-1, 2i,
    2i+1, which are pixels i-1, i, i (taps w0, w1+w2 on i-1, i); output 2i+1 reads i, i, i+1 (w0+w1, w2 on
    i, i+1). The doubled image's reflected border is the image's own edge pixel repeated."""
    lo = lambda k, ax: jnp.stack([k.take(0, ax), k.take(1, ax) + k.take(2, ax)], ax)  # noqa: E731
    hi = lambda k, ax: jnp.stack([k.take(0, ax) + k.take(1, ax), k.take(2, ax)], ax)  # noqa: E731
    return jnp.concatenate([c(r(k, 0), 1) for r in (lo, hi) for c in (lo, hi)], axis=-1)


class _Kernel(nn.Module):
    """A convolution's kernel alone, initialised as ``nn.Conv`` initialises it."""

    shape: tuple[int, ...]

    @nn.compact
    def __call__(self):
        return self.param("kernel", nn.initializers.lecun_normal(), self.shape)


class _Up(nn.Module):
    """A nearest-neighbour doubling, reflection padding and a 3x3 convolution (then instance norm and ReLU),
    computed without the doubled image: 2x2 convolutions of the image for the four output phases (4/9 of the
    multiplications), interleaved. The parameters are those of ``_Conv(features, 3)`` on the doubled image."""

    features: int

    @nn.compact
    def __call__(self, x):
        n, h, w, c = x.shape
        k = _Kernel((3, 3, c, self.features), name="conv")()
        y = jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge"), _phases(k),
                                         (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        y = y.reshape(n, h + 1, w + 1, 2, 2, self.features)
        # Phase (a, b) of output pixel (2i + a, 2j + b) is at window (i + a, j + b).
        rows = [jnp.stack([y[:, a : a + h, b : b + w, a, b] for b in (0, 1)], 3) for a in (0, 1)]
        y = jnp.stack(rows, 2).reshape(n, 2 * h, 2 * w, self.features)
        return nn.relu(nn.InstanceNorm(epsilon=1e-5, name="norm")(y))


class TransformNet(nn.Module):
    """Photo (N, H, W, 3) in [0, 1] -> painting (N, H, W, 3), unclipped (``stylize`` clips).

    ``width``: channels of the first convolution (Johnson's 32); the others are 2x and 4x it.
    ``blocks``: residual blocks at a quarter of the resolution (Johnson's 5). Any H, W >= 4: the
    input is reflected up to a multiple of 4 and the output cropped back.
    """

    width: int = 32
    blocks: int = 5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, w = x.shape[1:3]
        x = _pad(x, (0, 0), (-h % MULTIPLE, -w % MULTIPLE))
        y = _Conv(self.width, 9, name="in")(x)
        y = _Conv(2 * self.width, 3, 2, name="down1")(y)
        y = _Conv(4 * self.width, 3, 2, name="down2")(y)
        for k in range(self.blocks):
            y = _Residual(4 * self.width, name=f"res{k + 1}")(y)
        for k, c in enumerate((2 * self.width, self.width), start=1):
            y = _Up(c, name=f"up{k}")(y)
        return _Conv(3, 9, last=True, name="out")(y)[:, :h, :w]


class Model(NamedTuple):
    """A trained network: its architecture, its parameters and the record of its training."""

    net: TransformNet
    params: dict
    info: dict  # style_sha256, style, training settings, steps, photos, jaxnst version...


def init_params(net: TransformNet, key: jax.Array, hw: tuple[int, int] = (32, 32)) -> dict:
    return net.init(key, jnp.zeros((1, *hw, 3), jnp.float32))["params"]


def _shapes(net: TransformNet) -> dict[str, tuple[int, ...]]:
    tree = jax.eval_shape(lambda: init_params(net, jax.random.key(0)))
    return {_name(p): tuple(leaf.shape) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def param_count(params) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


ARCH_LIMITS = {"width": (1, 256), "blocks": (0, 32)}  # what a model file may name: no file builds a giant


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Writes ``model`` to ``path`` (HDF5), atomically."""
    from jaxnst import __version__

    path = Path(path)
    flat = {_name(p): np.asarray(a, np.float32) for p, a in jax.tree_util.tree_flatten_with_path(model.params)[0]}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, version=VERSION, width=model.net.width, blocks=model.net.blocks,
                       info=json.dumps({**model.info, "jaxnst": __version__}))  # fmt: skip
        for name, a in flat.items():
            f.create_dataset(name, data=a)


def load_model(path: str | os.PathLike) -> Model:
    """The model in ``path`` (``save_model``'s), every array checked against the architecture it names;
    else a ``JaxnstError`` saying what the file is not."""
    from jaxnst.weights import _elsewhere

    path = Path(path)
    fix = "give a model file `jaxnst train` wrote"
    check_file(path, "model", fix)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise JaxnstError(f"{path} is not a jaxnst model (not an HDF5 file, or a damaged one): {fix}") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise JaxnstError(f"{path} is not a jaxnst model (an HDF5 file without format={FORMAT!r}): {fix}")
        if f.attrs.get("version") != VERSION:
            raise JaxnstError(f"model {path} has version {_shown(f.attrs.get('version'))}; this jaxnst reads {VERSION}")
        arch = {}
        for k, (lo, hi) in ARCH_LIMITS.items():
            v = f.attrs.get(k)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= hi:
                raise JaxnstError(
                    f"model {path}: its {k} is {_shown(v)}, not a whole number in {lo}..{hi}: it is damaged"
                )
            arch[k] = int(v)
        try:
            info = json.loads(str(f.attrs.get("info", "{}")))
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise JaxnstError(f"model {path}: its info is not a JSON object: it is damaged; {fix}")
        elsewhere = _elsewhere(f)
        if elsewhere:
            raise JaxnstError(f"model {path}: {elsewhere}: jaxnst reads only a model's own data: {fix}")
        net = TransformNet(**arch)
        want, have = _shapes(net), {}
        f.visititems(lambda n, o: have.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        if set(have) != set(want):
            missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            raise JaxnstError(f"model {path}: missing {missing[:3] or 'nothing'}, unexpected {extra[:3] or 'nothing'}:"
                              f" not a width-{net.width} network with {net.blocks} blocks; {fix}")  # fmt: skip
        flat = {}
        for name, shape in want.items():
            d = have[name]
            if d.shape != shape or d.dtype.kind != "f":
                raise JaxnstError(f"model {path}: {name} is {d.dtype}{list(d.shape)}, not float{list(shape)}: {fix}")
            try:
                flat[name] = np.asarray(d[()], np.float32)
            except OSError as e:
                raise JaxnstError(f"model {path}: {name} cannot be read ({e}): it is damaged; {fix}") from None
            if not np.all(np.isfinite(flat[name])):
                raise JaxnstError(f"model {path}: {name} holds NaN or infinite values: it is damaged; {fix}")
    return Model(net, _unflatten(flat), info)


def _shown(v) -> str:
    """An attribute's value as a user reads it (NumPy scalars as plain numbers)."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, a in flat.items():
        *groups, leaf = name.split("/")
        node = tree
        for g in groups:
            node = node.setdefault(g, {})
        node[leaf] = jnp.asarray(a)
    return tree


@functools.partial(jax.jit, static_argnames=("net",))
def _paint(net: TransformNet, params, images: jax.Array) -> jax.Array:
    return jnp.clip(net.apply({"params": params}, images), 0.0, 1.0)


def stylize(model: Model, images) -> jax.Array:
    """``images`` (H, W, 3) or (N, H, W, 3) in [0, 1] painted by ``model``, in [0, 1], the same shape.

    One compiled program per shape. (Padding images up to a few shared sizes would compile less, but the
    network sees the padding: instance norm's statistics and every pixel within its ~54 px reach of the
    border change, by up to 0.18 on an untrained network's output: measured in tests/test_fast.py.)"""
    x = jnp.asarray(images, jnp.float32)
    one = x.ndim == 3
    x = x[None] if one else x
    if x.ndim != 4 or x.shape[-1] != 3:
        raise JaxnstError(f"images must be RGB, (H, W, 3) or (N, H, W, 3); got shape {x.shape}")
    h, w = x.shape[1:3]
    if min(h, w) < 8:
        raise JaxnstError(f"an image of {w}x{h} px is too small for a fast network: give at least 8 px a side")
    out = _paint(model.net, model.params, x)
    return out[0] if one else out
