"""Runs started from the web page: a queue, one engine run at a time, results kept in a folder.

No web library here: ``jaxnst.web.app`` serves a ``Runner`` over HTTP. Each run is a folder
``RUNS/<id>/`` holding its uploads (named by jaxnst, never by the request), ``run.json`` (settings
and status, written atomically) and ``result_<k>.png`` per image (written atomically, with the run's
record in a text chunk as the CLI writes it). ``close`` stops the run being painted at the end of
its block, keeping its image, and leaves the queued runs queued on disk: a new ``Runner`` on the same
folder lists the runs that finished and runs the queued ones; one a killed server left running is
marked ``interrupted``.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import io
import json
import queue
import re
import threading
import time
import typing
import uuid
from pathlib import Path

from jaxnst._files import atomic_path
from jaxnst.batch import grid_configs, stylize_batch
from jaxnst.config import Config, parse_value, settings, style_size, validate
from jaxnst.errors import JaxnstError
from jaxnst.image import fit_long_side, image_size, load_image, save_image, to_pil
from jaxnst.memory import MARGIN, free_bytes
from jaxnst.record import make_record
from jaxnst.weights import weights_digest


# The settings the page offers (the ``Config`` fields with a ``page`` label; everything else keeps its
# default), and those it can sweep.
def _page_sweeps(config: type) -> tuple[str, ...]:
    return tuple(name for name in settings("page", config=config) if name in settings("sweep", config=config))


SETTINGS = settings("page")
SWEEPS = _page_sweeps(Config)
MAX_UPLOAD_BYTES = 40 * 2**20
MAX_STYLES = 4
MAX_QUEUED = 20  # runs waiting at once
MAX_PAGE_SIZE = 4096  # the page's largest image side (the command line goes to config.MAX_SIZE)
FINAL = ("done", "stopped", "failed", "interrupted")
# A page run's peak memory without compiling: XLA's estimate (``jaxnst.memory.estimate`` of the page's
# settings, VGG19 on the CPU) is about 2540 bytes a pixel of each image of the batch (the activations the
# backward pass keeps), plus 50 MiB of weights and up to 110 MiB of workspaces at small sizes: 113 MiB at
# 64 px, 297 at 256, 774 at 512, 2671 at 1024. These bounds are above it at every size (tests/test_web.py).
PEAK_BYTES, PEAK_BYTES_PER_PIXEL = 160 * 2**20, 2700
RUN_ID = re.compile(r"[0-9a-f]{12}")


class _Stopped(Exception):
    pass


@dataclasses.dataclass
class Run:
    """A run's settings and live state; ``version`` grows with every change."""

    id: str
    folder: Path
    settings: dict
    sweep: dict  # {} or {field: [values]}: one image per value, one batch
    coarse: int = 0  # coarse style images (for every image of the run)
    status: str = "queued"
    message: str = ""
    step: int = 0
    steps: int = 0
    scale: int = 0
    scales: int = 1
    shape: tuple = ()
    eta: float | None = None
    losses: list = dataclasses.field(default_factory=list)  # [step, [loss per image]]
    images: list = dataclasses.field(default_factory=list)  # the current PNGs, bytes
    labels: list = dataclasses.field(default_factory=list)
    version: int = 0
    created: float = dataclasses.field(default_factory=time.time)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def summary(self) -> dict:
        keys = ("id", "settings", "sweep", "coarse", "status", "message", "step", "steps", "scale", "scales", "eta",
                "labels", "version", "created")  # fmt: skip
        out = {k: getattr(self, k) for k in keys}
        out["shape"] = list(self.shape)
        out["images"] = len(self.labels)
        out["losses"] = self.losses[-200:]
        return out


def parse_settings(form: dict[str, str]) -> tuple[dict, dict]:
    """The page's fields as (settings, sweep), checked by ``config.validate``; else a ``JaxnstError``."""
    chosen = {name: parse_value(name, form[name]) for name in SETTINGS if str(form.get(name, "")).strip()}
    sweep = {}
    field = str(form.get("sweep_field", "")).strip()
    if field:
        if field not in SWEEPS:
            raise JaxnstError(f"cannot sweep {field}: sweep one of {', '.join(SWEEPS)}")
        raw = [v for v in re.split(r"[,\s]+", str(form.get("sweep_values", ""))) if v]
        if not 2 <= len(raw) <= 3:
            raise JaxnstError("give two or three sweep values, e.g. 0.3, 1, 3")
        sweep[field] = [parse_value(field, v) for v in raw]
    base = validate(dataclasses.replace(Config(), **chosen))
    for _, cfg in grid_configs(base, sweep):
        validate(cfg)
    return chosen, sweep


def settings_html(config: type = Config) -> str:
    """The page's inputs: one per field of ``config`` with a ``page`` label (a menu of its choices, or
    a text box), starting at its ``page_value`` or default, its help as the tooltip; and the menu of
    the settings it can sweep."""
    hints = typing.get_type_hints(config)
    out = []
    for f in dataclasses.fields(config):
        if not f.metadata.get("page"):
            continue
        value = f.default if f.metadata["page_value"] is None else f.metadata["page_value"]
        attrs = f'name="{f.name}" id="{f.name}" title="{html.escape(f.metadata["help"])}"'
        if typing.get_origin(hints[f.name]) is typing.Literal:
            options = "".join(f'<option value="{c}"{" selected" * (c == value)}>{c}</option>'
                              for c in typing.get_args(hints[f.name]))  # fmt: skip
            box = f"<select {attrs}>{options}</select>"
        else:
            box = f'<input {attrs} value="{html.escape(_text(value))}">'
        out.append(f"<label>{html.escape(f.metadata['page'])} {box}</label>")
    options = "".join(f'<option value="{n}">{n.replace("_", " ")}</option>' for n in _page_sweeps(config))
    out.append(f'<label>Sweep <select name="sweep_field" id="sweep_field"><option value="">no sweep</option>'
               f"{options}</select></label>")  # fmt: skip
    return "\n  ".join(out)


def _text(value) -> str:
    """A setting's value as the page and the sweep labels write it: ``1e+04``, ``none``, ``relu1_1,relu2_1``."""
    if isinstance(value, tuple):
        return ",".join(map(_text, value))
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def peak_bytes(pixels: int, images: int) -> int:
    """An upper bound of the peak memory of a page run of ``images`` images of ``pixels`` pixels each."""
    return PEAK_BYTES + PEAK_BYTES_PER_PIXEL * pixels * images


class Runner:
    """The queue of runs of one server process, and the worker thread that runs them one at a time.

    ``weights`` is the VGG to use (loaded once), read from ``weights_path`` (for the records: a path,
    'random', or None when unknown); ``device`` names where runs go, for the page.
    With ``weights=None`` it only shows runs that others drive (``watch``, ``update``: the
    main command's ``--web``) and refuses new ones.
    """

    def __init__(self, folder: str | Path, weights, device: str = "", weights_path: str | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.weights, self.device, self.weights_path = weights, device, weights_path
        self._digest = functools.cache(lambda: weights_digest(weights.params))  # for the records, once
        self.runs: dict[str, Run] = {}
        self._changed = threading.Condition()
        self._queue: queue.Queue[Run | None] = queue.Queue()
        self.closing = threading.Event()
        self._load()
        self._worker = threading.Thread(target=self._work, name="jaxnst-runs", daemon=True)
        if weights is not None:
            self._worker.start()

    # -- what the app calls -------------------------------------------------------------------

    def submit(
        self,
        content: tuple[str, bytes],
        styles: list[tuple[str, bytes]],
        form: dict[str, str],
        coarse: list[tuple[str, bytes]] = (),
    ) -> Run:
        """A new queued run of ``content``, ``styles`` and the optional ``coarse`` styles ((filename, bytes)
        each) with the page's ``form`` fields. Every upload is read as an image here, so a bad one fails
        now, with a message."""
        if self.weights is None:
            raise JaxnstError("this page follows one command-line run: start `jaxnst serve` to run others")
        settings, sweep = parse_settings(form)
        if settings.get("size", Config.size) > MAX_PAGE_SIZE:
            raise JaxnstError(f"size {settings['size']} is too large for the page: use at most {MAX_PAGE_SIZE} px")
        if sum(r.status == "queued" for r in list(self.runs.values())) >= MAX_QUEUED:
            raise JaxnstError(f"{MAX_QUEUED} runs are already waiting: wait for them, or stop some")
        if not styles:
            raise JaxnstError("no style image: give at least one")
        for what, files in (("style images", styles), ("coarse style images", coarse)):
            if len(files) > MAX_STYLES:
                raise JaxnstError(f"{len(files)} {what}: give at most {MAX_STYLES}")
        run = Run(uuid.uuid4().hex[:12], Path(), settings, sweep, coarse=len(coarse))
        run.folder = self.folder / run.id
        run.labels = [f"{k}={_text(v)}" for k, vs in sweep.items() for v in vs] or [""]
        try:
            (run.folder / "inputs").mkdir(parents=True)
        except OSError as e:
            raise JaxnstError(f"the server cannot keep runs ({e.strerror})") from None
        uploads = [("the content image", "content0", content)]
        uploads += [(f"style image {i}", f"style{i}", f) for i, f in enumerate(styles, 1)]
        uploads += [(f"coarse style image {i}", f"coarse{i}", f) for i, f in enumerate(coarse, 1)]
        try:
            for what, stem, (name, data) in uploads:
                if len(data) > MAX_UPLOAD_BYTES:
                    raise JaxnstError(f"{what} ({name}) is {len(data) / 2**20:.0f} MiB: give one of at most 40 MiB")
                if not data:
                    raise JaxnstError(f"{what} ({name}) is empty")
                path = run.folder / "inputs" / stem
                try:
                    path.write_bytes(data)
                    load_image(path, 16)  # every check of the CLI's loader: format, size, decompression bombs
                except OSError as e:
                    raise JaxnstError(f"{what} ({name}) could not be kept ({e.strerror})") from None
                except JaxnstError as e:  # the page sees the upload's name, never the server's paths
                    raise JaxnstError(f"{what} ({name}): {str(e).replace(str(path), name)}") from None
            self._check_memory(run, run.folder / "inputs" / "content0")
        except JaxnstError:
            for f in (run.folder / "inputs").iterdir():
                f.unlink()
            (run.folder / "inputs").rmdir()
            run.folder.rmdir()
            raise
        with self._changed:
            self.runs[run.id] = run
            self._save(run)
        self._queue.put(run)
        return run

    def _check_memory(self, run: Run, content: Path) -> None:
        """A ``JaxnstError`` naming the size that fits unless ``run``'s peak (``peak_bytes``, its batch at its
        size) fits in the free memory, that of the run being painted included (it ends before this one starts)."""
        size, n = run.settings.get("size", Config.size), len(run.labels)
        w, h = fit_long_side(image_size(content), size)
        painting = sum(peak_bytes(r.shape[0] * r.shape[1], len(r.labels)) for r in list(self.runs.values())
                       if r.status == "running" and len(r.shape) == 2)  # fmt: skip
        budget = int((free_bytes() + painting) * MARGIN)
        if peak_bytes(w * h, n) <= budget:
            return
        pixels = (budget - PEAK_BYTES) / (PEAK_BYTES_PER_PIXEL * n)  # of each image, at most
        fits = int((pixels * max(w, h) / min(w, h)) ** 0.5) // 16 * 16 if pixels > 0 else 0
        what = f"{w}x{h} px" + (f" x {n} images" if n > 1 else "")
        fix = f"use size {fits} or less" if fits >= 32 else "free some memory first"
        where = self.device or "this machine"
        raise JaxnstError(f"{what} needs about {peak_bytes(w * h, n) / 2**30:.1f} GiB, more than the "
                          f"{budget / 2**30:.1f} GiB free for a run on {where}: {fix}")  # fmt: skip

    def watch(self, settings: dict) -> Run:
        """A run driven from outside (the main command's ``--web``), shown like the others; ``update`` it."""
        run = Run(uuid.uuid4().hex[:12], Path(), settings, {}, status="running", labels=[""])
        run.folder = self.folder / run.id
        run.folder.mkdir(parents=True)
        with self._changed:
            self.runs[run.id] = run
            self._save(run)
        return run

    def update(self, run: Run, image=None, loss: float | None = None, **changes) -> None:
        """Changes fields of ``run``; ``image`` (H, W, 3) in [0, 1] becomes its current image, ``loss``
        joins its curve at ``changes['step']``; a final ``status`` also keeps ``image`` as the result."""
        if image is not None:
            changes["images"] = [_png(image)]
        if loss is not None:
            changes["losses"] = [*run.losses, [changes.get("step", run.step), [round(loss, 6)]]]
        if image is not None and changes.get("status") in FINAL:
            save_image(image, run.folder / "result_0.png")
        self._set(run, **changes)

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id) if RUN_ID.fullmatch(run_id) else None

    def stop(self, run_id: str) -> Run | None:
        """Asks a run to stop at the end of its current block (a queued one never starts); it keeps its image."""
        run = self.get(run_id)
        if run is not None and run.status in ("queued", "running"):
            run.stop.set()
            if run.status == "queued":
                self._set(run, status="stopped", message="stopped before it started")
        return run

    def wait(self, run_id: str, version: int, timeout: float) -> Run | None:
        """The run once its ``version`` is past ``version`` (or after ``timeout`` seconds, or once ``closing``)."""
        with self._changed:
            self._changed.wait_for(
                lambda: (r := self.runs.get(run_id)) is None or r.version > version or self.closing.is_set(), timeout
            )
            return self.runs.get(run_id)

    def result(self, run: Run, k: int) -> Path | None:
        path = run.folder / f"result_{k}.png"
        return path if 0 <= k < len(run.labels) and path.is_file() else None

    def stopping(self) -> None:
        """The server is stopping (safe in a signal handler): the run being painted stops at the end of its
        block, no other starts, and ``wait`` returns at once."""
        self.closing.set()
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        """``stopping``, and waits for the worker: the run it was painting is ``stopped`` with its image kept as
        its result; queued runs stay queued on disk, for the next ``Runner`` on this folder."""
        self.stopping()
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join()

    # -- the worker ---------------------------------------------------------------------------

    def _set(self, run: Run, **changes) -> None:
        with self._changed:
            for k, v in changes.items():
                setattr(run, k, v)
            run.version += 1
            if "status" in changes:
                self._save(run)
            self._changed.notify_all()

    def _save(self, run: Run) -> None:
        record = {k: v for k, v in run.summary().items() if k not in ("losses", "version", "images")}
        with atomic_path(run.folder / "run.json") as tmp:
            Path(tmp).write_text(json.dumps(record, indent=1) + "\n")

    def _load(self) -> None:
        """The runs in the folder: the queued ones queue again (oldest first), the others as they ended."""
        for path in sorted(self.folder.glob("*/run.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not RUN_ID.fullmatch(str(rec.get("id", ""))) or path.parent.name != rec["id"]:
                continue
            run = Run(rec["id"], path.parent, rec.get("settings", {}), rec.get("sweep", {}))
            for k in ("coarse", "status", "message", "step", "steps", "scale", "scales", "labels", "created"):
                if k in rec:
                    setattr(run, k, rec[k])
            run.shape = tuple(rec.get("shape", ()))
            if run.status not in (*FINAL, "queued"):
                run.status, run.message = "interrupted", "the server stopped during this run"
                self._save(run)
            self.runs[run.id] = run
        if self.weights is not None:
            for run in sorted((r for r in self.runs.values() if r.status == "queued"), key=lambda r: r.created):
                self._queue.put(run)

    def _work(self) -> None:
        while (run := self._queue.get()) is not None:
            if run.stop.is_set() or self.closing.is_set():  # a queued run left by a stopping server stays queued
                continue
            try:
                self._run(run)
            except _Stopped:
                why = " when the server stopped" if self.closing.is_set() and not run.stop.is_set() else ""
                self._set(run, status="stopped", message=f"stopped at step {run.step}{why}")
            except Exception as e:  # the server goes on; the page shows what went wrong, but not where its files are
                why = str(e) if isinstance(e, JaxnstError) else f"{type(e).__name__}: {e}"
                self._set(run, status="failed", message=why.replace(str(run.folder), f"run {run.id}"))

    def _run(self, run: Run) -> None:
        base = dataclasses.replace(Config(), **run.settings)
        configs = [cfg for _, cfg in grid_configs(base, run.sweep)]
        content_path, style_paths, coarse_paths = _inputs(run)
        content = load_image(content_path, base.size)
        styles = [load_image(s, style_size(base)) for s in style_paths]
        coarse = [load_image(s, style_size(base)) for s in coarse_paths]
        self._set(run, status="running", message=f"compiling on {self.device}", shape=content.shape[:2])
        first: dict = {}

        def callback(p) -> None:
            step, steps = min(p.step), max(p.steps)
            images = [_png(im) for im in p.outputs()]
            eta = None
            if "t" in first and step > first["step"]:
                eta = (p.elapsed - first["t"]) / (step - first["step"]) * (steps - step)
            first.setdefault("t", p.elapsed)
            first.setdefault("step", step)
            losses = [*run.losses, [step, [round(v, 6) for v in p.loss]]]
            self._set(run, step=step, steps=steps, scale=p.scale, scales=p.scales, eta=eta, images=images,
                      losses=losses, message=f"{p.shape[1]}x{p.shape[0]} px on {self.device}")  # fmt: skip
            if (run.stop.is_set() or self.closing.is_set()) and not p.done:
                self._write_results(run, configs, p.outputs())
                raise _Stopped

        outs = stylize_batch([content], [styles], self.weights, configs, callback=callback, every=5, multiple=None,
                             coarse_styles=[coarse] if coarse else None)  # fmt: skip
        self._write_results(run, configs, outs)
        self._set(run, status="done", message=f"done in {run.step} steps on {self.device}")

    def _write_results(self, run: Run, configs: list[Config], images) -> None:
        content, styles, coarse = _inputs(run)
        for k, (cfg, im) in enumerate(zip(configs, images, strict=True)):
            out = run.folder / f"result_{k}.png"
            record = make_record(
                cfg, command="serve", content=content, styles=styles, style_coarse=coarse,
                weights=self.weights_path, weights_sha256=self._digest(), device=self.device, output=out, run=run.id,
                sweep=run.sweep,
            )  # fmt: skip
            save_image(im, out, text={"jaxnst": json.dumps(record)})


def _inputs(run: Run) -> tuple[Path, list[Path], list[Path]]:
    """The paths of a run's uploads (``submit`` names them): the content, the styles and the coarse styles,
    in order."""
    inputs = run.folder / "inputs"
    numbered = lambda stem: sorted(inputs.glob(f"{stem}*"), key=lambda p: int(p.name[len(stem) :]))  # noqa: E731
    return inputs / "content0", numbered("style"), numbered("coarse")


def _png(image) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, "PNG")
    return buf.getvalue()


def run_folder_default() -> Path:
    from jaxnst.hub import cache_dir

    return cache_dir() / "runs"
