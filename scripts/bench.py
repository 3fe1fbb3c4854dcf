"""Speed of one style-transfer step: jaxnst vs PyTorch on the same problem, and vs the hardware.

For VGG19 to relu5_1 with the default losses (random weights: speed does not depend on them), at
each size: compile time, steady seconds per step (median of timed blocks, ``block_until_ready``),
achieved GFLOP/s from a FLOP model of the work (convolutions forward + input gradient, Grams) vs a
measured float32 matmul peak, and the compiled program's memory. Side by side, in the same run,
PyTorch eager (and ``torch.compile`` with ``--torch-compile``) on the same weights, losses and Adam.

Variants of jaxnst (``--variants``):
  loop      jaxnst's path: many steps per dispatch in a while_loop, custom conv VJP, float32
            (``--precision fp32``: full float32 products, also on GPUs)
  tf32      the loop with ``--precision tf32`` (TensorFloat-32 on GPUs; the same as loop on CPU)
  direct    the loop with XLA's direct convolution everywhere (no Winograd; ops "direct")
  loop-xla  the loop with XLA's own convolution and its gradient (no custom VJP, no Winograd;
            ops.lax_conv3x3 with the default max pooling)
  top       one jitted step per Python dispatch
  bf16      the loop with bfloat16 convolutions (--precision bf16)
  remat     the loop with --remat

    python scripts/bench.py --sizes 256 512 --json docs/benchmarks.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxnst
from jaxnst import engine, ops, vgg
from jaxnst.optimize import LossSpec, LossWeights, make_targets, objective_fn
from jaxnst.transfer import start

# The convolution and max pooling each variant runs with (jaxnst.ops); the others run the default.
VARIANT_OPS = {
    "direct": "direct",
    "loop-xla": ops.Ops(ops.lax_conv3x3, ops.max_pool2x2),
}


def problem(size):
    """Content 3:4 landscape and style 8:5 portrait, long sides ``size``, fixed seeds."""
    content = jax.random.uniform(jax.random.key(0), (1, size * 3 // 4, size, 3))
    style = jax.random.uniform(jax.random.key(1), (1, size, size * 5 // 8, 3))
    return content, style


def flops_per_step(cfg: jaxnst.Config, h: int, w: int) -> float:
    """Multiply-adds x 2 of one step: each conv up to the deepest tap forward and its input
    gradient (the weight gradient is not computed), plus each style Gram forward and backward."""
    names = vgg.layer_names(cfg.model)
    deepest = max(names.index(t) for t in cfg.content_layers + cfg.style_layers)
    total, cin = 0.0, 3
    for name in names[: deepest + 1]:
        if name.startswith("conv"):
            cout = vgg.CHANNELS[int(name[4]) - 1]
            total += 2 * (2 * h * w * 9 * cin * cout)  # forward + input gradient
            cin = cout
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
        if name in cfg.style_layers:
            total += 3 * (2 * h * w * cin * cin)  # Gram forward, and its gradient (two matmuls)
    return total


def matmul_peak_gflops(n=2048, repeats=5) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_jaxnst(variant, size, steps, repeats, weights):
    precision = variant if variant in ("bf16", "tf32") else "fp32"
    cfg = jaxnst.preset("gatys", precision=precision, remat=variant == "remat")  # the step PyTorch runs
    spec = LossSpec.from_config(cfg)
    spec = dataclasses.replace(spec, network=dataclasses.replace(spec.network, ops=VARIANT_OPS.get(variant, "fast")))
    content, style = problem(size)
    loss_fn = objective_fn(weights, make_targets(weights, content, [style], spec), LossWeights.from_config(cfg), spec)
    state = start(content, cfg)
    n, tol = jnp.int32(1 if variant == "top" else steps), jnp.float32(0)
    t0 = time.perf_counter()
    compiled = jax.jit(engine.run_steps, donate_argnums=0).lower(state, loss_fn, n, tol).compile()
    compile_s = time.perf_counter() - t0

    def block(st):
        # "top": one dispatch per step, the host looping (as PyTorch does); else one per block.
        for _ in range(steps if variant == "top" else 1):
            st, _ = compiled(st, loss_fn, n, tol)
        return st

    mem = compiled.memory_analysis()
    state = block(state)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = block(state)
        jax.block_until_ready(state)
        times.append((time.perf_counter() - t0) / steps)
    peak = None if mem is None else mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    stats = jax.devices()[0].memory_stats() or {}  # GPUs and TPUs; None on CPU
    return {
        "s_per_step": statistics.median(times),
        "compile_s": compile_s,
        "compiled_peak_bytes": peak,
        # The device's high-water mark since the process started (so run one size and variant
        # per process to compare it with compiled_peak_bytes).
        "device_peak_bytes": stats.get("peak_bytes_in_use"),
    }


def bench_torch(size, steps, repeats, weights, compile_):
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from torch_nst import TorchNST

    content, style = problem(size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # the float32 of jaxnst's loop: no TF32 in convolutions or matmuls
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    ref = TorchNST(weights, np.asarray(content), np.asarray(style), jaxnst.preset("gatys"), device)
    step = ref.step
    t0 = time.perf_counter()
    if compile_:
        compiled_loss = torch.compile(ref.loss)

        def step():
            ref.opt.zero_grad(set_to_none=True)
            loss = compiled_loss(ref.image)
            loss.backward()
            ref.opt.step()
            with torch.no_grad():
                ref.image.clamp_(0, 1)

    step()  # warm-up (and compile)
    sync()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return {
        "s_per_step": statistics.median(times),
        "first_step_s": first,
        "device": device,
        "threads": torch.get_num_threads(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks (median reported)")
    p.add_argument("--variants", nargs="+", default=["loop", "loop-xla", "top"])
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    p.add_argument("--torch-compile", action="store_true", help="also time torch.compile")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()

    weights = jaxnst.random_weights("vgg19", 0)
    d = jax.devices()[0]
    peak = matmul_peak_gflops()
    meta = {
        "jax": jax.__version__,
        "device": f"{d.platform} ({d.device_kind})",
        "machine": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "matmul_peak_gflops": peak,
    }
    print(f"# {json.dumps(meta)}", flush=True)
    rows = []
    for size in args.sizes:
        h, w = problem(size)[0].shape[1:3]
        fl = flops_per_step(jaxnst.preset("gatys"), h, w)
        row = {"size": size, "content_hw": [h, w], "gflop_per_step": fl / 1e9}
        for v in args.variants:
            r = bench_jaxnst(v, size, args.steps, args.repeats, weights)
            r["gflops"] = fl / r["s_per_step"] / 1e9
            r["fraction_of_matmul_peak"] = r["gflops"] / peak
            row[v] = r
            print(json.dumps({"size": size, "variant": v, **r}), flush=True)
        if not args.no_torch:
            row["torch_eager"] = bench_torch(size, args.steps, args.repeats, weights, False)
            print(json.dumps({"size": size, "variant": "torch_eager", **row["torch_eager"]}), flush=True)
            if args.torch_compile:
                try:
                    row["torch_compile"] = bench_torch(size, args.steps, args.repeats, weights, True)
                except Exception as e:  # torch.compile needs a working C++ toolchain
                    row["torch_compile"] = {"error": f"{type(e).__name__}: {e}"[:200]}
                print(json.dumps({"size": size, "variant": "torch_compile", **row["torch_compile"]}), flush=True)
        rows.append(row)

    cols = [c for c in (*args.variants, "torch_eager", "torch_compile") if c in rows[0]]
    print(f"\nmatmul peak (float32, 2048^3): {peak:.1f} GFLOP/s on {meta['device']}, {meta['cpu_count']} cores\n")
    print(
        "| size | GFLOP/step | "
        + " | ".join(f"{c} s/step" for c in cols)
        + " | loop / torch eager | loop GFLOP/s (% of peak) | loop compile s | loop compiled MiB |"
    )
    print("|---|---|" + "---|" * len(cols) + "---|---|---|---|")
    for r in rows:
        cells = [f"{r[c]['s_per_step']:.3f}" if "s_per_step" in r[c] else "n/a" for c in cols]
        lp = r.get("loop")
        ratio = f"{lp['s_per_step'] / r['torch_eager']['s_per_step']:.2f}" if lp and "torch_eager" in r else "n/a"
        extra = (
            [
                f"{lp['gflops']:.1f} ({100 * lp['fraction_of_matmul_peak']:.0f} %)",
                f"{lp['compile_s']:.1f}",
                f"{(lp['compiled_peak_bytes'] or 0) / 2**20:.0f}",
            ]
            if lp
            else ["n/a"] * 3
        )
        print(
            f"| {r['size']} | {r['gflop_per_step']:.1f} | "
            + " | ".join(cells)
            + f" | {ratio} | "
            + " | ".join(extra)
            + " |"
        )
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
