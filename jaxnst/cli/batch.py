"""``jaxnst batch --content DIR|GLOB... --style FILE... --out DIR``: a thin layer over ``stylize_batch``.

Every content x every style x every combination of ``--sweep`` values, run as
one compiled program per bucket shape; outputs ``{content}__{style}.png`` (plus
``__name=value`` per swept parameter), a JSON trace of per-item losses and,
with ``--grid``, a labelled contact sheet.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import itertools
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

from jaxnst.cli.common import (
    Parser,
    add_bit_depth_flag,
    add_config_flags,
    add_distributed_flags,
    add_weights_flag,
    check_writable,
    config_from_args,
    device_name,
    enable_compilation_cache,
    say,
    start_distributed,
    weights_from_args,
)
from jaxnst.cli.stylize import Interrupted, stop_requests
from jaxnst.config import INIT_CHOICES, Config, flag, parse_value, scale_schedule, settings, style_size, validate
from jaxnst.errors import JaxnstError
from jaxnst.image import IMAGE_SUFFIXES
from jaxnst.weights import weights_digest

# Swept per item (``Config``'s metadata: ``setting(sweep=True)``); style blends do not apply (each style is its
# own column).
SWEEPABLE = settings("sweep")
GRID_NAME, TRACE_NAME = "grid.png", "trace.json"
GRID_TEXT = "jaxnst-grid"  # the grid's PNG text chunk: a later run into the same folder knows it for a result


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="jaxnst batch",
        description="Stylise every content with every style (and every swept value) as one compiled program "
        "per image shape, sharded over all devices.",
    )
    p.add_argument(
        "--content", nargs="+", required=True, metavar="DIR|GLOB|FILE", help="content images: folders, globs, files"
    )
    p.add_argument("--style", nargs="+", required=True, metavar="FILE", help="style images, one column each")
    p.add_argument(
        "--style-coarse",
        nargs="+",
        default=None,
        metavar="FILE",
        help="for every item, take the coarse structure from these images: the style layers after --split-layer "
        "match them, the layers up to it the item's style",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_bit_depth_flag(p)
    p.add_argument(
        "--grid",
        action="store_true",
        help=f"also write a contact sheet OUT/{GRID_NAME} (rows contents, columns styles)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V,V,...",
        help=f"try every value of a parameter, in the same program; repeat for a grid ({', '.join(SWEEPABLE)})",
    )
    add_weights_flag(p)
    add_config_flags(p, skip=("style_blend_weights",))
    p.add_argument(
        "--batch-size", type=int, default=None, metavar="N", help="at most N items per program (default: all)"
    )
    p.add_argument(
        "--bucket-multiple",
        type=int,
        default=32,
        metavar="N",
        help="contents are optimised with both sides rounded to a multiple of N, then resized back (default: 32)",
    )
    p.add_argument(
        "--every", type=int, default=10, metavar="N", help="steps per dispatch and trace entry (default: 10)"
    )
    p.add_argument(
        "--trace", default=None, metavar="PATH", help=f"JSON trace of per-item losses (default: OUT/{TRACE_NAME})"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo items whose image is already in OUT (default: skip them, so a re-run finishes a folder)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary, only errors")
    add_distributed_flags(p, "batch")
    return p


def find_images(patterns: list[str]) -> list[Path]:
    """Files named by folders (their images, sorted), globs or paths, each once, in order."""
    found: dict[Path, None] = {}
    for pat in patterns:
        path = Path(pat)
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise JaxnstError(f"folder {path} has no image ({', '.join(IMAGE_SUFFIXES)})")
        elif glob.has_magic(pat):
            files = sorted(Path(f) for f in glob.glob(pat) if Path(f).is_file())
            if not files:
                raise JaxnstError(f"no file matches {pat!r}")
        elif path.is_file():
            files = [path]
        else:
            raise JaxnstError(f"content {path} does not exist: give a folder, a glob or an image file")
        found.update(dict.fromkeys(files))
    return list(found)


def parse_sweeps(texts: list[str]) -> dict[str, list[tuple[str, object]]]:
    """``['style_weight=1e2,1e3']`` -> ``{'style_weight': [('1e2', 100.0), ('1e3', 1000.0)]}``."""
    fields = {flag(n): n for n in SWEEPABLE}
    out: dict[str, list[tuple[str, object]]] = {}
    for text in texts:
        name, sep, values = text.partition("=")
        key = name.strip()
        name = fields.get(key) or fields.get("--" + key) or key.replace("-", "_")  # a field or its flag
        if not sep or not values.strip():
            raise JaxnstError(f"--sweep {text!r}: write NAME=V,V,... e.g. style_weight=1e2,1e3,1e4")
        if name not in SWEEPABLE:
            raise JaxnstError(f"--sweep {name}: cannot sweep it in one program; sweep one of {', '.join(SWEEPABLE)}")
        if name in out:
            raise JaxnstError(f"--sweep {name} given twice: put all its values in one --sweep")
        parsed = []
        for v in (v.strip() for v in values.split(",") if v.strip()):
            try:
                parsed.append((v, parse_value(name, v)))
            except JaxnstError as e:
                raise JaxnstError(f"--sweep {e}") from None
            if name == "init" and v not in INIT_CHOICES:  # a start image file is read once, for every item
                raise JaxnstError(f"--sweep init: {v!r} is not one of {', '.join(INIT_CHOICES)} (not files)")
        if len({p for _, p in parsed}) != len(parsed):
            raise JaxnstError(f"--sweep {name}: a value is repeated")
        out[name] = parsed
    return out


def _made_here(path: Path, out: Path) -> bool:
    """``path`` is a PNG that ``jaxnst batch`` wrote into ``out``: an image whose record names it as its output, or
    the grid."""
    from PIL import Image

    if path.suffix.lower() != ".png" or path.parent.resolve() != out.resolve():
        return False
    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}))
        record = json.loads(text.get("jaxnst", "{}"))
    except (OSError, ValueError, Image.DecompressionBombError):  # not an image jaxnst wrote: a content
        return False
    if path.name == GRID_NAME and GRID_TEXT in text:
        return True
    return isinstance(record, dict) and record.get("command") == "batch" and record.get("output") == str(path.resolve())


def _unique_stems(paths: list[Path], what: str) -> list[str]:
    stems = [p.stem for p in paths]
    for s in stems:
        if stems.count(s) > 1:
            raise JaxnstError(f"two {what} images are named {s!r}: outputs would collide, rename one")
    return stems


def contact_sheet(cells: list[list], row_labels: list[str], col_labels: list[str], cell: int):
    """A PIL image: ``cells[r][c]`` (PIL images) fitted into ``cell`` x ``cell`` squares,
    row labels on the left, column labels (lines split on newlines) on top."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = probe.textbbox((0, 0), "Ag", font=font)[3] + 2
    pad = 4

    def fit(text, width):
        if probe.textlength(text, font=font) <= width:
            return text
        while text and probe.textlength(text + "...", font=font) > width:
            text = text[:-1]
        return text + "..."

    left = min(cell, max(probe.textlength(t, font=font) for t in row_labels) + 2 * pad)
    left = int(math.ceil(left))
    lines = max(len(t.split("\n")) for t in col_labels)
    top = lines * line_h + 2 * pad
    sheet = Image.new("RGB", (left + len(col_labels) * (cell + pad), top + len(row_labels) * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(col_labels):
        for k, line in enumerate(label.split("\n")):
            draw.text((left + c * (cell + pad), pad + k * line_h), fit(line, cell), fill="black", font=font)
    for r, label in enumerate(row_labels):
        y = top + r * (cell + pad)
        draw.text((pad, y + cell // 2 - line_h // 2), fit(label, left - 2 * pad), fill="black", font=font)
        for c, img in enumerate(cells[r]):
            scale = cell / max(img.size)  # up or down: small outputs stay readable
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
            x = left + c * (cell + pad) + (cell - img.width) // 2
            sheet.paste(img, (x, y + (cell - img.height) // 2))
    return sheet


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run_batch(args: argparse.Namespace) -> None:
    """``jaxnst batch``: plan the items (flags and paths, before anything is read), load, run the library
    with a reporter (bar, trace, each finished image with its record), finish (grid, summary)."""
    cache = enable_compilation_cache()  # before anything compiles
    start_distributed(args)
    from jaxnst.batch import stylize_batch

    plan = _plan(args)
    run = _load(args, plan)
    plan = plan._replace(todo=[i for i in plan.todo if plan.items[i]["ci"] not in run.skipped])
    report = _Report(args, plan, run, cache)
    t0 = time.perf_counter()
    if plan.todo:
        with stop_requests() as report.stop:  # a signal stops at a block's end; finished images stay
            stylize_batch(
                [run.contents[plan.items[i]["ci"]] for i in plan.todo],
                [run.styles[plan.items[i]["si"]] for i in plan.todo],
                run.weights,
                [plan.items[i]["cfg"] for i in plan.todo],
                callback=report,
                every=args.every,
                multiple=args.bucket_multiple,
                batch_size=args.batch_size,
                init_image=run.init_image,
                coarse_styles=[run.coarse] if run.coarse else None,  # one set for every item
            )
    elif plan.writer:
        report.write_trace()
    report.finish(time.perf_counter() - t0)


class _Plan(NamedTuple):
    """The items of a batch and where each goes, checked before any image or weight is read."""

    cfg: Config
    sweeps: dict  # name -> [(text, value), ...]
    texts: list[dict]  # per setting combination, {name: text}
    content_paths: list[Path]
    style_paths: list[Path]
    coarse_paths: list[Path]
    items: list[dict]  # content-major, then style, then swept values: ci, si, values, cfg, name
    todo: list[int]  # the items to compute (not already in --out)
    out: Path
    trace: Path
    writer: bool  # this process writes (on several hosts every process computes, one writes)


def _plan(args: argparse.Namespace) -> _Plan:
    import jax

    from jaxnst.batch import grid_configs

    cfg = config_from_args(args)
    for name, v in (("--every", args.every), ("--bucket-multiple", args.bucket_multiple)):
        if v < 1:
            raise JaxnstError(f"{name} {v} must be >= 1")
    sweeps = parse_sweeps(args.sweep)
    # Both in ``itertools.product`` order, first --sweep slowest.
    combos = grid_configs(cfg, {k: [v for _, v in vs] for k, vs in sweeps.items()})
    texts = [
        dict(zip(sweeps, t, strict=True)) for t in itertools.product(*([s for s, _ in vs] for vs in sweeps.values()))
    ]
    for _, c in combos:
        validate(c)  # before any image or weight is read
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise JaxnstError(f"--out {out} is a file: give a folder")
    # --out may be a content folder: what an earlier run wrote there is a result (kept), not a content
    content_paths = [p for p in find_images(args.content) if not _made_here(p, out)]
    if not content_paths:
        raise JaxnstError(f"--content {' '.join(args.content)}: its only images are results of jaxnst batch")
    style_paths = [Path(s) for s in args.style]
    coarse_paths = [Path(s) for s in args.style_coarse or ()]
    content_names = _unique_stems(content_paths, "content")
    style_names = _unique_stems(style_paths, "style")
    items = []
    for ci, cname in enumerate(content_names):
        for si, sname in enumerate(style_names):
            for (values, c), text in zip(combos, texts, strict=True):
                suffix = "".join(f"__{k}={v}" for k, v in text.items())
                items.append({"ci": ci, "si": si, "values": values, "cfg": c, "name": f"{cname}__{sname}{suffix}"})
    inputs = {p.resolve() for p in [*content_paths, *style_paths, *coarse_paths]}
    for name in [f"{it['name']}.png" for it in items] + ([GRID_NAME] if args.grid else []):
        if (out / name).resolve() in inputs:
            raise JaxnstError(f"output {out / name} is also an input image: give another --out")
    # Finished items are kept (a re-run finishes a folder); they must be there on every host.
    todo = [i for i, it in enumerate(items) if args.overwrite or not (out / f"{it['name']}.png").exists()]
    trace = Path(args.trace) if args.trace else out / TRACE_NAME
    return _Plan(cfg, sweeps, texts, content_paths, style_paths, coarse_paths, items, todo, out, trace,
                 jax.process_index() == 0)  # fmt: skip


class _Run(NamedTuple):
    contents: list
    styles: list
    coarse: list
    init_image: object
    weights: object
    skipped: dict  # content index -> why it could not be read (its items are not made)


def _load(args: argparse.Namespace, plan: _Plan) -> _Run:
    from jaxnst.image import load_image

    cfg = plan.cfg
    # The few style images before --out is made: a bad one leaves nothing behind.
    styles = [load_image(p, style_size(cfg)) for p in plan.style_paths]
    coarse = [load_image(p, style_size(cfg)) for p in plan.coarse_paths]
    if plan.writer:
        check_writable(plan.out, "--out", create=True)
        if not plan.trace.parent.is_dir():
            raise JaxnstError(f"--trace folder {plan.trace.parent} does not exist: create it first")
    contents, skipped = [], {}
    for ci, path in enumerate(plan.content_paths):  # one unreadable photo in a folder does not stop the others
        try:
            contents.append(load_image(path, cfg.size))
        except JaxnstError as e:
            if len(skipped) == len(plan.content_paths) - 1:
                raise  # none could be read
            contents.append(None)
            skipped[ci] = str(e)
    init_image = load_image(cfg.init) if cfg.init not in INIT_CHOICES and "init" not in plan.sweeps else None
    weights = weights_from_args(args, cfg) if plan.todo else None
    return _Run(contents, styles, coarse, init_image, weights, skipped)


class _Report:
    """``stylize_batch``'s ``callback``: the bar, the trace (written after every chunk: a long run leaves a
    usable one if stopped), each finished image with its record, the grid's thumbnails; ``finish`` writes
    the grid and the summary."""

    CELL = 192  # contact-sheet square per image

    def __init__(self, args: argparse.Namespace, plan: _Plan, run: _Run, cache: str | None = None):
        from PIL import Image
        from tqdm import tqdm

        self.args, self.plan, self.run, self.stop = args, plan, run, {}
        cfg, items, todo = plan.cfg, plan.items, plan.todo
        quiet = args.quiet or not plan.writer
        self.say = (lambda msg: None) if quiet else (lambda msg: tqdm.write(msg, file=sys.stderr))
        done = len(items) - len(todo)
        kept = f", {done} already in {plan.out} (kept; --overwrite redoes them)" if done else ""
        source = f"{cfg.model} from {run.weights.source}" if run.weights else "nothing to compute"
        self.say(
            f"jaxnst batch: {len(run.contents)} content x {len(run.styles)} style x {len(plan.texts)} setting(s) = "
            f"{len(items)} images at {cfg.size} px{kept}, {source}, on {device_name()}"
        )
        if todo:  # the silent part: tens of seconds on a CPU before the bar moves
            cached = f"kept in {cache} for the next run" if cache else "not kept: JAXNST_COMPILATION_CACHE=0"
            self.say(f"jaxnst batch: compiling the targets and the step for each image shape ({cached})...")
        # Each item's steps over all its scales; a bucket's long side may differ from --size, and with it the
        # scales: the library's count (``p.steps``) then corrects the total.
        self.total = {i: sum(n for _, n in scale_schedule(items[i]["cfg"])) for i in todo}
        self.bar = tqdm(total=sum(self.total.values()), unit="step", disable=quiet, file=sys.stderr,
                        dynamic_ncols=True)  # fmt: skip
        self.trace = {
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in plan.sweeps},
            "sweep": {k: [v for v, _ in vs] for k, vs in plan.sweeps.items()},
            **({"style_coarse": [str(p) for p in plan.coarse_paths]} if plan.coarse_paths else {}),
            "device": device_name(),
            "items": [
                {
                    "output": f"{it['name']}.png",
                    "content": str(plan.content_paths[it["ci"]]),
                    "style": str(plan.style_paths[it["si"]]),
                    "params": it["values"],
                    "shape": list(run.contents[it["ci"]].shape[:2]) if it["ci"] not in run.skipped else None,
                    "losses": [],
                    **({"skipped": run.skipped[it["ci"]]} if it["ci"] in run.skipped else {}),
                }
                for it in items
            ],
        }
        self.seen = [0] * len(items)
        self.thumbs: dict = {}
        self.finished = 0
        self.digest = functools.cache(lambda: weights_digest(run.weights.params))  # once, not per image
        previous, redo = _previous_trace(plan.trace), set(todo)
        for i, entry in enumerate(self.trace["items"]):
            # kept from an earlier run: its trace entry too, if that run left one
            if i not in redo and "skipped" not in entry:
                entry.update(previous.get(entry["output"], {}), kept="the image was already in --out")
                if args.grid:
                    self.thumbs[i] = Image.open(plan.out / entry["output"]).convert("RGB")

    def write_trace(self) -> None:
        from jaxnst._files import atomic_path

        with atomic_path(self.plan.trace) as tmp:
            Path(tmp).write_text(json.dumps(self.trace, indent=1) + "\n")

    def __call__(self, p) -> None:
        from PIL import Image

        from jaxnst.image import save_image
        from jaxnst.record import make_record

        plan, trace, total, bar = self.plan, self.trace, self.total, self.bar
        for i, s, n, loss in zip((plan.todo[k] for k in p.items), p.step, p.steps, p.loss, strict=True):
            bar.total += n - total[i]
            total[i] = n
            bar.update(s - self.seen[i])
            self.seen[i] = s
            if s and (not trace["items"][i]["losses"] or trace["items"][i]["losses"][-1]["step"] != s):
                trace["items"][i]["losses"].append({"step": s, "loss": _finite(loss)})
        bar.set_postfix(bucket=f"{p.shape[1]}x{p.shape[0]}", done=f"{self.finished}/{len(plan.todo)}", refresh=False)
        if not p.done:
            return self._stop_if_asked()
        self.finished += len(p.items)
        terms = p.terms()
        for k, img, t, reason in zip(p.items, p.outputs(), terms, p.reasons, strict=True):
            entry = trace["items"][plan.todo[k]]
            j = p.items.index(k)
            entry.update(bucket=list(p.shape), steps=p.step[j], stopped=reason)
            entry["final"] = {"loss": _finite(p.loss[j]), **{name: _finite(v) for name, v in t.items()}}
            if plan.writer:
                item = plan.items[plan.todo[k]]
                record = make_record(
                    item["cfg"], command="batch", content=plan.content_paths[item["ci"]],
                    styles=[plan.style_paths[item["si"]]], weights=self.args.weights, weights_sha256=self.digest(),
                    device=device_name(), output=plan.out / entry["output"], bucket=list(p.shape),
                    bucket_multiple=self.args.bucket_multiple, style_coarse=plan.coarse_paths,
                )  # fmt: skip
                text = {"jaxnst": json.dumps(record)}
                save_image(img, plan.out / entry["output"], text=text, bits=self.args.bit_depth)
            if self.args.grid:
                self.thumbs[plan.todo[k]] = Image.fromarray((img.clip(0, 1) * 255).round().astype("uint8"), "RGB")
        if plan.writer:
            self.write_trace()
        self._stop_if_asked()

    def _stop_if_asked(self) -> None:
        if self.stop.get("signum"):
            self.bar.close()
            if self.plan.writer:
                self.write_trace()
            name = signal.Signals(self.stop["signum"]).name
            say(f"stopped by {name}: {self.finished} of {len(self.plan.todo)} images written to {self.plan.out}; "
                "run the same command again to do the rest")  # fmt: skip
            raise Interrupted(self.stop["signum"])

    def finish(self, wall: float) -> None:
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        from jaxnst._files import atomic_path

        plan, args = self.plan, self.args
        self.bar.close()
        extra = [plan.trace.name]
        if args.grid and plan.writer:
            content_names = [p.stem for p in plan.content_paths]
            style_names = [p.stem for p in plan.style_paths]
            cols = len(style_names) * len(plan.texts)
            blank = Image.new("RGB", (self.CELL, self.CELL), "lightgray")  # a content that could not be read
            cells = [[self.thumbs.get(r * cols + c, blank) for c in range(cols)] for r in range(len(content_names))]
            col_labels = ["\n".join([s, *(f"{k}={v}" for k, v in text.items())])
                          for s in style_names for text in plan.texts]  # fmt: skip
            text = PngInfo()
            text.add_text(GRID_TEXT, "the contact sheet of jaxnst batch")
            with atomic_path(plan.out / GRID_NAME) as tmp:
                contact_sheet(cells, content_names, col_labels, self.CELL).save(tmp, "PNG", pnginfo=text)
            extra.insert(0, GRID_NAME)
        buckets = sorted({tuple(e["bucket"]) for e in self.trace["items"] if "bucket" in e})
        self.say(
            f"jaxnst batch: wrote {len(plan.todo)} images (+ {', '.join(extra)}) to {plan.out} in {wall:.1f} s, "
            f"{len(buckets)} bucket(s) {' '.join(f'{w}x{h}' for h, w in buckets)}, on {device_name()}"
        )
        if self.run.skipped:
            n = sum(it["ci"] in self.run.skipped for it in plan.items)
            raise JaxnstError(
                f"{len(self.run.skipped)} content image(s) could not be read, so their {n} images were not made "
                f"({next(iter(self.run.skipped.values()))}); fix or remove them and run the same command again "
                "(the finished images are kept)"
            )


def _previous_trace(path: Path) -> dict[str, dict]:
    """``{output name: trace entry}`` of the trace an earlier run left at ``path`` (empty if none or unreadable)."""
    try:
        return {e["output"]: e for e in json.loads(path.read_text())["items"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def main(argv: list[str] | None = None) -> int:
    run_batch(build_parser().parse_args(argv))
    return 0
