"""Run the CLI as a user would, with bad inputs and faults, and check that none loses work.

    python scripts/bad_inputs.py                 # prints a table and the totals
    python scripts/bad_inputs.py --json docs/bad-inputs.json

Each case is a new process (``python -m jaxnst ...``, random weights, 32 px, 2 steps, a fresh
``$JAXNST_HOME``) in a fresh folder holding copies of two test images. Checked for each: the exit
code it should have, no Python traceback on stderr, one ``jaxnst: error:`` line for an error, the
input files unchanged (SHA-256), and no file left in the folder that the case should not leave
(a partial output, a temporary file). Two cases stop a run with SIGINT and SIGTERM and check that
the image and a checkpoint were written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "tests" / "images"
FAST = ["--weights", "random", "--size", "32", "--steps", "2", "--content-layers", "relu2_1"]
FAST += ["--style-layers", "relu1_1,relu2_1", "--quiet"]
RUN = ["c.png", "s.jpg", *FAST]


def prepare(d: Path) -> None:
    shutil.copy(IMAGES / "chelsea.png", d / "c.png")
    shutil.copy(IMAGES / "starry_night.jpg", d / "s.jpg")
    (d / "notes.txt").write_text("not an image")
    (d / "folder").mkdir()
    (d / "existing.png").write_bytes((d / "c.png").read_bytes())
    data = (IMAGES / "tubingen.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(data[: len(data) // 2])
    # A PNG header claiming 20000 x 20000 pixels: a decompression bomb without the bytes.
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = lambda t, b: struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))  # noqa: E731
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    from PIL import Image

    Image.new("RGB", (64, 1), "white").save(d / "panorama.png")
    (d / "junk.h5").write_bytes(b"junk")
    (d / "junk.npz").write_bytes(b"junk")
    code = (
        "import jaxnst; w = jaxnst.random_weights('vgg19', 0); "
        "w.params['conv1_1']['bias'] = w.params['conv1_1']['bias'].at[0].set(float('nan')); "
        "jaxnst.save_weights(w, 'nan.h5')"
    )
    subprocess.run([sys.executable, "-c", code], cwd=d, check=True, capture_output=True)


# (name, argv after `python -m jaxnst`, expected exit code, files the case may leave)
CASES = [
    ("output is the content", [*RUN, "-o", "c.png", "--overwrite"], 2, []),
    ("output is the init image", [*RUN, "--init", "existing.png", "-o", "existing.png", "--overwrite"], 2, []),
    ("output exists", [*RUN, "-o", "existing.png"], 2, []),
    ("output folder unwritable", [*RUN, "-o", "/proc/jaxnst-x.png"], 2, []),
    ("output is a folder", [*RUN, "-o", "folder"], 2, []),
    ("output folder missing", [*RUN, "-o", "missing/o.png"], 2, []),
    ("output .gif", [*RUN, "-o", "o.gif"], 2, []),
    ("output given as a style", ["c.png", "s.jpg", "o.png", *FAST], 2, []),
    ("content missing", ["missing.png", "s.jpg", *FAST, "-o", "o.png"], 2, []),
    ("content is a folder", ["folder", "s.jpg", *FAST, "-o", "o.png"], 2, []),
    ("content is /dev/null", ["/dev/null", "s.jpg", *FAST, "-o", "o.png"], 2, []),
    ("content is text", ["notes.txt", "s.jpg", *FAST, "-o", "o.png"], 2, []),
    ("content truncated JPEG", ["cut.jpg", "s.jpg", *FAST, "-o", "o.png"], 2, []),
    ("content decompression bomb", ["bomb.png", "s.jpg", *FAST, "-o", "o.png"], 2, []),
    ("content 64x1 panorama", ["panorama.png", "s.jpg", *FAST, "--size", "64", "-o", "o.png"], 2, []),
    ("style missing", ["c.png", "s.jpg", "missing.jpg", *FAST, "-o", "o.png"], 2, []),
    ("--lr inf", [*RUN, "--lr", "inf", "-o", "o.png"], 2, []),
    ("--lr nan", [*RUN, "--lr", "nan", "-o", "o.png"], 2, []),
    ("--lr 5", [*RUN, "--lr", "5", "-o", "o.png"], 2, []),
    ("--lr -1", [*RUN, "--lr", "-1", "-o", "o.png"], 2, []),
    ("--lr 1e6 (L-BFGS ignores lr)", [*RUN, "--optimizer", "lbfgs", "--lr", "1e6", "-o", "o.png"], 0, ["o.png"]),
    (
        "--style-weight 1e30",
        [*RUN, "--preset", "gatys", "--style-weight", "1e30", "--steps", "4", "-o", "o.png"],
        2,
        [],
    ),
    ("--style-weight inf", [*RUN, "--style-weight", "inf", "-o", "o.png"], 2, []),
    ("--content-weight nan", [*RUN, "--content-weight", "nan", "-o", "o.png"], 2, []),
    ("--tv-weight -1", [*RUN, "--tv-weight", "-1", "-o", "o.png"], 2, []),
    ("--style-blend-weights 1,2 for 1 style", [*RUN, "--style-blend-weights", "1,2", "-o", "o.png"], 2, []),
    ("--style-blend-weights 0,0", ["c.png", "s.jpg", *RUN[1:], "--style-blend-weights", "0,0", "-o", "o.png"], 2, []),
    ("--style-blend-weights nan", [*RUN, "--style-blend-weights", "nan", "-o", "o.png"], 2, []),
    ("--size 16, default layers", ["c.png", "s.jpg", "--weights", "random", "--size", "16", "-o", "o.png"], 2, []),
    ("--size 24, default layers", ["c.png", "s.jpg", "--weights", "random", "--size", "24", "-o", "o.png"], 2, []),
    ("--size 8", [*RUN, "--size", "8", "-o", "o.png"], 2, []),
    ("--size abc", [*RUN, "--size", "abc", "-o", "o.png"], 2, []),
    ("--style-scale inf", [*RUN, "--style-scale", "inf", "-o", "o.png"], 2, []),
    ("--style-scale 0", [*RUN, "--style-scale", "0", "-o", "o.png"], 2, []),
    ("--seed 2**64", [*RUN, "--seed", str(2**64), "-o", "o.png"], 2, []),
    ("--steps -1", [*RUN, "--steps", "-1", "-o", "o.png"], 2, []),
    ("--init Noise", [*RUN, "--init", "Noise", "-o", "o.png"], 2, []),
    ("--content-layers relu9_1", [*RUN, "--content-layers", "relu9_1", "-o", "o.png"], 2, []),
    ("--style-layer-weights 1,2,3", [*RUN, "--style-layer-weights", "1,2,3", "-o", "o.png"], 2, []),
    ("--optimizer sgd", [*RUN, "--optimizer", "sgd", "-o", "o.png"], 2, []),
    ("--weights missing.h5", ["c.png", "s.jpg", *FAST[2:], "--weights", "missing.h5", "-o", "o.png"], 2, []),
    ("--weights junk.h5", ["c.png", "s.jpg", *FAST[2:], "--weights", "junk.h5", "-o", "o.png"], 2, []),
    ("--weights with a NaN", ["c.png", "s.jpg", *FAST[2:], "--weights", "nan.h5", "-o", "o.png"], 2, []),
    ("--resume junk.npz", [*RUN, "--resume", "junk.npz", "-o", "o.png"], 2, []),
    ("--checkpoint-every -1", [*RUN, "--checkpoint-every", "-1", "-o", "o.png"], 2, []),
    ("--save-every -1", [*RUN, "--save-every", "-1", "-o", "o.png"], 2, []),
    ("--size auto --time-budget 0", [*RUN, "--size", "auto", "--time-budget", "0", "-o", "o.png"], 2, []),
    ("a good run", [*RUN, "-o", "o.png", "--trace", "t.json"], 0, ["o.png", "t.json"]),
    ("weights convert to /proc", ["weights", "convert", "nan.h5", "-o", "/proc/x.h5"], 2, []),
    ("weights info of junk", ["weights", "info", "junk.h5"], 2, []),
    ("batch --out a file", ["batch", "--content", "c.png", "--style", "s.jpg", "--out", "notes.txt", *FAST], 2, []),
    ("batch --out /proc", ["batch", "--content", "c.png", "--style", "s.jpg", "--out", "/proc/x", *FAST], 2, []),
    ("estimate of a missing image", ["estimate", "missing.png", "s.jpg", "--size", "64"], 2, []),
    ("reproduce of a plain PNG", ["reproduce", "c.png"], 2, []),
]


def digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir() if p.is_file()}


def run_case(name, argv, want, may_leave, env) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        prepare(d)
        before = digests(d)
        r = subprocess.run([sys.executable, "-m", "jaxnst", *argv], cwd=d, env=env, capture_output=True, text=True)
        after = digests(d)
        err = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
        return {
            "case": name,
            "exit": r.returncode,
            "want": want,
            "said": err[-1] if err else "",
            "traceback": "Traceback" in r.stderr,
            "one_line": want != 2 or (len(err) == 1 and err[0].startswith("jaxnst: error:")),
            "inputs_changed": sorted(k for k in before if before[k] != after.get(k)),
            "left": sorted(set(after) - set(before) - set(may_leave)),
        }


def run_signal(sig, env) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        prepare(d)
        before = digests(d)
        argv = [*RUN[:-1], "--steps", "100000", "--print-every", "1", "-o", "o.png"]
        p = subprocess.Popen([sys.executable, "-m", "jaxnst", *argv], cwd=d, env=env, stderr=subprocess.PIPE, text=True)
        for line in p.stderr:
            if line.startswith("step "):
                p.send_signal(sig)
                break
        rest = p.stderr.read()
        code = p.wait()
        after = digests(d)
        return {
            "case": f"{signal.Signals(sig).name} during a run",
            "exit": code,
            "want": 128 + sig,
            "said": rest.strip().splitlines()[-1] if rest.strip() else "",
            "traceback": "Traceback" in rest,
            "one_line": True,
            "inputs_changed": sorted(k for k in before if before[k] != after.get(k)),
            "left": sorted(set(after) - set(before) - {"o.png", "o.ckpt.npz"}),
            "saved": (d / "o.png").exists() and (d / "o.ckpt.npz").exists(),
        }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "JAXNST_HOME": home, "PYTHONPATH": str(ROOT)}
        rows = [run_case(*c, env) for c in CASES] + [run_signal(s, env) for s in (signal.SIGINT, signal.SIGTERM)]
    bad = [r for r in rows if r["exit"] != r["want"] or r["traceback"] or not r["one_line"]]
    bad += [r for r in rows if (r["inputs_changed"] or r["left"] or r.get("saved") is False) and r not in bad]
    for r in rows:
        mark = "FAIL" if r in bad else "ok"
        print(f"{mark:4} {r['exit']:3} {r['case']:40} {r['said'][:110]}")
    partial = sum(bool(r["left"]) for r in rows)
    tracebacks = sum(r["traceback"] for r in rows)
    changed = sum(bool(r["inputs_changed"]) for r in rows)
    print(f"\n{len(rows)} cases: {len(bad)} not as they should be; {tracebacks} tracebacks, {partial} left a file "
          f"they should not, {changed} changed an input")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
