"""Seconds per style-transfer step on this machine (random VGG19 weights, default losses).

Compares, side by side in one run:
  loop      jaxnst's path: many steps per dispatch in a while_loop, custom conv VJP
  loop-xla  the same loop with XLA's own convolution gradient (the custom VJP off)
  top       one jitted step per Python dispatch, custom conv VJP

    python scripts/bench_step.py --sizes 256 512 --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import time

import jax
import jax.numpy as jnp

import jaxnst
from jaxnst import vgg
from jaxnst.optimize import Hyper, LossSpec, make_optimizer, make_step, make_targets, objective, run_steps


@contextlib.contextmanager
def xla_conv_grad():
    orig = vgg.conv3x3
    vgg.conv3x3 = vgg._conv
    try:
        yield
    finally:
        vgg.conv3x3 = orig


def time_variant(variant, size, steps, repeats, weights):
    cfg = jaxnst.Config()
    spec = LossSpec.from_config(cfg)
    key = jax.random.key(0)
    content = jax.random.uniform(key, (1, size * 3 // 4, size, 3))
    style = jax.random.uniform(jax.random.key(1), (1, size, size * 5 // 8, 3))
    ctx = xla_conv_grad() if variant == "loop-xla" else contextlib.nullcontext()
    with ctx:
        targets = make_targets(weights, content, [style], spec)
        hyper = Hyper.from_config(cfg)
        opt = make_optimizer(cfg)
        step = make_step(lambda x, w, t, h: objective(x, w, t, h, spec=spec)[0], opt)
        if variant == "top":
            one = jax.jit(step, donate_argnums=(0, 1))

            def block(x, s):
                for _ in range(steps):
                    x, s, _ = one(x, s, weights, targets, hyper)
                return x, s
        else:
            many = jax.jit(functools.partial(run_steps, step), donate_argnums=(0, 1))

            def block(x, s):
                x, s, *_ = many(x, s, steps, jnp.float32(0), weights, targets, hyper)
                return x, s

        x = jnp.array(content, copy=True)
        s = opt.init(x)
        t0 = time.perf_counter()
        x, s = block(x, s)  # compile + warm-up
        jax.block_until_ready(x)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            x, s = block(x, s)
            jax.block_until_ready(x)
            times.append((time.perf_counter() - t0) / steps)
    return {"variant": variant, "size": size, "s_per_step": statistics.median(times), "first_block_s": first}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks (median reported)")
    p.add_argument("--variants", nargs="+", default=["loop", "loop-xla", "top"])
    args = p.parse_args()
    weights = jaxnst.random_weights("vgg19", 0)
    print(f"# jax {jax.__version__}, {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
    rows = []
    for size in args.sizes:
        for v in args.variants:
            r = time_variant(v, size, args.steps, args.repeats, weights)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("\n| size (long side) | " + " | ".join(f"{v} s/step" for v in args.variants) + " |")
    print("|---|" + "---|" * len(args.variants))
    for size in args.sizes:
        cells = [f"{r['s_per_step']:.3f}" for r in rows if r["size"] == size]
        print(f"| {size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
