"""How much memory a style transfer needs, known before running it; and how long its steps take.

The estimate is XLA's own account of the compiled loop (ahead-of-time
``lower().compile().memory_analysis()``): arguments + outputs + temporaries,
less what donation lets it reuse. Weights enter as shapes only, so no weight
file is needed to estimate.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp

from jaxnst import engine
from jaxnst.config import Config, scale_schedule, style_size
from jaxnst.engine import run
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective_fn
from jaxnst.transfer import start
from jaxnst.vgg import Weights, param_shapes


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    arguments: int  # bytes: image, optimiser state, weights, targets
    outputs: int
    temporaries: int  # activations kept for the backward pass, workspaces
    aliased: int  # output bytes that reuse donated argument buffers

    @property
    def peak(self) -> int:
        return self.arguments + self.outputs + self.temporaries - self.aliased


def estimate(content_hw: tuple[int, int], style_hws: list[tuple[int, int]], cfg: Config) -> MemoryEstimate:
    """Peak bytes of the compiled optimisation loop for these image shapes and ``cfg``."""
    f32 = jnp.float32
    weights = Weights(
        {
            n: {k: jax.ShapeDtypeStruct(s, f32) for k, s in leaves.items()}
            for n, leaves in param_shapes(cfg.model).items()
        },
        cfg.model,
    )
    spec = LossSpec.from_config(cfg, content_hw[0] * content_hw[1])
    content = jax.ShapeDtypeStruct((1, *content_hw, 3), f32)
    styles = [jax.ShapeDtypeStruct((1, *hw, 3), f32) for hw in style_hws]
    targets = jax.eval_shape(
        lambda w, c, s: make_targets(w, c, s, spec, cfg.style_blend_weights), weights, content, styles
    )
    state = jax.eval_shape(lambda c: start(c, cfg), content)
    loss_fn = objective_fn(weights, targets, jax.eval_shape(lambda: LossWeights.from_config(cfg)), spec)
    n = jax.ShapeDtypeStruct((), jnp.int32)
    m = engine.compiled_run(True).lower(state, loss_fn, n, jax.ShapeDtypeStruct((), f32)).compile()
    m = m.memory_analysis()
    if m is None:
        raise RuntimeError("this JAX backend reports no memory analysis")
    return MemoryEstimate(m.argument_size_in_bytes, m.output_size_in_bytes, m.temp_size_in_bytes, m.alias_size_in_bytes)


def free_bytes(device: jax.Device | None = None) -> int:
    """Free memory of ``device``: the allocator's limit less its use, or the host's available RAM."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# Share of the free memory --size auto plans to use: XLA's estimate leaves out the
# runtime's own allocations and the target computation.
MARGIN = 0.8


def _at(size: int, content_wh, style_whs, cfg: Config) -> MemoryEstimate:
    from jaxnst.image import fit_long_side

    cfg = dataclasses.replace(cfg, size=size)
    c = fit_long_side(content_wh, size)[::-1]
    s = [fit_long_side(wh, style_size(cfg))[::-1] for wh in style_whs]
    return estimate(c, s, cfg)


def auto_size(
    content_wh: tuple[int, int], style_whs: list[tuple[int, int]], cfg: Config, budget: int, *, step: int = 32
) -> tuple[int, MemoryEstimate]:
    """The largest ``--size`` (a multiple of ``step``) whose estimated peak fits in ``budget`` bytes.

    Memory is close to affine in the pixel count (size squared), so two probes
    give a candidate, which is then checked and stepped down until it fits:
    three or four compilations instead of a dozen for a bisection.
    """
    from jaxnst.errors import JaxnstError

    lo, hi = 128, 256
    p_lo, p_hi = _at(lo, content_wh, style_whs, cfg).peak, _at(hi, content_wh, style_whs, cfg).peak
    per_px2 = max(p_hi - p_lo, 1) / (hi**2 - lo**2)
    size = int(((budget - p_lo) / per_px2 + lo**2) ** 0.5) // step * step if budget > p_lo else lo
    for _ in range(8):
        est = _at(size, content_wh, style_whs, cfg)
        if est.peak <= budget:
            return size, est
        size = int(size * 0.9) // step * step
        if size < 64:
            break
    raise JaxnstError(f"no size of 64 px or more fits in {budget / 2**30:.1f} GiB: free memory, or give a size", "size")


def seconds_per_step(content_hw: tuple[int, int], style_hws: list[tuple[int, int]], cfg: Config, steps: int = 3):
    """Measured seconds per step of ``cfg``'s step at these shapes on the default device: compiled,
    run once, then ``steps`` steps timed. Random weights and images (the speed does not depend on
    them); costs a compile and ``steps + 1`` steps."""
    import time

    from jaxnst.weights import random_weights

    weights = random_weights(cfg.model, 0)
    content = jnp.full((1, *content_hw, 3), 0.5, jnp.float32)
    styles = [jax.random.uniform(jax.random.key(i), (1, *hw, 3)) for i, hw in enumerate(style_hws)]
    spec = LossSpec.from_config(cfg, content_hw[0] * content_hw[1])
    loss_fn = objective_fn(weights, make_targets(weights, content, styles, spec), LossWeights.from_config(cfg), spec)
    state = jax.block_until_ready(run(start(content, cfg), loss_fn, 1, donate=True))[0]
    t0 = time.perf_counter()
    jax.block_until_ready(run(state, loss_fn, steps, donate=True))
    return (time.perf_counter() - t0) / steps


def run_seconds(cfg: Config, t256: float) -> float:
    """Estimated seconds of ``cfg``'s steps at all its scales, from ``t256``, the seconds per step at
    256 px: a step's work grows with the pixels (0.165 s at 256 px, 0.68 at 512, 2.8 at 1024 on the
    2-core CPU), so a step at side ``S`` costs about ``t256 * (S / 256)**2``."""
    return t256 * sum(steps * (side / 256) ** 2 for side, steps in scale_schedule(cfg))


def size_for_time(
    content_wh: tuple[int, int], style_whs: list[tuple[int, int]], cfg: Config, seconds: float, *, step: int = 32
) -> tuple[int, float]:
    """The largest size (a multiple of ``step``, at least 128) whose steps, at every scale, are estimated
    (``run_seconds``) to take at most ``seconds``, and the seconds per step measured at 256 px."""
    from jaxnst.image import fit_long_side

    probe = dataclasses.replace(cfg, size=256)
    t256 = seconds_per_step(
        fit_long_side(content_wh, 256)[::-1], [fit_long_side(wh, style_size(probe))[::-1] for wh in style_whs], probe
    )
    size = int(256 * (seconds / t256) ** 0.5) // step * step  # one step in ``seconds``: an upper bound
    while size > 128 and run_seconds(dataclasses.replace(cfg, size=size), t256) > seconds:
        size -= step
    return max(128, size), t256
