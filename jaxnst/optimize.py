"""The objective of style transfer and the jitted optimisation step around it.

``objective`` is a pure function of the image; ``make_step`` wraps any loss
function and any Optax transformation into ``(image, opt_state, *args) ->
(image, opt_state, loss)``; ``run_steps`` runs many of them in one dispatch so
the Python loop (progress bar, saves) never waits on a step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnst import losses
from jaxnst.config import Config
from jaxnst.vgg import Weights, features


class Targets(NamedTuple):
    """What the image is pulled towards: content features and (blended) style Grams."""

    content: dict[str, jax.Array]  # tap -> (1, H, W, C)
    style: dict[str, jax.Array]  # tap -> (1, C, C)


class Hyper(NamedTuple):
    """Loss weights as arrays, so one compiled program serves every value (and vmaps)."""

    content_weight: jax.Array
    style_weight: jax.Array
    tv_weight: jax.Array

    @classmethod
    def from_config(cls, cfg: Config) -> Hyper:
        f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
        return cls(f32(cfg.content_weight), f32(cfg.style_weight), f32(cfg.tv_weight))


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The static (shape- and graph-determining) part of the objective."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    gram_norm: str = "chw"
    tv_kind: str = "l2"
    pooling: str = "max"
    precision: str = "fp32"
    remat: bool = False
    ops: str = "fast"  # jaxnst.ops.OPS: the convolution and pooling of the step (custom VJPs, Winograd on CPU)

    @classmethod
    def from_config(cls, cfg: Config) -> LossSpec:
        return cls(
            tuple(cfg.content_layers),
            tuple(cfg.style_layers),
            cfg.gram_norm,
            cfg.tv_kind,
            cfg.pooling,
            cfg.precision,
            cfg.remat,
        )

    def features(self, weights: Weights, images: jax.Array, taps) -> dict[str, jax.Array]:
        dtype = jnp.bfloat16 if self.precision == "bf16" else None
        return features(
            weights,
            images,
            taps,
            pooling=self.pooling,
            dtype=dtype,
            remat=self.remat,
            precision=self.matmul_precision,
            ops=self.ops,
        )

    @property
    def forward_only(self) -> LossSpec:
        """This spec with plain-``lax`` kernels, for what is never differentiated (targets, reported terms).

        XLA compiles them in a fraction of the Winograd graph's time; the values agree to float32 rounding.
        """
        return dataclasses.replace(self, ops="lax")

    def gram(self, f: jax.Array) -> jax.Array:
        return losses.gram(f, norm=self.gram_norm, precision=self.matmul_precision)

    @property
    def matmul_precision(self) -> lax.Precision:
        # JAX's default for float32 on GPUs is TensorFloat-32 (10-bit mantissa); fp32 asks for
        # full float32. HIGH is TF32 on GPUs and 3-pass bfloat16 on TPUs. On CPU all are float32.
        return {"fp32": lax.Precision.HIGHEST, "tf32": lax.Precision.HIGH, "bf16": lax.Precision.DEFAULT}[
            self.precision
        ]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))


def make_targets(
    weights: Weights,
    content: jax.Array | None,
    styles: list[jax.Array],
    spec: LossSpec,
    blend: tuple[float, ...] | None = None,
) -> Targets:
    """Content features of ``content`` (1, H, W, 3) and the Gram blend of ``styles``.

    Each style image keeps its own shape; their Grams (C x C) are averaged with
    the ``blend`` weights (normalised to sum to 1), as jcjohnson/neural-style does.
    One jitted call (compiled once per shapes and ``spec``): run op by op, the
    network's hundreds of small operations would each be compiled on their own.
    It uses ``spec.forward_only``: nothing here is differentiated.
    """
    blend = (1.0,) * len(styles) if blend is None else tuple(float(b) for b in blend)
    if len(blend) != len(styles):
        from jaxnst.errors import JaxnstError

        raise JaxnstError(f"{len(blend)} style blend weights for {len(styles)} style images: give one per style")
    return _targets(weights, content, list(styles), spec.forward_only, blend)


@functools.partial(jax.jit, static_argnames=("spec", "blend"))
def _targets(weights: Weights, content, styles: list, spec: LossSpec, blend: tuple[float, ...]) -> Targets:
    feats = spec.features(weights, content, spec.content_layers) if spec.content_layers and content is not None else {}
    total = sum(blend)
    style = {}
    for b, s in zip(blend, styles, strict=True):
        sf = spec.features(weights, s, spec.style_layers) if spec.style_layers else {}
        for name, f in sf.items():
            style[name] = style.get(name, 0.0) + (b / total) * spec.gram(f)
    return Targets(feats, style)


def objective(
    image: jax.Array, weights: Weights, targets: Targets, hyper: Hyper, *, spec: LossSpec
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``alpha * content + beta * style + gamma * tv`` of ``image`` (N, H, W, 3), summed over N.

    Returns ``(total, {'content', 'style', 'tv'})`` with the unweighted terms.
    Content losses of several layers are summed; style layers weigh 1 each.
    """
    feats = spec.features(weights, image, spec.taps)
    c = sum((losses.content_loss(feats[n], targets.content[n]) for n in spec.content_layers), jnp.zeros(()))
    grams = {n: spec.gram(feats[n]) for n in spec.style_layers}
    s = losses.style_loss(grams, targets.style) if grams else jnp.zeros(())
    tv = losses.tv_loss(image, kind=spec.tv_kind)
    total = hyper.content_weight * c + hyper.style_weight * s + hyper.tv_weight * tv
    return jnp.sum(total), {"content": jnp.sum(c), "style": jnp.sum(s), "tv": jnp.sum(tv)}


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """Adam with the learning rate held in its state (so it can be an array), or L-BFGS."""
    if cfg.optimizer == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)
    # Zoom line search picks the step; memory 10 as in optax and minFunc.
    return optax.lbfgs()


def make_step(
    loss_fn: Callable[..., jax.Array],
    optimizer: optax.GradientTransformation,
    *,
    clip: bool = True,
    linesearch: bool = False,
) -> Callable:
    """One optimisation step over the image, as a pure function.

    ``loss_fn(image, *args) -> scalar``. The step returns the loss at the image it
    was given. With ``clip`` the image is projected back to [0, 1] after each
    update. ``linesearch=True`` is for ``optax.lbfgs`` (and other transformations
    that take ``value``/``grad``/``value_fn``): the value and gradient found by the
    line search are reused, and the image is not clipped between steps, because
    a projection would invalidate them (clip the final image instead).
    """

    def step(image, opt_state, *args):
        if linesearch:
            fn = lambda x: loss_fn(x, *args)  # noqa: E731
            loss, grad = optax.value_and_grad_from_state(fn)(image, state=opt_state)
            updates, opt_state = optimizer.update(grad, opt_state, image, value=loss, grad=grad, value_fn=fn)
            return optax.apply_updates(image, updates), opt_state, loss
        loss, grad = jax.value_and_grad(loss_fn)(image, *args)
        updates, opt_state = optimizer.update(grad, opt_state, image)
        image = optax.apply_updates(image, updates)
        return (jnp.clip(image, 0.0, 1.0) if clip else image), opt_state, loss

    return step


# Why a run stopped, as returned by ``run_steps``.
STOP_STEPS, STOP_TOL, STOP_NONFINITE = 0, 1, 2
STOP_REASONS = {
    STOP_STEPS: "reached the requested number of steps",
    STOP_TOL: "converged: relative loss change below --tol",
    STOP_NONFINITE: "the loss or the image became NaN or infinite; kept the image before that step (try a lower --lr)",
}


def run_steps(step, image, opt_state, n, tol, *args):
    """Runs up to ``n`` steps in one ``while_loop``.

    Stops early when the relative change of the loss falls below ``tol`` (if
    ``tol > 0``), or when the loss or the updated image is not finite (then
    that update is not taken).
    Returns ``(image, opt_state, last_loss, steps_done, stop_code)``.
    """

    def cond(c):
        i, _, _, _, _, code = c
        return (i < n) & (code == STOP_STEPS)

    def body(c):
        i, x, s, _, prev, _ = c
        x2, s2, loss = step(x, s, *args)
        bad = ~jnp.isfinite(loss) | ~jnp.all(jnp.isfinite(x2))
        rel = jnp.abs(prev - loss) / jnp.maximum(jnp.abs(prev), 1e-30)
        code = jnp.where(bad, STOP_NONFINITE, jnp.where((tol > 0) & (rel < tol), STOP_TOL, STOP_STEPS))
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(bad, b, a), new, old)  # noqa: E731
        return i + jnp.where(bad, 0, 1), keep(x2, x), keep(s2, s), loss, jnp.where(bad, prev, loss), code

    init = (jnp.int32(0), image, opt_state, jnp.float32(jnp.nan), jnp.float32(jnp.inf), jnp.int32(STOP_STEPS))
    i, image, opt_state, loss, _, code = lax.while_loop(cond, body, init)
    return image, opt_state, loss, i, code
