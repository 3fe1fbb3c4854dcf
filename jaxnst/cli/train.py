"""``jaxnst train STYLE [STYLE ...] -o MODEL --data PHOTOS``: a fast network for one style (``jaxnst.train``).

Beside MODEL it keeps ``MODEL.ckpt.npz`` (the run, every ``--checkpoint-every`` steps and on a signal;
``--resume`` goes on from it with the same result as a run that did not stop), ``MODEL_samples/``
(held-out photos painted as training goes) and, at the end, ``MODEL_loss.png`` (the loss log).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import typing
from pathlib import Path

from jaxnst.cli.common import (
    Parser,
    add_config_flags,
    add_distributed_flags,
    add_weights_flag,
    check_writable,
    device_name,
    enable_compilation_cache,
    say,
    start_distributed,
    weights_from_args,
)
from jaxnst.cli.stylize import Interrupted, stop_requests
from jaxnst.config import Config, style_size, validate
from jaxnst.errors import JaxnstError


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.train import LOSS_FIELDS, TrainConfig

    p = Parser(
        prog="jaxnst train",
        description="Train a fast network that paints any photo in the style of STYLE "
        "in one pass (Johnson et al. 2016), with jaxnst's objective; then `jaxnst apply MODEL PHOTO -o OUT`.",
    )
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="the model file to write (.h5)")
    p.add_argument("--data", required=True, metavar="PHOTOS", help="a folder of photos to train on (searched "
                   "recursively; files that cannot be read are skipped and counted)")  # fmt: skip
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=hints[f.name], default=f.default,
                       help=f"{f.metadata['help']} (default: {f.default})")  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N",
                   help="save the run every N steps, and write the samples (default: 200)")  # fmt: skip
    p.add_argument("--samples", type=int, default=4, metavar="N",
                   help="photos held out of training and painted at each checkpoint (default: 4)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="go on from MODEL.ckpt.npz")
    p.add_argument("--overwrite", action="store_true", help="replace MODEL and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only errors")
    add_config_flags(p, skip=tuple(f.name for f in dataclasses.fields(Config) if f.name not in LOSS_FIELDS))
    add_weights_flag(p)
    add_distributed_flags(p, "train")
    return p


def paths(model: Path) -> dict[str, Path]:
    """What a training run writes beside its model file."""
    return {
        "checkpoint": model.with_name(model.name + ".ckpt.npz"),
        "samples": model.with_name(f"{model.stem}_samples"),
        "plot": model.with_name(f"{model.stem}_loss.png"),
    }


def main(argv: list[str]) -> int:
    from jaxnst.train import LOSS_FIELDS, TrainConfig

    args = build_parser().parse_args(argv)
    tcfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    for name in ("steps", "batch", "crop", "width", "blocks"):
        if getattr(tcfg, name) < (16 if name == "crop" else 0 if name == "blocks" else 1):
            raise JaxnstError(f"--{name} {getattr(tcfg, name)} is too small")
    if not (tcfg.lr > 0 and math.isfinite(tcfg.lr)):
        raise JaxnstError(f"--lr {tcfg.lr} must be a number > 0")
    if args.checkpoint_every < 1 or args.samples < 0:
        raise JaxnstError("--checkpoint-every must be at least 1 and --samples at least 0")
    cfg = validate(Config(size=tcfg.crop, **{k: getattr(args, k) for k in LOSS_FIELDS}))
    model_path = Path(args.output)
    out = paths(model_path)
    inputs = {Path(p).resolve() for p in args.styles}
    if any(p.exists() and p.resolve() in inputs for p in (model_path, *out.values())):
        raise JaxnstError(f"output {model_path} is also an input: it would be overwritten; give another -o")
    if not model_path.parent.is_dir():
        raise JaxnstError(f"output folder {model_path.parent} does not exist: create it first")
    if args.resume and not out["checkpoint"].is_file():
        raise JaxnstError(f"--resume: {out['checkpoint']} does not exist: start without --resume")
    if not (args.resume or args.overwrite) and any(p.exists() for p in (model_path, out["checkpoint"])):
        raise JaxnstError(f"{model_path} (or its checkpoint) exists: add --resume to go on, --overwrite to start "
                          "again, or give another -o")  # fmt: skip
    check_writable(model_path.parent, "-o")
    start_distributed(args)  # before anything starts JAX

    from jaxnst import train
    from jaxnst.fetch import file_digests
    from jaxnst.image import load_image

    files = train.photo_files(args.data)
    # Held out: every k-th photo, spread over the folder; none when there are too few to spare.
    held = files[:: len(files) // args.samples][: args.samples] if 0 < args.samples < len(files) else []
    training = [f for f in files if f not in held]
    styles = [load_image(s, style_size(cfg))[None] for s in args.styles]
    weights = weights_from_args(args, cfg)
    from jaxnst.weights import weights_digest

    settings = {
        "train": dataclasses.asdict(tcfg),
        "loss": {k: getattr(cfg, k) for k in LOSS_FIELDS},
        "styles": [Path(s).name for s in args.styles],
        "styles_sha256": [file_digests(s)["sha256"] for s in args.styles],
        "weights_sha256": weights_digest(weights.params),
        "photos": len(training),
        "held_out": len(held),
    }
    settings = json.loads(json.dumps(settings))  # tuples as lists: as a checkpoint's JSON gives them back
    enable_compilation_cache()
    _train(args, tcfg, cfg, settings, training, held, styles, weights, model_path, out)
    return 0


def _train(args, tcfg, cfg, settings, training, held, styles, weights, model_path: Path, out: dict) -> None:
    import signal
    import sys

    import jax
    import numpy as np
    from jax.experimental import multihost_utils
    from tqdm import tqdm

    from jaxnst import checkpoint, fast, train
    from jaxnst.image import load_image, save_image
    from jaxnst.optimize import LossWeights

    net = fast.TransformNet(tcfg.width, tcfg.blocks)
    tx = train.optimizer(tcfg.lr)
    spec = train.loss_spec(cfg)
    step = train.make_step(net, tx, spec)
    state = train.init(net, tx, tcfg.seed)
    log: list[list[float]] = []
    if args.resume:
        meta = checkpoint.read_meta_only(out["checkpoint"], "start without --resume")
        before, log = meta.get("settings"), meta.get("log")
        if not (isinstance(before, dict) and isinstance(before.get("train"), dict) and _is_log(log)):
            raise JaxnstError(f"{out['checkpoint']} is not a training checkpoint, or it is damaged: give --overwrite "
                              "to start again")  # fmt: skip
        differ = [k for k in settings if k != "train" and before.get(k) != settings[k]]
        was = dict(before["train"], steps=tcfg.steps)
        if differ or was != settings["train"]:
            raise JaxnstError(f"{out['checkpoint']} was made with other {differ[0] if differ else 'settings'}: give "
                              "that run's flags (only --steps may change), or --overwrite")  # fmt: skip
        state = checkpoint.read_tree(out["checkpoint"], state, (".params",))
        if len(log) != int(state.step):
            raise JaxnstError(f"{out['checkpoint']}: its log has {len(log)} steps, its network {int(state.step)}: it "
                              "is damaged; give --overwrite to start again")  # fmt: skip
    first = int(state.step)
    writer = jax.process_index() == 0  # on several hosts every process trains on its rows of each batch; one writes
    quiet = args.quiet or not writer
    if first >= tcfg.steps and args.resume and not quiet:
        say(f"{out['checkpoint']} is at step {first} of {tcfg.steps}: writing the model")
    photos = train.Photos(training, tcfg)
    mesh = train.mesh(tcfg.batch)
    rows = train.local_rows(mesh, tcfg.batch)
    target = train.style_targets(weights, styles, cfg)
    state, weights, target, lw = train.replicate(mesh, (state, weights, target, LossWeights.from_config(cfg)))
    known = {p: i for i, p in enumerate((*training, *held))}

    def everywhere(a: np.ndarray) -> np.ndarray:
        """``a`` of every process, stacked (one process: ``a[None]``); every process must call it."""
        return multihost_utils.process_allgather(a) if jax.process_count() > 1 else a[None]

    def skipped() -> int:  # the photos that could not be read, on any host
        bad = np.zeros(len(known), bool)
        bad[[known[p] for p in photos.bad]] = True
        return int(everywhere(bad).any(axis=0).sum())

    samples = []
    for p in held:  # a held-out photo that cannot be read counts as skipped, as a training one does
        try:
            samples.append(load_image(p, tcfg.crop * 2))
        except JaxnstError as e:
            photos.bad[p] = str(e)
    if not quiet:
        say(f"training a width-{tcfg.width} network ({tcfg.blocks} blocks) on {len(training)} photos "
            f"({len(held)} held out), {tcfg.batch} crops of {tcfg.crop} px a step, steps {first}..{tcfg.steps}; "
            f"{weights.source}, on {device_name()} x{mesh.size}")  # fmt: skip

    def save(state) -> int:  # every process calls it (skipped() gathers); one writes; returns skipped()
        bad = skipped()
        if not writer:
            return bad
        checkpoint.save_tree(out["checkpoint"], state, {"settings": settings, "log": log, "skipped": bad})
        if samples:
            out["samples"].mkdir(exist_ok=True)
            model = fast.Model(net, jax.device_get(state.params), {})
            for k, img in enumerate(samples):
                save_image(fast.stylize(model, img), out["samples"] / f"sample{k}_step{int(state.step):06d}.png")
        return bad

    bar = tqdm(total=tcfg.steps, initial=first, unit="step", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        with stop_requests() as got:
            for k, batch in photos.batches(first, tcfg.steps, rows):
                state, terms = step(state, train.shard(mesh, batch), weights, target, lw)
                terms = {n: float(v) for n, v in terms.items()}
                log.append([k + 1, *(terms[n] for n in ("loss", "content", "style", "tv"))])
                if not np.isfinite(terms["loss"]):
                    raise JaxnstError(f"the loss became {terms['loss']} at step {k + 1}: lower --lr and start again")
                bar.set_postfix(loss=f"{terms['loss']:.4g}", skipped=len(photos.bad), refresh=False)
                bar.update(1)
                if (k + 1) % args.checkpoint_every == 0:
                    save(state)
                # Every process stops at the same step: a signal to any one stops them all.
                signum = int(everywhere(np.int32(got.get("signum") or 0)).max())
                if signum:
                    raise Interrupted(signum)
    except Interrupted as e:
        bar.close()
        save(state)
        say(f"stopped by {signal.Signals(e.signum).name} at step {int(state.step)} of {tcfg.steps}; saved "
            f"{out['checkpoint']}: to go on, run the same command with --resume")  # fmt: skip
        raise
    bar.close()
    bad = save(state)
    if not writer:
        return
    info = {**settings, "steps_done": int(state.step), "skipped": bad}
    fast.save_model(fast.Model(net, jax.device_get(state.params), info), model_path)
    plot_losses(log, out["plot"])
    if not quiet:
        note = f"; {bad} photos could not be read and were skipped" if bad else ""
        say(f"wrote {model_path} in {time.perf_counter() - t0:.0f} s (loss log {out['plot']}, samples in "
            f"{out['samples']}){note}")  # fmt: skip


def _is_log(log) -> bool:
    """``log`` is a loss log as ``_train`` keeps it: rows of five numbers (step, loss, content, style, tv)."""
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    return isinstance(log, list) and all(isinstance(r, list) and len(r) == 5 and all(map(num, r)) for r in log)


def plot_losses(log: list, path: Path, size=(640, 360)) -> None:
    """The loss against the step, on a log scale, as a PNG (``log``: rows of step, loss, content, style, tv)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from jaxnst.image import save_image

    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    if log:
        a = np.asarray(log, np.float64)
        steps, cols = a[:, 0], {"loss": (a[:, 1], (0, 0, 0))}
        y = np.log10(np.maximum(cols["loss"][0], 1e-30))
        lo, hi = float(y.min()), float(y.max()) + 1e-9
        x0, x1, y0, y1 = 50, size[0] - 10, size[1] - 30, 10
        X = x0 + (steps - steps.min()) / max(1.0, float(np.ptp(steps))) * (x1 - x0)
        Y = y0 + (y - lo) / (hi - lo) * (y1 - y0)
        d.line(list(zip(X.tolist(), Y.tolist(), strict=True)), fill=(0, 0, 0), width=1)
        d.rectangle([x0, y1, x1, y0], outline=(128, 128, 128))
        d.text((x0, y0 + 6), f"step {int(steps.min())}", fill=(0, 0, 0))
        d.text((x1 - 70, y0 + 6), f"step {int(steps.max())}", fill=(0, 0, 0))
        d.text((4, y1), f"{10**hi:.3g}", fill=(0, 0, 0))
        d.text((4, y0 - 12), f"{10**lo:.3g}", fill=(0, 0, 0))
        d.text((x0 + 8, y1 + 4), "loss (log scale)", fill=(0, 0, 0))
    save_image(np.asarray(im, np.float32) / 255, path)
