"""Convolution and pooling kernels of the VGG, and the choice among them.

Every convolution here is a 3x3 stride-1 'SAME' convolution with one signature,
``conv(x, kernel, precision=None) -> y``, NHWC x HWIO -> NHWC; every pooling is
a 2x2 stride-2 'VALID' pooling ``pool(x) -> y``, NHWC (an odd last row or column
is dropped). ``precision`` is the ``lax.Precision`` of the multiplications
(``None``: JAX's default, which on GPUs is TensorFloat-32 for float32).

They compute the same values (to float32 rounding) and differ in speed and in the
derivatives JAX can take through them (checked in ``tests/test_ops.py``):

======================  =====================================  ===========================
function                how                                    derivatives
======================  =====================================  ===========================
``conv3x3``             hand-written VJP; Winograd on CPU for  reverse mode and second
                        >= 128 channels, else ``lax``          order; no forward mode
``direct_conv3x3``      hand-written VJP; ``lax`` conv         the same
``max_pool2x2``         hand-written VJP                       the same
``lax_conv3x3``         ``lax.conv_general_dilated``           all
``winograd_conv3x3``    Winograd, derivatives derived by JAX   all
``lax_max_pool2x2``     ``lax.reduce_window``                  all
``avg_pool2x2``         mean of each window                    all
======================  =====================================  ===========================

*Reverse mode and second order*: ``jax.grad``, ``vjp``, ``jacrev``, and through the
hand-written VJP rule, which is ordinary JAX code that JAX differentiates again,
``jax.hessian`` (``jacfwd`` of ``jacrev``), ``jax.jvp`` of ``jax.grad`` and ``grad``
of ``grad``, equal to the plain-``lax`` ones. *No forward mode*: ``jax.jvp`` and
``jax.jacfwd`` of a ``jax.custom_vjp`` function, and so ``jax.jacrev(jax.jacfwd(f))``,
raise ``TypeError``. *All*: every one of those.

``OPS`` names the sets a VGG runs with (``features(..., ops=...)``): ``'fast'``,
the default; ``'direct'``, without Winograd; ``'lax'``, every derivative.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Conv = Callable[..., jax.Array]  # conv(x, kernel, precision=None) -> y, 3x3 'SAME', NHWC x HWIO -> NHWC
Pool = Callable[[jax.Array], jax.Array]  # pool(x) -> y, 2x2 stride 2 'VALID', NHWC

_DIMS = ("NHWC", "HWIO", "NHWC")

# Winograd F(2x2, 3x3) (Lavin & Gray 2016): Y = A^T [(G g G^T) * (B^T d B)] A per 4x4 input tile.
_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
_AT = ((1, 1, 1, 0), (0, 1, -1, -1))
# Layers with at least this many input and output channels use Winograd on CPU: there it
# beat XLA's direct convolution 1.5-2x (jaxlib 0.10, scripts/bench.py), while at 64
# channels its tile transforms cost more than the 2.25x fewer multiplications save.
WINOGRAD_MIN_CHANNELS = 128


def lax_conv3x3(x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """XLA's direct convolution, ``lax.conv_general_dilated``; JAX derives every derivative.

    On CPU, XLA's gradient of it for the input ran 4-5x slower inside ``fori_loop``/
    ``while_loop`` bodies than at the top level of a jit (jaxlib 0.10): use it where
    forward mode is needed, ``conv3x3`` for speed.
    """
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


def winograd_conv3x3(
    x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None, *, transposed: bool = False
) -> jax.Array:
    """Winograd F(2x2, 3x3) (Lavin & Gray 2016): ``Y = A^T [(G g G^T) * (B^T d B)] A`` per
    4x4 input tile ``d`` and 2x2 output tile, 2.25x fewer multiplications than the direct
    convolution, the same result to ~1e-6 relative in float32.

    With ``transposed``, ``x`` is convolved with the spatially flipped, in/out-swapped kernel
    instead (the input gradient of the convolution). Plain JAX operations: JAX derives every
    derivative, though its reverse mode is slower than ``conv3x3``'s.
    """
    n, h, w, c = x.shape
    cout = kernel.shape[2 if transposed else 3]
    th, tw = -(-h // 2), -(-w // 2)  # 2x2 output tiles; none for an empty map, so no -1 in the reshapes below
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
        [
            lax.dot_general(v[i][j].reshape(n * th * tw, c), u[i][j], dims, precision).reshape(n, th, tw, cout)
            for j in range(4)
        ]
        for i in range(4)
    ]
    am = [_combine(_AT, [m[i][j] for i in range(4)]) for j in range(4)]  # am[j][r]
    y = [_combine(_AT, [am[j][r] for j in range(4)]) for r in range(2)]  # y[r][s]
    out = jnp.stack([jnp.stack(y[r], axis=3) for r in range(2)], axis=2)  # (n, th, 2, tw, 2, c_out)
    return out.reshape(n, 2 * th, 2 * tw, cout)[:, :h, :w]


def use_winograd(x: jax.Array, kernel: jax.Array) -> bool:
    """``conv3x3``'s rule: Winograd for float32 on CPU with >= ``WINOGRAD_MIN_CHANNELS``
    input and output channels, where it beat the direct convolution; direct otherwise."""
    cin, cout = kernel.shape[2:]
    return x.dtype == jnp.float32 and min(cin, cout) >= WINOGRAD_MIN_CHANNELS and jax.default_backend() == "cpu"


def _conv(x, kernel, precision, winograd, transposed=False):
    """``x`` convolved with ``kernel`` (with ``transposed``: with the spatially flipped,
    in/out-swapped kernel), by Winograd or by ``lax``."""
    if winograd:
        return winograd_conv3x3(x, kernel, precision, transposed=transposed)
    return lax_conv3x3(x, jnp.flip(kernel, (0, 1)).swapaxes(2, 3) if transposed else kernel, precision)


# conv3x3 and direct_conv3x3: the static ``winograd`` picks the algorithm of both passes.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _hand_vjp(x, kernel, precision, winograd):
    return _conv(x, kernel, precision, winograd)


def _hand_vjp_fwd(x, kernel, precision, winograd):
    return _conv(x, kernel, precision, winograd), (x, kernel)


def _hand_vjp_bwd(precision, winograd, res, g):
    x, kernel = res
    grad_x = _conv(g, kernel, precision, winograd, transposed=True)
    # Only used when differentiating w.r.t. the weights; jit drops it otherwise.
    (grad_kernel,) = jax.vjp(lambda k: lax_conv3x3(x, k, precision), kernel)[1](g)
    return grad_x, grad_kernel


_hand_vjp.defvjp(_hand_vjp_fwd, _hand_vjp_bwd)


def conv3x3(x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """The default convolution: ``winograd_conv3x3`` where ``use_winograd`` (on CPU, float32,
    >= ``WINOGRAD_MIN_CHANNELS`` channels), ``lax_conv3x3`` elsewhere, with a hand-written VJP.

    The VJP is written out because the gradient XLA derives for the input is a convolution
    whose CPU lowering inside ``fori_loop``/``while_loop`` bodies (so also inside
    ``optax.lbfgs``) ran 4-5x slower than at the top level of a jit (jaxlib 0.10). Here the
    input gradient is a plain convolution of the cotangent ``g`` with the spatially flipped,
    in/out-transposed kernel, ``dx = conv(g, flip(kernel)^T)``, by the same algorithm as the
    forward pass, which takes the fast path everywhere; the kernel gradient is XLA's (``jit``
    drops it unless the weights are differentiated).

    Derivatives: reverse mode (``jax.grad``, ``vjp``, ``jacrev``), and second order through the
    VJP rule: ``jax.hessian``, ``jax.jvp`` of ``jax.grad``, ``grad`` of ``grad``. ``jax.jvp``
    and ``jax.jacfwd`` of it raise ``TypeError``; use ``lax_conv3x3`` for those.
    """
    return _hand_vjp(x, kernel, precision, use_winograd(x, kernel))


def direct_conv3x3(x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """``conv3x3`` without Winograd: ``lax_conv3x3`` in both passes, with the hand-written VJP
    (so ``conv3x3``'s derivatives: no forward mode)."""
    return _hand_vjp(x, kernel, precision, False)


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

    Derivatives: ``conv3x3``'s, reverse mode and second order through the VJP rule (whose
    second derivatives are zero almost everywhere, as ``lax_max_pool2x2``'s); no ``jax.jvp``.
    """
    return _windows(x).max(axis=(2, 4))


def _max_pool_fwd(x):
    # Not max_pool2x2(x): a custom_vjp call here would refuse the forward-mode pass of jax.hessian.
    y = _windows(x).max(axis=(2, 4))
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


def lax_max_pool2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 max pooling by ``lax.reduce_window``; JAX derives every derivative (its
    gradient is a select-and-scatter, slower on CPU than ``max_pool2x2``'s)."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def avg_pool2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 average pooling, NHWC (VALID: an odd last row/column is dropped).
    Plain JAX operations: every derivative."""
    return _windows(x).mean(axis=(2, 4))


# Below this many pixel-steps (image pixels x steps) a run finishes sooner without Winograd: on
# the 2-core CPU (jaxlib 0.10) its step compiled ~3 s longer than the direct one (4.0 vs 1.1 s at
# 128 px) and saved ~1.2e-6 s per pixel per step (0.165 vs 0.220 s/step at 256 px, 0.68 vs 0.91 at
# 512 px; docs/benchmarks.md). So: about 200 steps at 128 px, 50 at 256, 13 at 512.
WINOGRAD_MIN_WORK = 2.5e6


def ops_for_run(pixels: int | None, steps: int) -> str:
    """The key of ``OPS`` that ``ops='auto'`` picks for ``steps`` steps on images of ``pixels``
    pixels: ``'fast'`` where Winograd repays its longer compile, else ``'direct'`` (the same
    hand-written VJPs and derivatives). ``pixels=None`` (unknown): ``'fast'``. Only CPUs use
    Winograd, so elsewhere both are the same program."""
    return "fast" if pixels is None or pixels * steps >= WINOGRAD_MIN_WORK else "direct"


class Ops(NamedTuple):
    """The convolution and the max pooling a VGG runs with (average pooling has one
    implementation, ``avg_pool2x2``). Hashable, so it can be a static argument of ``jit``."""

    conv: Conv
    max_pool: Pool


OPS = {
    # Hand-written VJPs, Winograd on CPU where faster: the fastest; reverse mode and second order.
    "fast": Ops(conv3x3, max_pool2x2),
    # The same without Winograd.
    "direct": Ops(direct_conv3x3, max_pool2x2),
    # Plain lax: every derivative, forward mode (jax.jvp, jax.jacfwd) included.
    "lax": Ops(lax_conv3x3, lax_max_pool2x2),
}
