"""Temporal consistency of ``jaxnst.video``, measured on a clip whose true motion is known.

A pan over a still photo (the camera moves ``--shift`` px right per frame), stylised three ways: frame by frame
(every frame a still of its own, the baseline), warm start only (each frame from the last one warped, no
temporal term) and the full method (warm start and the temporal term). For each: the temporal warping error
(mean squared difference between each output frame and the one before it moved by the true flow, over the
pixels the pan keeps in view, in 8-bit levels squared), the mean content and style losses of the frames, the
steps per frame and the seconds. Also the error of OpenCV's DIS flow against the true one.

    python scripts/video_bench.py --out docs/video                          # the numbers in docs/video.md
    python scripts/video_bench.py --size 128 --frames 6 --weights-sweep 1e3,1e4,1e5,1e6 --out /tmp/vw
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from PIL import Image

import jaxnst
from jaxnst import hub, transfer, video

ROOT = Path(__file__).resolve().parent.parent


def pan(photo: Path, size: int, frames: int, shift: int) -> list[np.ndarray]:
    """``frames`` windows of ``size`` x 3/4 ``size`` px, each ``shift`` px right of the one before."""
    w, h = size, size * 3 // 4
    image = jaxnst.load_image(photo, w + shift * (frames - 1) + 8)
    if image.shape[0] < h:
        raise SystemExit(f"{photo} is too wide for a {w}x{h} pan")
    return [image[:h, k * shift : k * shift + w] for k in range(frames)]


def flow_error(photo: Path, size: int, motion: str) -> dict[str, float]:
    """The end-point error (px) of ``video.optical_flow`` between two frames of a known motion of ``photo``
    about the frame's centre: a pan (4 px), a zoom (2 %) or a rotation (1 degree); away from the borders."""
    image = Image.open(photo).convert("RGB")
    image.thumbnail((2 * size, 2 * size))
    w, h = size, size * 3 // 4
    cx, cy = image.width / 2, image.height / 2

    def affine(k: int) -> np.ndarray:  # frame coordinates (x, y, 1) -> photo coordinates
        s, a = (1 / 1.02**k, 0.0) if motion == "zoom" else (1.0, np.radians(k) if motion == "rotate" else 0.0)
        m = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0], [0, 0, 1]])
        shift = 4 * k if motion == "pan" else 0
        return np.array([[1, 0, cx + shift], [0, 1, cy], [0, 0, 1]]) @ m @ np.array([[1, 0, -w / 2], [0, 1, -h / 2],
                                                                                       [0, 0, 1]])  # fmt: skip

    def frame(k: int) -> np.ndarray:
        out = image.transform((w, h), Image.Transform.AFFINE, tuple(affine(k)[:2].ravel()), Image.Resampling.BICUBIC)
        return np.asarray(out, np.float32) / 255

    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.stack([x, y, np.ones_like(x)], axis=-1)
    q = p @ (np.linalg.inv(affine(0)) @ affine(1)).T  # where each pixel of frame 1 is in frame 0
    truth = (q - p)[..., :2]
    err = np.linalg.norm(video.optical_flow(frame(1), frame(0)) - truth, axis=-1)[16:-16, 16:-16]
    return {"mean": round(float(err.mean()), 3), "p95": round(float(np.percentile(err, 95)), 3)}


def warping_error(outputs: list[np.ndarray], shift: int) -> float:
    """Mean over frame pairs of the mean squared difference, in 8-bit levels, between frame i and frame i-1
    moved by the true flow (frame i at x is frame i-1 at x + shift), where the pan keeps the pixel in view."""
    pairs = zip(outputs[:-1], outputs[1:], strict=True)
    errors = [np.mean(np.square(255 * (b[:, :-shift] - a[:, shift:]))) for a, b in pairs]
    return float(np.mean(errors))


def losses(weights, cfg, frames, styles, outputs) -> dict[str, float]:
    """The mean over frames of the content and style losses of each output against its own frame."""
    sums: dict[str, float] = {}
    for frame, out in zip(frames, outputs, strict=True):
        shapes = transfer.scale_shapes(cfg, frame.shape[:2], [s.shape[:2] for s in styles])[-1]
        single = dataclasses.replace(cfg, min_size=None)
        pb = transfer.problem(weights, single, 1, jnp.asarray(frame)[None], [jnp.asarray(s)[None] for s in styles],
                              shapes)  # fmt: skip
        for k, v in pb.terms_fn(jnp.asarray(out)[None])[1].items():
            sums[k] = sums.get(k, 0.0) + float(v) / len(frames)
    return {k: round(v, 4) for k, v in sums.items() if k in ("content", "style")}


def changes(outputs: list[np.ndarray], shift: int) -> list[np.ndarray]:
    """What changed from each frame to the next beyond the camera's move: |frame i - frame i-1 moved by the
    true flow|, four times brighter (the column the pan brings in is black)."""
    out = []
    for a, b in zip(outputs[:-1], outputs[1:], strict=True):
        d = np.zeros_like(b)
        d[:, :-shift] = np.clip(4 * np.abs(b[:, :-shift] - a[:, shift:]), 0, 1)
        out.append(d)
    return out


def strip(outputs: list[np.ndarray], every: int) -> Image.Image:
    picked = [Image.fromarray(np.round(o * 255).astype(np.uint8)) for o in outputs[::every]]
    w, h = picked[0].size
    canvas = Image.new("RGB", (len(picked) * (w + 4) - 4, h), "white")
    for k, im in enumerate(picked):
        canvas.paste(im, (k * (w + 4), 0))
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", type=Path, default=ROOT.parent / "shared" / "images" / "tubingen.jpg")
    p.add_argument("--style", type=Path, default=ROOT.parent / "shared" / "images" / "starry_night.jpg")
    p.add_argument("--weights", default=None, help="weight file (default: the cached default, fetched if missing)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--shift", type=int, default=4, help="px the camera moves per frame")
    p.add_argument("--steps", type=int, default=100, help="steps of the first frame (one scale)")
    p.add_argument("--temporal-weight", type=float, default=video.TEMPORAL_WEIGHT)
    p.add_argument("--weights-sweep", default=None, help="comma-separated temporal weights: the full method only")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "video")
    args = p.parse_args()

    path = Path(args.weights) if args.weights else hub.default_weights("vgg19", report=print)
    weights = jaxnst.load_weights(path)
    frames = pan(args.photo, args.size, args.frames, args.shift)
    styles = [jaxnst.load_image(args.style, args.size)]
    cfg = jaxnst.Config(size=args.size, steps=args.steps, min_size=None)
    args.out.mkdir(parents=True, exist_ok=True)

    record = {"command": "python scripts/video_bench.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                                       vars(args).items() if v is not None),
              "weights": hub.identify(path, weights).text, "device": str(jaxnst.engine.jax.devices()[0]),
              "frame": list(frames[0].shape[:2]),
              "dis_flow_error_px": {m: flow_error(args.photo, args.size, m) for m in ("pan", "zoom", "rotate")},
              "runs": []}  # fmt: skip
    print(json.dumps(record), flush=True)
    if args.weights_sweep:
        methods = [(f"full, weight {w}", True, float(w)) for w in args.weights_sweep.split(",")]
    else:
        methods = [("full", True, args.temporal_weight), ("frame by frame", False, 0.0), ("warm start", True, 0.0)]
    for name, warm, weight in methods:
        steps: list[int] = []
        t0 = time.perf_counter()
        callback = lambda k, prog: steps.append(prog.steps) if prog.done else None  # noqa: B023, E731
        outputs = list(video.stylize_clip(frames, styles, weights, cfg, temporal_weight=weight, warm_start=warm,
                                          callback=callback))  # fmt: skip
        run = {"method": name, "temporal_weight": weight, "warm_start": warm,
               "seconds": round(time.perf_counter() - t0, 1), "first_frame_steps": steps[0],
               "later_frame_steps": steps[1] if len(steps) > 1 else None,
               "warping_error": round(warping_error(outputs, args.shift), 3),
               **losses(weights, cfg, frames, styles, outputs)}  # fmt: skip
        record["runs"].append(run)
        print(json.dumps(run), flush=True)
        stem = name.replace(" ", "_").replace(",", "")
        every = max(1, len(outputs) // 6)
        strip(outputs, every).save(args.out / f"strip_{stem}.png")
        strip(changes(outputs, args.shift), every).save(args.out / f"changes_{stem}.png")
        if not args.weights_sweep and warm and weight:
            ims = [Image.fromarray(np.round(o * 255).astype(np.uint8)) for o in outputs]
            ims[0].save(args.out / "full.gif", save_all=True, append_images=ims[1:], duration=125, loop=0)
        (args.out / "video.json").write_text(json.dumps(record, indent=1) + "\n")  # after each run: kept if stopped


if __name__ == "__main__":
    main()
