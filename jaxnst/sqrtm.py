"""Square roots of symmetric positive semi-definite matrices, for the Wasserstein-2 style loss.

The W2 distance between Gaussians needs ``tr sqrt(M)`` of an SPD matrix ``M`` and its
gradient, which is simply

.. math:: \\frac{\\partial}{\\partial M} \\operatorname{tr} \\sqrt{M} = \\tfrac12 M^{-1/2}

(symmetric ``M``), so ``trace_sqrtm`` has a custom JVP (which JAX transposes for reverse
mode) that needs no Lyapunov solve and no eigenvalue gaps: where autodiff through ``eigh``
divides by ``lambda_i - lambda_j`` and fails on repeated eigenvalues (the many dead channels
of a ReLU layer give them), this is finite wherever ``M`` is positive definite. Two ways to
get ``sqrt(M)`` and ``M^{-1/2}``:

* ``'eigh'``: an eigendecomposition; exact to float32 rounding whatever the conditioning.
* ``'newton_schulz'``: the coupled Newton-Schulz iteration (Higham, "Functions of Matrices",
  6.3; as in Lin & Maji's matrix-sqrt and crowsonkb/style-transfer-pytorch), matrix products
  only, fast on accelerators; eigenvalues far below the Frobenius norm converge slowly.

``scripts/bench_sqrtm.py`` measures both (docs/benchmarks.md); ``DEFAULT_METHOD`` follows it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

DEFAULT_METHOD = "eigh"
NEWTON_SCHULZ_ITERATIONS = 12  # crowsonkb's choice; see scripts/bench_sqrtm.py for the error it leaves
HIGHEST = lax.Precision.HIGHEST  # TensorFloat-32 products would undo the iteration's accuracy on GPUs


def symmetric(a: jax.Array) -> jax.Array:
    """``(a + a^T) / 2`` over the last two axes."""
    return (a + jnp.swapaxes(a, -1, -2)) / 2


def _eigh_one_at_a_time(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    w, v = lax.map(jnp.linalg.eigh, a.reshape((-1, *a.shape[-2:])))
    return w.reshape(a.shape[:-1]), v.reshape(a.shape)


def _eigh_batched(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    return tuple(jnp.linalg.eigh(a))


def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``jnp.linalg.eigh`` of symmetric matrices (..., C, C), on CPUs one matrix at a time,
    also under ``vmap``.

    jaxlib 0.10's CPU LAPACK kernels split a batch of matrices over XLA's intra-op thread pool and
    block until it is done; when as many batched calls run at once as the pool has threads (two on
    a 2-core machine, and a batched W2 loss has one per style layer) every thread waits and the
    program hangs for ever. Unbatched calls run on the calling thread. Other platforms keep the
    batched kernel.
    """
    return lax.platform_dependent(a, cpu=_eigh_cpu, default=_eigh_batched)


_eigh_cpu = jax.custom_batching.sequential_vmap(_eigh_one_at_a_time)


def _roots_eigh(a: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The eigenvectors of symmetric ``a`` (..., C, C) and the square roots and inverse square roots of its
    eigenvalues (..., C)."""
    w, v = eigh(symmetric(a))
    # Eigenvalues below C * eps of the largest are rounding, not the matrix (a ReLU layer's dead
    # channels leave hundreds of them); their inverse square roots would be huge and random. The
    # inverse takes them at that floor, the root at their value (>= 0).
    floor = jnp.max(w, axis=-1, keepdims=True) * a.shape[-1] * jnp.finfo(a.dtype).eps
    inv = lax.rsqrt(jnp.maximum(w, jnp.maximum(floor, jnp.finfo(a.dtype).tiny)))
    return v, jnp.sqrt(jnp.maximum(w, 0.0)), inv


def _outer(v: jax.Array, d: jax.Array) -> jax.Array:
    """``v diag(d) v^T``."""
    return jnp.einsum("...ij,...j,...kj->...ik", v, d, v, precision=HIGHEST)


def _sqrt_and_inverse_newton_schulz(a: jax.Array, iterations: int) -> tuple[jax.Array, jax.Array]:
    # Y_0 = A / |A|_F, Z_0 = I; T = (3I - Z Y) / 2, Y <- Y T, Z <- T Z: Y -> sqrt(A/|A|), Z -> its inverse.
    norm = jnp.sqrt(jnp.sum(jnp.square(a), axis=(-2, -1), keepdims=True))
    norm = jnp.where(norm > 0, norm, 1.0)
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    mm = functools.partial(jnp.matmul, precision=HIGHEST)

    def body(_, yz):
        y, z = yz
        t = (3 * eye - mm(z, y)) / 2
        return mm(y, t), mm(t, z)

    y, z = lax.fori_loop(0, iterations, body, (a / norm, jnp.broadcast_to(eye, a.shape)))
    root = jnp.sqrt(norm)
    return y * root, z / root


def sqrt_and_inverse(a: jax.Array, method: str = DEFAULT_METHOD) -> tuple[jax.Array, jax.Array]:
    """``(sqrt(a), a^{-1/2})`` of symmetric positive (semi-)definite matrices (..., C, C).

    ``method`` is ``'eigh'`` or ``'newton_schulz'`` (module docstring). With ``'eigh'`` a
    singular ``a`` gets the pseudo-inverse square root. Not meant to be differentiated:
    use ``trace_sqrtm`` in a loss.
    """
    if method == "eigh":
        v, root, inv = _roots_eigh(a)
        return _outer(v, root), _outer(v, inv)
    if method == "newton_schulz":
        return _sqrt_and_inverse_newton_schulz(a, NEWTON_SCHULZ_ITERATIONS)
    raise ValueError(f"unknown matrix square root method {method!r}: use eigh or newton_schulz")


def sqrtm(a: jax.Array, method: str = DEFAULT_METHOD) -> jax.Array:
    """The principal square root of symmetric positive semi-definite matrices (..., C, C)."""
    return sqrt_and_inverse(a, method)[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def trace_sqrtm(m: jax.Array, method: str = DEFAULT_METHOD) -> jax.Array:
    """``tr sqrt(m)`` of symmetric positive definite matrices (..., C, C) -> (...), whose derivative
    along ``dm`` is ``tr(m^{-1/2} dm) / 2`` (module docstring): forward and reverse mode.

    >>> trace_sqrtm(jnp.diag(jnp.array([4.0, 9.0])))
    Array(5., dtype=float32)
    """
    return _trace_and_inverse(m, method)[0]


def _trace_and_inverse(m: jax.Array, method: str) -> tuple[jax.Array, jax.Array]:
    """``(tr sqrt(m), m^{-1/2})``; with ``'eigh'`` the trace is the sum of the eigenvalues' roots, no root formed."""
    if method == "eigh":
        v, root, inv = _roots_eigh(m)
        return jnp.sum(root, axis=-1), _outer(v, inv)
    root, inv = sqrt_and_inverse(m, method)
    return jnp.trace(root, axis1=-2, axis2=-1), inv


@trace_sqrtm.defjvp
def _trace_sqrtm_jvp(method, primals, tangents):
    (m,), (dm,) = primals, tangents
    trace, inv = _trace_and_inverse(m, method)
    return trace, jnp.sum(symmetric(inv) * dm, axis=(-2, -1)) / 2
