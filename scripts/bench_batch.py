"""Throughput of the vmapped batch program against the same number of sequential single runs.

For each size and batch size B: B different contents, one shared style (its
Grams shared, as ``stylize_batch`` does), random VGG19 weights, the default
losses (the net runs to relu5_1), Adam. Both sides run the exact compiled
programs of the library: ``jaxnst.engine.run`` (one image,
B times in a row) and ``jaxnst.batch.batched_engine`` (B images at once,
batch axis on a mesh over every device). Compiles and targets are not timed:
a block of ``--steps`` steps per side, sequential and vmap alternating
``--repeats`` times (the machine is shared, so both see the same load), the
median kept. Reported: image-steps per second (images x steps / seconds;
divide by a real run's step count, e.g. 500, for images per second) and the
vmap / sequential ratio.

    flock /tmp/jaxnst-bench.lock python scripts/bench_batch.py --sizes 128 256 --batches 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxnst
from jaxnst import engine
from jaxnst.batch import batched_engine, device_mesh
from jaxnst.optimize import LossSpec, LossWeights, Targets, make_targets, objective_fn
from jaxnst.transfer import start


def bench(size: int, b: int, steps: int, repeats: int, weights) -> dict:
    cfg = jaxnst.preset("gatys")  # as measured before the defaults changed
    spec = LossSpec.from_config(cfg)
    rng = np.random.default_rng(size + b)
    contents = [jnp.asarray(rng.uniform(size=(1, size * 3 // 4, size, 3)), jnp.float32) for _ in range(b)]
    style = jnp.asarray(rng.uniform(size=(1, size, size * 5 // 8, 3)), jnp.float32)
    targets = [make_targets(weights, c, [style], spec) for c in contents]
    loss_weights = LossWeights.from_config(cfg)

    singles = [start(c, cfg) for c in contents]

    def sequential(n):
        for i, t in enumerate(targets):
            singles[i], _ = engine.run(singles[i], objective_fn(weights, t, loss_weights, spec), n, donate=True)
        jax.block_until_ready(singles)

    mesh = device_mesh()
    batched = batched_engine(spec, cfg.optimizer, True, mesh)
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
    targets_b = Targets(stack([t.content for t in targets]), targets[0].style)
    loss_fn = objective_fn(weights, targets_b, stack([loss_weights] * b), spec)
    per_item = NamedSharding(mesh, P(mesh.axis_names[0]))  # where the program leaves its outputs
    state = [jax.device_put(batched.init(jnp.stack(contents), jnp.full(b, cfg.lr), jnp.full(b, cfg.ema)), per_item)]

    def vmapped(n):
        state[0] = jax.block_until_ready(batched.run(state[0], loss_fn, jnp.full(b, n, jnp.int32), jnp.zeros(b))[0])

    sequential(1)  # compile
    vmapped(1)
    seq, vm = [], []
    for _ in range(repeats):
        for fn, out in ((sequential, seq), (vmapped, vm)):
            t0 = time.perf_counter()
            fn(steps)
            out.append(b * steps / (time.perf_counter() - t0))
    s, v = statistics.median(seq), statistics.median(vm)
    return {"size": size, "batch": b, "sequential": s, "vmap": v, "ratio": v / s}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=4, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per side (median reported)")
    args = p.parse_args()
    weights = jaxnst.random_weights("vgg19", 0)
    d = jax.devices()[0]
    print(f"# jax {jax.__version__}, {d.platform} ({d.device_kind}), {jax.device_count()} device(s)", flush=True)
    rows = []
    for size in args.sizes:
        for b in args.batches:
            rows.append(bench(size, b, args.steps, args.repeats, weights))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| size (long side) | batch | sequential image-steps/s | vmap image-steps/s | vmap / sequential |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['batch']} | {r['sequential']:.2f} | {r['vmap']:.2f} | {r['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
