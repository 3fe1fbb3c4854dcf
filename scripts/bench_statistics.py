"""Seconds per step of the engine's step for each style statistic, at a few sizes (random weights).

    flock /tmp/jaxnst-bench.lock python scripts/bench_statistics.py [--sizes 128 256 512] [--statistics gram w2]

The step is ``jaxnst.engine.run`` of a 4:3 image of the given width, after a
2-step warm-up (compile); 10 steps timed (4 at 512 px and above). W2's extra cost is its
covariances and the eigendecompositions of one C x C matrix per style layer (``jaxnst.sqrtm``).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import jaxnst
from jaxnst import engine
from jaxnst.config import Config
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective_fn
from jaxnst.transfer import start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--statistics", nargs="+", default=["gram", "w2"])
    args = p.parse_args()
    w = jaxnst.random_weights("vgg19", 0)
    for side in args.sizes:
        c = jnp.full((1, side * 3 // 4, side, 3), 0.5)
        s = jax.random.uniform(jax.random.key(0), (1, side * 3 // 4, side, 3))
        for stat in args.statistics:
            cfg = Config(style_statistic=stat, ops="fast")
            spec = LossSpec.from_config(cfg)
            loss_fn = objective_fn(w, make_targets(w, c, [s], spec), LossWeights.from_config(cfg), spec)
            state = jax.block_until_ready(engine.run(start(c, cfg), loss_fn, 2, donate=True)[0])
            n = 10 if side < 512 else 4
            t0 = time.perf_counter()
            jax.block_until_ready(engine.run(state, loss_fn, n, donate=True))
            print(f"{side} px  {stat:<8} {(time.perf_counter() - t0) / n:.3f} s/step", flush=True)


if __name__ == "__main__":
    main()
