"""``jaxnst video IN STYLE [STYLE ...] -o OUT``: a clip in one style (``jaxnst.video``), frame by frame on disk.

Every finished frame is a PNG in the frames folder (OUT itself when OUT is a folder, else ``OUT``'s name
with ``_frames``), beside the clip's record (``record.json``); the video is assembled from them at the end,
atomically. A signal stops after the current block and keeps the finished frames; ``--resume`` goes on
from the last one, with the same result as a run that did not stop.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jaxnst.cli.common import (
    Parser,
    add_config_flags,
    add_weights_flag,
    check_writable,
    config_from_args,
    device_name,
    enable_compilation_cache,
    say,
    weights_from_args,
)
from jaxnst.cli.stylize import Interrupted, stop_requests
from jaxnst.config import style_size
from jaxnst.errors import JaxnstError

RECORD = "record.json"


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.video import TEMPORAL_WEIGHT

    p = Parser(prog="jaxnst video", description="A video (or a folder of frames) in the style of STYLE, "
               "without flicker: each frame starts from the last one moved by the optical flow.")  # fmt: skip
    p.add_argument("input", help="a video file (.mp4, .mov, .webm, ...) or a folder of frames")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="a video (.mp4, .mov, .mkv, .webm, .gif; the input's audio is kept) or a folder for PNG "
                   "frames; a video's frames are kept in OUT_frames/")  # fmt: skip
    p.add_argument("--style-coarse", nargs="+", metavar="STYLE", default=None,
                   help="take the coarse structure from these images (as in the main command)")  # fmt: skip
    p.add_argument("--fps", type=float, default=None, help="frames per second to take (default: the clip's; 24 for "
                   "a folder)")  # fmt: skip
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="skip this much of the clip first")
    p.add_argument("--frames", type=int, default=None, metavar="N", help="take at most N frames")
    p.add_argument("--temporal-weight", type=float, default=TEMPORAL_WEIGHT,
                   help=f"weight of the temporal term, which keeps each frame on the last one moved by the flow "
                   f"(default: {TEMPORAL_WEIGHT:g}); 0 stylises every frame on its own (it flickers)")  # fmt: skip
    p.add_argument("--frame-steps", type=int, default=None, metavar="N",
                   help="steps of each frame after the first (default: half the first frame's)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="go on from the frames an interrupted run left")
    p.add_argument("--overwrite", action="store_true", help="replace OUT and its frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only errors")
    add_config_flags(p)
    add_weights_flag(p)
    return p


def frames_folder(out: Path, kind: str) -> Path:
    return out if kind == "folder" else out.with_name(f"{out.stem}_frames")


def _finished(folder: Path) -> int:
    """How many frames, from the first on without a gap, are in ``folder``."""
    k = 0
    while (folder / f"frame_{k:05d}.png").is_file():
        k += 1
    return k


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from jaxnst import videoio

    cfg = config_from_args(args)  # bad flags fail before anything is read
    if args.frame_steps is not None and args.frame_steps < 1:
        raise JaxnstError(f"--frame-steps {args.frame_steps} must be at least 1")
    if args.temporal_weight < 0 or args.temporal_weight != args.temporal_weight:
        raise JaxnstError(f"--temporal-weight {args.temporal_weight} must be a number >= 0")
    source, out = Path(args.input), Path(args.output)
    kind = videoio.output_kind(out)
    folder = frames_folder(out, kind)
    for path in (out, folder):
        if path.exists() and path.resolve() in {Path(p).resolve() for p in (source, *args.styles)}:
            raise JaxnstError(f"output {path} is also an input: it would be overwritten; give another -o")
    for s in (*args.styles, *(args.style_coarse or ())):
        if not Path(s).exists():
            raise JaxnstError(f"style image {s} does not exist: check the path")
    if out.exists() and kind == "video" and not (args.overwrite or args.resume):
        raise JaxnstError(f"{out} exists: add --overwrite to replace it, or give another -o")
    started = folder.is_dir() and any(folder.glob("frame_*.png"))
    if started and not (args.resume or args.overwrite):
        raise JaxnstError(f"{folder} holds frames of an earlier run: add --resume to go on with them, "
                          "or --overwrite to start again")  # fmt: skip
    if not out.parent.is_dir():
        raise JaxnstError(f"output folder {out.parent} does not exist: create it first")

    clip = videoio.open_clip(source, size=cfg.size, fps=args.fps, start=args.start, frames=args.frames)
    from jaxnst.image import load_image

    styles = [load_image(s, style_size(cfg)) for s in args.styles]
    coarse = [load_image(s, style_size(cfg)) for s in args.style_coarse or ()]
    weights = weights_from_args(args, cfg)
    from jaxnst.record import make_record
    from jaxnst.weights import weights_digest

    record = make_record(cfg, command="video", content=source, styles=args.styles, weights=args.weights,
                         weights_sha256=weights_digest(weights.params), device=device_name(), output=out,
                         style_coarse=args.style_coarse or (),
                         fps=clip.fps, start=args.start, frames=clip.count, temporal_weight=args.temporal_weight,
                         frame_steps=args.frame_steps)  # fmt: skip
    done = 0
    if started and args.resume:
        try:
            before = json.loads((folder / RECORD).read_text())
        except (OSError, ValueError):
            raise JaxnstError(f"{folder} has no readable {RECORD}: it is not a jaxnst video's frames; "
                              "give --overwrite to start again") from None  # fmt: skip
        same = lambda r: {k: v for k, v in r.items() if k not in ("device", "output")}  # noqa: E731
        if not isinstance(before, dict) or same(before) != same(record):
            raise JaxnstError(f"the frames in {folder} were made with other settings or inputs: give that run's "
                              "flags, or --overwrite to start again")  # fmt: skip
        done = min(_finished(folder), clip.count)
    elif args.overwrite and folder.is_dir():
        for f in folder.glob("frame_*.png"):
            f.unlink()
    check_writable(folder, "-o", create=True)
    _write_record(folder / RECORD, record)
    enable_compilation_cache()
    if not args.quiet:
        from jaxnst.video import first_frame_steps

        first = first_frame_steps(cfg)
        later = first // 2 if args.frame_steps is None else args.frame_steps
        how = (f"each later one {later} steps from the last one moved by the flow, temporal weight "
               f"{args.temporal_weight:g}" if args.temporal_weight > 0 else "every frame on its own")  # fmt: skip
        say(f"{clip.count} frames of {clip.hw[1]}x{clip.hw[0]} px at {clip.fps:g} fps"
            + (f" ({done} done, going on)" if done else "")
            + f": the first {first} steps, {how}; {weights.source}, on {device_name()}")  # fmt: skip
    _run(args, cfg, clip, styles, coarse, weights, folder, done)
    if kind == "video":
        frames = [folder / f"frame_{k:05d}.png" for k in range(clip.count)]
        videoio.write_video(frames, clip.fps, out, audio_from=source if clip.audio else None, start=args.start)
    if not args.quiet:
        say(f"wrote {out} ({clip.count} frames at {clip.fps:g} fps, {clip.hw[1]}x{clip.hw[0]})"
            + (f"; its frames are in {folder}" if kind == "video" else ""))  # fmt: skip
    return 0


def _write_record(path: Path, record: dict) -> None:
    from jaxnst._files import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")


def _run(args, cfg, clip, styles, coarse, weights, folder: Path, done: int) -> None:
    """The frames from ``done`` on, each written as it finishes; a signal stops at a block's end."""
    import itertools
    import signal
    import sys

    from tqdm import tqdm

    from jaxnst import videoio
    from jaxnst.image import load_image, save_image
    from jaxnst.video import stylize_clip

    if done >= clip.count:
        return
    frames = videoio.iter_frames(clip)
    previous = None
    if done:
        before = next(itertools.islice(frames, done - 1, None))  # the content frame before the first to make
        previous = (before, load_image(folder / f"frame_{done - 1:05d}.png"))
    bar = tqdm(total=clip.count, initial=done, unit="frame", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        with stop_requests() as got:

            def progress(k, p) -> None:  # after each block of steps: a signal stops here, losing only this frame
                bar.set_postfix(step=f"{p.step}/{p.steps}", loss=f"{p.loss:.4g}", refresh=True)
                if got.get("signum"):
                    raise Interrupted(got["signum"])

            results = stylize_clip(frames, styles, weights, cfg, temporal_weight=args.temporal_weight,
                                   warm_start=args.temporal_weight > 0, frame_steps=args.frame_steps,
                                   previous=previous, callback=progress, coarse_styles=coarse or None)  # fmt: skip
            for k, image in enumerate(results, start=done):
                save_image(image, folder / f"frame_{k:05d}.png")
                bar.update(1)
    except Interrupted as e:
        bar.close()
        n = _finished(folder)
        say(f"stopped by {signal.Signals(e.signum).name} after {n} of {clip.count} frames (in {folder}); to go on, "
            "run the same command with --resume")  # fmt: skip
        raise
    bar.close()
    if not args.quiet:
        say(f"{clip.count - done} frames in {time.perf_counter() - t0:.1f} s")
