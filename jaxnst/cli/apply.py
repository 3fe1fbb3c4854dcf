"""``jaxnst apply MODEL INPUT [INPUT ...] -o OUT``: photos painted by a fast network ``jaxnst train`` made.

OUT is an image file for one input, else a folder (created) of PNGs named as the inputs; or, for one clip
(a video file or a folder of frames), a video (``.mp4``, ``.webm``, ``.gif``, ...: its frames painted one
by one, the sound kept). A photo that cannot be read is skipped and named, and the command exits 2 after
painting the others.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jaxnst.cli.common import Parser, add_bit_depth_flag, check_writable, device_name, enable_compilation_cache, say
from jaxnst.errors import JaxnstError


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="jaxnst apply", description="Paint photos with a fast network (`jaxnst train` makes one): "
               "one pass each, a fraction of a second.")  # fmt: skip
    p.add_argument("model", help="a model file `jaxnst train` wrote (`jaxnst weights info MODEL` says what it is)")
    p.add_argument("inputs", nargs="+", metavar="input", help="photos: files, folders or globs; or one clip")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="an image file (.png, .jpg) for one photo, else a folder for the paintings; a video "
                   "(.mp4, .mov, .mkv, .webm, .gif) for a clip (a video or a folder of frames)")  # fmt: skip
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="resize each photo's long side to N px first (default: its own size)")  # fmt: skip
    p.add_argument("--preserve-color", action="store_true", help="keep each photo's colours: the painting's "
                   "luminance with the photo's chroma")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("--quiet", action="store_true", help="only errors")
    add_bit_depth_flag(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from jaxnst.cli.batch import find_images
    from jaxnst.image import FORMATS
    from jaxnst.videoio import VIDEO_SUFFIXES

    if args.size is not None and args.size < 8:
        raise JaxnstError(f"--size {args.size} is too small: give at least 8 px")
    out = Path(args.output)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return _apply_clip(args, out)
    inputs = find_images(args.inputs)
    to_file = out.suffix.lower() in FORMATS
    if to_file and len(inputs) > 1:
        raise JaxnstError(f"{len(inputs)} photos and one output file {out}: give a folder as -o")
    if to_file:
        targets = [out]
        if not out.parent.is_dir():
            raise JaxnstError(f"output folder {out.parent} does not exist: create it first")
    else:
        stems = [p.stem for p in inputs]
        if len(set(stems)) < len(stems):
            raise JaxnstError("two photos have the same name: give them in separate runs, or rename one")
        targets = [out / f"{s}.png" for s in stems]
    seen = {p.resolve() for p in (*inputs, Path(args.model))}
    for t in targets:
        if t.exists() and t.resolve() in seen:
            raise JaxnstError(f"output {t} is also an input: it would be overwritten; give another -o")
        if t.exists() and not args.overwrite:
            raise JaxnstError(f"{t} exists: add --overwrite to replace it, or give another -o")

    from jaxnst import color, fast
    from jaxnst.image import load_image, save_image

    model = fast.load_model(args.model)
    enable_compilation_cache()  # a later run of the same sizes skips the compile
    if not to_file:
        check_writable(out, "-o", create=True)
    t0, bad = time.perf_counter(), []
    shapes: set = set()
    for src, dst in zip(inputs, targets, strict=True):
        try:
            photo = load_image(src, args.size)
        except JaxnstError as e:
            bad.append(str(e))
            continue
        if min(photo.shape[:2]) < 8:
            bad.append(f"image {src} is {photo.shape[1]}x{photo.shape[0]} px: too small for a fast network")
            continue
        painted = fast.stylize(model, photo)
        shapes.add(photo.shape)
        if args.preserve_color:
            painted = color.keep_chroma(painted, photo)
        save_image(painted, dst, bits=args.bit_depth)
    done = len(inputs) - len(bad)
    if not args.quiet and done:
        say(f"painted {done} photo{'s' * (done != 1)} in {time.perf_counter() - t0:.1f} s on {device_name()}"
            f" ({len(shapes)} size{'s' * (len(shapes) != 1)} compiled) into {out}")  # fmt: skip
    if bad:
        for line in bad:
            say(f"skipped: {line}")
        raise JaxnstError(
            f"{len(bad)} of {len(inputs)} photos could not be read (named above); the others are in {out}"
        )
    return 0


def _apply_clip(args: argparse.Namespace, out: Path) -> int:
    """One clip, each frame painted on its own (the network is the same function of every frame: what moves
    in the photo moves in the painting), into the video ``out`` with the clip's sound."""
    import tempfile

    from jaxnst import color, fast, videoio
    from jaxnst.image import save_image

    if len(args.inputs) != 1:
        raise JaxnstError(
            f"{len(args.inputs)} inputs and one video {out}: give one clip (a video or a folder of frames)"
        )
    src = Path(args.inputs[0])
    if out.exists() and out.resolve() in {src.resolve(), Path(args.model).resolve()}:
        raise JaxnstError(f"output {out} is also an input: it would be overwritten; give another -o")
    if out.exists() and not args.overwrite:
        raise JaxnstError(f"{out} exists: add --overwrite to replace it, or give another -o")
    if not out.parent.is_dir():
        raise JaxnstError(f"output folder {out.parent} does not exist: create it first")
    model = fast.load_model(args.model)
    enable_compilation_cache()
    clip = videoio.open_clip(src, size=args.size)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".jaxnst-apply-", dir=out.parent) as tmp:
        frames = []
        for k, frame in enumerate(videoio.iter_frames(clip)):
            painted = fast.stylize(model, frame)
            frames.append(Path(tmp) / f"frame_{k:05d}.png")
            save_image(color.keep_chroma(painted, frame) if args.preserve_color else painted, frames[-1])
        videoio.write_video(frames, clip.fps, out, audio_from=src if clip.audio else None)
    if not args.quiet:
        say(f"painted {len(frames)} frames of {clip.hw[1]}x{clip.hw[0]} in {time.perf_counter() - t0:.1f} s on "
            f"{device_name()} into {out}")  # fmt: skip
    return 0
