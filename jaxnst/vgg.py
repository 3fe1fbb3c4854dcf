"""VGG16/19 feature stacks (Simonyan & Zisserman 2014) as a Flax linen module.

The module only computes: weights come from ``jaxnst.weights``. Every tap is
addressable by name: ``conv{b}_{l}`` (pre-ReLU), ``relu{b}_{l}`` and ``pool{b}``.
Only the requested taps are returned, and no layer deeper than the deepest
requested tap is computed.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from jaxnst.errors import JaxnstError

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


_DIMS = ("NHWC", "HWIO", "NHWC")

# Winograd F(2x2, 3x3) (Lavin & Gray 2016): Y = A^T [(G g G^T) * (B^T d B)] A per 4x4 input tile.
_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
_AT = ((1, 1, 1, 0), (0, 1, -1, -1))
# Layers with at least this many input and output channels use Winograd on CPU: there it
# beat XLA's direct convolution 1.5-2x (jaxlib 0.10, scripts/bench.py), while at 64
# channels its tile transforms cost more than the 2.25x fewer multiplications save.
WINOGRAD_MIN_CHANNELS = 128


def _direct(x, kernel, precision=None):
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS, precision=precision)


def _combine(matrix, items):
    """``[sum_a matrix[i][a] * items[a] for i]``, unrolled so XLA fuses it elementwise."""
    out = []
    for row in matrix:
        terms = [it if c == 1 else -it if c == -1 else c * it for c, it in zip(row, items, strict=True) if c]
        out.append(functools.reduce(operator.add, terms))
    return out


def _winograd_kernel(kernel):
    """The 16 transformed kernels ``(G g G^T)_ij``, each (C_in, C_out)."""
    k = [[kernel[a, b] for b in range(3)] for a in range(3)]
    gk = [_combine(_G, [k[a][b] for a in range(3)]) for b in range(3)]
    return [_combine(_G, [gk[b][i] for b in range(3)]) for i in range(4)]


# G J = P G, where J reverses the 3 taps and P swaps rows 0 and 3 of G. So the transformed
# kernel of the spatially flipped kernel is the transformed kernel with its 4x4 tile positions
# permuted by P: the input gradient reuses the forward's transform instead of transposing the
# kernel first (the HWIO transpose cost ~20 ms per 512-channel layer per dispatch on CPU).
_FLIP = (3, 1, 2, 0)


def _winograd(x, kernel, transposed=False, precision=None):
    """``x`` convolved with ``kernel`` by Winograd F(2x2, 3x3); with ``transposed``, convolved
    with the spatially flipped, in/out-swapped kernel instead (the input gradient)."""
    n, h, w, c = x.shape
    th, tw = -(-h // 2), -(-w // 2)  # 2x2 output tiles
    xp = jnp.pad(x, ((0, 0), (1, 2 * th + 1 - h), (1, 2 * tw + 1 - w), (0, 0)))
    d = [[xp[:, a : a + 2 * th : 2, b : b + 2 * tw : 2] for b in range(4)] for a in range(4)]
    bd = [_combine(_BT, [d[a][b] for a in range(4)]) for b in range(4)]  # bd[b][i]
    v = [_combine(_BT, [bd[b][i] for b in range(4)]) for i in range(4)]  # v[i][j] = (B^T d B)_ij
    u = _winograd_kernel(kernel)
    if transposed:
        u = [[u[_FLIP[i]][_FLIP[j]] for j in range(4)] for i in range(4)]
    # Contract C_in of u, or C_out when transposed (a transposed-operand matmul, no copy).
    dims = (((1,), (1 if transposed else 0,)), ((), ()))
    # 16 separate matmuls: XLA:CPU ran them faster than one batched dot.
    m = [
        [lax.dot_general(v[i][j].reshape(-1, c), u[i][j], dims, precision).reshape(n, th, tw, -1) for j in range(4)]
        for i in range(4)
    ]
    am = [_combine(_AT, [m[i][j] for i in range(4)]) for j in range(4)]  # am[j][r]
    y = [_combine(_AT, [am[j][r] for j in range(4)]) for r in range(2)]  # y[r][s]
    out = jnp.stack([jnp.stack(y[r], axis=3) for r in range(2)], axis=2)  # (n, th, 2, tw, 2, c_out)
    return out.reshape(n, 2 * th, 2 * tw, -1)[:, :h, :w]


def _conv(x, kernel, transposed=False, precision=None):
    cin, cout = kernel.shape[2:]
    fast = x.dtype == jnp.float32 and min(cin, cout) >= WINOGRAD_MIN_CHANNELS and jax.default_backend() == "cpu"
    if fast:
        return _winograd(x, kernel, transposed, precision)
    return _direct(x, jnp.flip(kernel, (0, 1)).swapaxes(2, 3) if transposed else kernel, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3(x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """3x3 stride-1 'SAME' convolution, NHWC x HWIO -> NHWC.

    ``precision`` is ``lax.Precision`` of the multiplications (``None``: JAX's
    default, which on GPUs is TensorFloat-32 for float32), in both passes.

    On CPU, float32 layers of >= ``WINOGRAD_MIN_CHANNELS`` channels use Winograd
    F(2x2, 3x3) (same result to ~1e-6 relative, 2.25x fewer multiplications).

    Its VJP is written out because the gradient XLA derives for the input is a
    convolution whose CPU lowering inside ``fori_loop``/``while_loop`` bodies
    (so also inside ``optax.lbfgs``) ran 4-5x slower than at the top level of a
    jit (jaxlib 0.10). Here it is a plain convolution of the cotangent with the
    spatially flipped, in/out-transposed kernel, which takes the fast path
    everywhere. ``tests/test_vgg.py`` checks it against ``jax.vjp`` of
    ``lax.conv``. Forward-mode (``jvp``) and second derivatives are not defined.
    """
    return _conv(x, kernel, precision=precision)


def _conv3x3_fwd(x, kernel, precision):
    return _conv(x, kernel, precision=precision), (x, kernel)


def _conv3x3_bwd(precision, res, g):
    x, kernel = res
    grad_x = _conv(g, kernel, transposed=True, precision=precision)
    # Only used when differentiating w.r.t. the weights; jit drops it otherwise.
    (grad_kernel,) = jax.vjp(lambda k: _direct(x, k, precision), kernel)[1](g)
    return grad_x, grad_kernel


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _windows(x):
    # (N, H, W, C) -> (N, H/2, 2, W/2, 2, C); an odd last row/column is dropped, as VALID pooling does.
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def max_pool2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 max pooling, NHWC; the gradient goes to the first maximum of each
    window in row-major order, as in PyTorch and Caffe.

    XLA's own gradient of ``reduce_window`` max is a select-and-scatter that took
    ~9x longer on CPU than this elementwise version (jaxlib 0.10), and splitting the
    gradient among ties (``jnp.max``) would differ from the reference frameworks in
    flat image regions, where ties are common.
    """
    return _windows(x).max(axis=(2, 4))


def _max_pool_fwd(x):
    y = max_pool2x2(x)
    return y, (x, y)


def _max_pool_bwd(res, g):
    x, y = res
    win = _windows(x)
    taken = jnp.zeros(y.shape, bool)
    rows = []
    for i in (0, 1):
        cols = []
        for j in (0, 1):
            hit = (win[:, :, i, :, j] == y) & ~taken
            taken = taken | hit
            cols.append(jnp.where(hit, g, jnp.zeros((), g.dtype)))
        rows.append(jnp.stack(cols, axis=3))
    grad = jnp.stack(rows, axis=2).reshape(win.shape[0], win.shape[1] * 2, win.shape[3] * 2, win.shape[5])
    return (jnp.pad(grad, ((0, 0), (0, x.shape[1] - grad.shape[1]), (0, x.shape[2] - grad.shape[2]), (0, 0))),)


max_pool2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def avg_pool2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 average pooling, NHWC (VALID: an odd last row/column is dropped)."""
    return _windows(x).mean(axis=(2, 4))


POOLS = {"max": max_pool2x2, "avg": avg_pool2x2}


class Conv3x3(nn.Module):
    """3x3 convolution with bias; He-normal kernel init for ``--weights random``."""

    features: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.he_normal(), (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return conv3x3(x, kernel.astype(x.dtype), self.precision) + bias.astype(x.dtype)


class VGG(nn.Module):
    """VGG feature stack; returns ``{tap: NHWC activation}`` for the requested taps.

    Input: RGB float images in [0, 1], NHWC. ``preprocessing`` maps them to what
    the weights were trained on; it belongs to the weights (see ``Weights``).
    ``dtype`` is the compute type of the convolutions (e.g. ``jnp.bfloat16``;
    ``None`` keeps the input's); ``precision`` is the ``lax.Precision`` of the
    convolutions (``None``: JAX's default, TensorFloat-32 for float32 on GPUs);
    ``remat`` recomputes each block's activations in the backward pass instead
    of keeping them (``jax.checkpoint`` per block), trading compute for memory.
    """

    arch: str = "vgg19"
    taps: tuple[str, ...] = ("relu5_1",)
    pooling: str = "max"
    preprocessing: Preprocessing = CAFFE
    dtype: Any = None
    remat: bool = False
    precision: Any = None

    def _block(self, x, names):
        out = {}
        for name in names:
            if name.startswith("conv"):
                x = Conv3x3(CHANNELS[int(name[4]) - 1], self.precision, name=name)(x)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = POOLS[self.pooling](x)
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


def features(
    weights: Weights,
    images: jax.Array,
    taps: Sequence[str],
    *,
    pooling: str = "max",
    dtype: Any = None,
    remat: bool = False,
    precision: Any = None,
) -> dict[str, jax.Array]:
    """Activations ``{tap: (N, H', W', C)}`` of RGB ``images`` (N, H, W, 3) in [0, 1].

    A pure function of arrays: compose it with ``jit``, ``grad`` and ``vmap``.
    ``dtype``, ``remat`` and ``precision`` are those of ``VGG``.

    >>> w = jaxnst.random_weights("vgg19", seed=0)
    >>> f = jaxnst.features(w, jnp.zeros((1, 32, 32, 3)), ["relu1_1", "relu2_1"])
    >>> f["relu2_1"].shape
    (1, 16, 16, 128)
    """
    model = VGG(weights.arch, tuple(taps), pooling, weights.preprocessing, dtype, remat, precision)
    return model.apply({"params": weights.params}, images)


def init_params(arch: str, key: jax.Array) -> dict:
    """He-initialised params of every conv layer of ``arch``."""
    model = VGG(arch, (layer_names(arch)[-1],))
    return model.init(key, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"]


def param_shapes(arch: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{'conv1_1': {'kernel': (3, 3, 3, 64), 'bias': (64,)}, ...}`` from ``model.init``."""
    tree = jax.eval_shape(lambda k: init_params(arch, k), jax.random.key(0))
    return jax.tree.map(lambda s: tuple(s.shape), tree)
