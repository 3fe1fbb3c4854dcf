"""VGG16/19 feature stacks (Simonyan & Zisserman 2014) as a Flax linen module.

The module only computes: weights come from ``jaxnst.weights``. Every tap is
addressable by name: ``conv{b}_{l}`` (pre-ReLU), ``relu{b}_{l}`` and ``pool{b}``.
Only the requested taps are returned, and no layer deeper than the deepest
requested tap is computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from jaxnst.config import Config
from jaxnst.errors import JaxnstError
from jaxnst.ops import OPS, Conv, Ops, Pool, avg_pool2x2, conv3x3, max_pool2x2, ops_for_run

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)


def layer_names(arch: str) -> tuple[str, ...]:
    """Tap names in forward order, e.g. ``('conv1_1', 'relu1_1', ..., 'pool5')``."""
    names = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


def conv_layers(arch: str) -> tuple[str, ...]:
    """Names of the convolution layers, which are the keys of the params tree."""
    return tuple(n for n in layer_names(arch) if n.startswith("conv"))


def check_taps(arch: str, taps: Iterable[str]) -> None:
    """Raises ``JaxnstError`` naming the valid taps if any of ``taps`` is unknown."""
    if arch not in BLOCKS:
        raise JaxnstError(f"unknown model {arch!r}: use one of {', '.join(BLOCKS)}")
    valid = layer_names(arch)
    bad = [t for t in taps if t not in valid]
    if bad:
        raise JaxnstError(f"unknown {arch} layer {', '.join(bad)}: valid layers are {' '.join(valid)}")


def tap_stride(tap: str) -> int:
    """Pixels of the input per pixel of ``tap``'s maps: 2 per pooling before it (``relu3_1``: 4, ``pool3``: 8)."""
    block = int(tap[4])
    return 2 ** (block if tap.startswith("pool") else block - 1)


def mask_at(mask: jax.Array, tap: str) -> jax.Array:
    """A mask of the input's positions (..., H, W) brought to ``tap``'s maps: each pooling before the
    tap averages it over the 2x2 blocks the pooling reads (dropping an odd last row or column, as
    the pooling does), so the result has the tap's height and width and a region's share of them.
    """
    for _ in range(tap_stride(tap).bit_length() - 1):
        h, w = mask.shape[-2] // 2, mask.shape[-1] // 2
        mask = mask[..., : 2 * h, : 2 * w].reshape(*mask.shape[:-2], h, 2, w, 2).mean(axis=(-3, -1))
    return mask


def check_image_size(shape: tuple[int, ...], taps: Iterable[str], what: str, field: str | None = None) -> None:
    """Raises ``JaxnstError`` unless an image of ``shape`` (..., H, W, 3) leaves every tap's maps at
    least one pixel (and the image two, for total variation); the message says to enlarge ``field``
    (default: ``style_scale`` for a style, else ``size``)."""
    h, w = shape[-3], shape[-2]
    need = max([2, *(tap_stride(t) for t in taps)])
    if min(h, w) < need:
        deepest = max(taps, key=tap_stride)
        field = field or ("style_scale" if what.startswith("style") else "size")
        raise JaxnstError(
            f"the {what} is {w}x{h} px: layer {deepest} needs at least {need} px on each side; use a larger {field} "
            "or shallower layers",
            field,
        )


class Preprocessing(NamedTuple):
    """How the weights expect their input; the model maps RGB [0, 1] to it.

    ``x_model = (flip(x) * scale - mean) / std``, where ``flip`` reverses the
    channels when ``channel_order == 'BGR'`` and ``mean``/``std`` are in the
    model's channel order.
    """

    name: str
    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __call__(self, images: jax.Array) -> jax.Array:
        images = jnp.asarray(images)
        x = images[..., ::-1] if self.channel_order == "BGR" else images
        mean = jnp.asarray(self.mean, images.dtype)
        std = jnp.asarray(self.std, images.dtype)
        return (x * self.scale - mean) / std


# Caffe VGG (Keras, MatConvNet, jcjohnson): BGR, 0-255, ImageNet mean pixel subtracted.
CAFFE = Preprocessing("caffe", "BGR", 255.0, (103.939, 116.779, 123.68))
# torchvision and flaxmodels: RGB in [0, 1], normalised by the ImageNet mean and std.
TORCH = Preprocessing("torch", "RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PREPROCESSINGS = {p.name: p for p in (CAFFE, TORCH)}


class Conv3x3(nn.Module):
    """3x3 convolution with bias; He-normal kernel init for ``--weights random``.

    ``conv(x, kernel, precision)`` computes it (see ``jaxnst.ops``)."""

    features: int
    precision: Any = None
    conv: Conv = conv3x3

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.he_normal(), (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return self.conv(x, kernel.astype(x.dtype), self.precision) + bias.astype(x.dtype)


class VGG(nn.Module):
    """VGG feature stack; returns ``{tap: NHWC activation}`` for the requested taps.

    Input: RGB float images in [0, 1], NHWC. ``preprocessing`` maps them to what
    the weights were trained on; it belongs to the weights (see ``Weights``).
    ``dtype`` is the compute type of the convolutions (e.g. ``jnp.bfloat16``;
    ``None`` keeps the input's); ``precision`` is the ``lax.Precision`` of the
    convolutions (``None``: JAX's default, TensorFloat-32 for float32 on GPUs);
    ``remat`` recomputes each block's activations in the backward pass instead
    of keeping them (``jax.checkpoint`` per block), trading compute for memory.
    ``conv`` and ``pool`` are the 3x3 convolution ``conv(x, kernel, precision)``
    and the 2x2 pooling ``pool(x)``, functions from ``jaxnst.ops`` (or any with
    their signatures); they decide speed and which derivatives exist. The
    defaults, ``ops.conv3x3`` and ``ops.max_pool2x2``, have hand-written VJPs:
    reverse mode and second order (``jax.hessian``), no ``jax.jvp``.
    """

    arch: str = "vgg19"
    taps: tuple[str, ...] = ("relu5_1",)
    preprocessing: Preprocessing = CAFFE
    dtype: Any = None
    remat: bool = False
    precision: Any = None
    conv: Conv = conv3x3
    pool: Pool = max_pool2x2
    pool_scales: tuple[float, ...] = ()  # per pool{b}, a factor its output is multiplied by (empty: none)

    def _block(self, x, names):
        out = {}
        for name in names:
            if name.startswith("conv"):
                x = Conv3x3(CHANNELS[int(name[4]) - 1], self.precision, self.conv, name=name)(x)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = self.pool(x)
                if self.pool_scales:
                    x = x * self.pool_scales[int(name[4]) - 1]
            if name in self.taps:
                out[name] = x
        return x, out

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        check_taps(self.arch, self.taps)
        names = layer_names(self.arch)
        names = names[: max(names.index(t) for t in self.taps) + 1]
        block = nn.remat(VGG._block, static_argnums=(2,)) if self.remat else VGG._block
        x = self.preprocessing(images)
        x = x if self.dtype is None else x.astype(self.dtype)
        out = {}
        for b in range(1, len(BLOCKS[self.arch]) + 1):
            in_block = tuple(n for n in names if int(n[4]) == b)  # conv{b}_l, relu{b}_l, pool{b}
            if in_block:
                x, taps = block(self, x, in_block)
                out.update(taps)
        return out


@struct.dataclass
class Weights:
    """A VGG params tree with what it needs to be used: architecture and preprocessing.

    ``params`` is ``{'conv1_1': {'kernel': (3, 3, 3, 64) HWIO, 'bias': (64,)}, ...}``.
    The other fields are static, so a ``Weights`` passes through ``jit`` as a pytree.
    """

    params: dict
    arch: str = struct.field(pytree_node=False, default="vgg19")
    preprocessing: Preprocessing = struct.field(pytree_node=False, default=CAFFE)
    source: str = struct.field(pytree_node=False, default="")


# Average pooling shrinks activations: Gatys et al. swap it in without compensating, crowsonkb
# multiplies every one by 2. These are measured (``scripts/pooling_scale.py``,
# docs/pooling-scales.json): pool b's factor makes the mean activation at relu{b+1}_1 equal under
# average and max pooling, given the factors before it, over 8 photos and paintings at 256 px
# with the Keras VGG19 weights (unscaled, max/avg is 1.27, 1.79, 2.57, 4.82 at relu2_1..relu5_1;
# scaled, 1.00 at each). pool5 feeds no tap of the 19 layers; it gets the geometric mean.
AVG_POOL_SCALES = (1.27, 1.41, 1.43, 1.88, 1.48)

# The names of numeric precision, everywhere in jaxnst: the compute type of the convolutions
# (None: the input's, float32) and the ``lax.Precision`` of their products and of the Grams.
# JAX's default for float32 on GPUs is TensorFloat-32 (10-bit mantissa); fp32 asks for full
# float32. HIGH is TF32 on GPUs and 3-pass bfloat16 on TPUs. On CPU all three are float32.
PRECISIONS = {
    "fp32": (None, lax.Precision.HIGHEST),
    "tf32": (None, lax.Precision.HIGH),
    "bf16": (jnp.bfloat16, lax.Precision.DEFAULT),
}


def matmul_precision(precision: str) -> lax.Precision:
    """The ``lax.Precision`` of the products for a name of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise JaxnstError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision][1]


def features(
    weights: Weights,
    images: jax.Array,
    taps: Sequence[str],
    *,
    pooling: str = Config.pooling,
    precision: str = Config.precision,
    remat: bool = Config.remat,
    ops: str | Ops = Config.ops,
) -> dict[str, jax.Array]:
    """Activations ``{tap: (N, H', W', C)}`` of RGB ``images`` (N, H, W, 3) in [0, 1].

    A pure function of arrays: compose it with ``jit``, ``grad`` and ``vmap``.
    ``pooling`` is ``'max'`` or ``'avg'`` (each average pooling multiplied by
    ``AVG_POOL_SCALES``, so activations keep max pooling's magnitudes); ``precision`` a name of ``PRECISIONS``
    (``'fp32'``, ``'tf32'``, ``'bf16'``: bfloat16 convolutions and activations);
    ``remat`` is ``VGG``'s. ``ops`` names the convolution and max pooling it runs
    with, a key of ``jaxnst.ops.OPS`` (or an ``ops.Ops`` of your own):

    - ``'fast'``: hand-written VJPs, Winograd on CPU where faster. Reverse mode
      (``grad``, ``vjp``) and ``jax.hessian``; ``jax.jvp`` and ``jacfwd`` raise.
    - ``'direct'``: the same without Winograd.
    - ``'lax'``: plain ``lax``; every derivative, forward mode included.
    - ``'auto'``: ``'fast'`` here. A run (``LossSpec.from_config`` with its pixel count) picks
      ``'direct'`` when it is too short to repay Winograd's compile; a call of its own has no run
      to weigh, as ``from_config`` without a pixel count.

    The defaults are ``Config``'s (``Config.pooling``, ``precision``, ``remat``, ``ops``).

    >>> import jaxnst
    >>> w = jaxnst.random_weights("vgg19", seed=0)
    >>> f = jaxnst.features(w, jnp.zeros((1, 32, 32, 3)), ["relu1_1", "relu2_1"])
    >>> f["relu2_1"].shape
    (1, 16, 16, 128)
    >>> tap = lambda x: jaxnst.features(w, x, ["relu2_1"], ops="lax")["relu2_1"]
    >>> y, dy = jax.jvp(tap, (jnp.zeros((1, 32, 32, 3)),), (jnp.ones((1, 32, 32, 3)),))
    """
    if ops == "auto":  # no run to weigh the compile against: the fastest step (ops_for_run without pixels)
        ops = ops_for_run(None, 0)
    if isinstance(ops, str):
        if ops not in OPS:
            raise JaxnstError(f"unknown ops {ops!r}: use one of {', '.join(OPS)}")
        ops = OPS[ops]
    if pooling not in ("max", "avg"):
        raise JaxnstError(f"unknown pooling {pooling!r}: use max or avg")
    pool = {"max": ops.max_pool, "avg": avg_pool2x2}[pooling]
    scales = AVG_POOL_SCALES if pooling == "avg" else ()
    mm = matmul_precision(precision)
    model = VGG(
        weights.arch, tuple(taps), weights.preprocessing, PRECISIONS[precision][0], remat, mm, ops.conv, pool, scales
    )
    return model.apply({"params": weights.params}, images)


@dataclasses.dataclass(frozen=True)
class Network:
    """How the VGG runs, apart from what the loss asks of it: the arguments of ``features``
    after the taps, with ``Config``'s defaults. Frozen and hashable, so it can be a static argument of ``jit``."""

    pooling: str = Config.pooling
    precision: str = Config.precision  # a name of PRECISIONS
    remat: bool = Config.remat
    ops: str | Ops = Config.ops  # a key of jaxnst.ops.OPS ("auto": "fast", see ``features``), or an Ops of your own

    def features(self, weights: Weights, images: jax.Array, taps: Sequence[str]) -> dict[str, jax.Array]:
        return features(weights, images, taps, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @property
    def matmul_precision(self) -> lax.Precision:
        return matmul_precision(self.precision)


def init_params(arch: str, key: jax.Array) -> dict:
    """He-initialised params of every conv layer of ``arch``."""
    model = VGG(arch, (layer_names(arch)[-1],))
    return model.init(key, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"]


def param_shapes(arch: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{'conv1_1': {'kernel': (3, 3, 3, 64), 'bias': (64,)}, ...}`` from ``model.init``."""
    tree = jax.eval_shape(lambda k: init_params(arch, k), jax.random.key(0))
    return jax.tree.map(lambda s: tuple(s.shape), tree)
