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

Every tree is checked against the shapes of ``VGG.init`` before use.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from jaxnst._files import atomic_path
from jaxnst.errors import JaxnstError
from jaxnst.vgg import (
    BLOCKS,
    CAFFE,
    PREPROCESSINGS,
    TORCH,
    Preprocessing,
    Weights,
    conv_layers,
    init_params,
    param_shapes,
)

FORMAT = "jaxnst-vgg"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{arch}/{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_FILE = "{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5"
RANDOM_SOURCE = "random He-init (NOT PRETRAINED: results are not a real style transfer)"


def cache_dir() -> Path:
    """``$JAXNST_HOME``, else ``~/.cache/jaxnst``."""
    return Path(os.environ.get("JAXNST_HOME") or Path.home() / ".cache" / "jaxnst")


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
            shape = shapes[leaf]
            got = tuple(np.shape(params[name][leaf]))
            if got != shape:
                raise JaxnstError(f"{path}: {name}/{leaf} has shape {got}, {arch} needs {shape}: wrong architecture?")
    return {n: {k: jnp.asarray(params[n][k], jnp.float32) for k in ("kernel", "bias")} for n in want}


def _arch_from(params: dict, path) -> str:
    convs = {n for n in params if re.fullmatch(r"conv\d_\d", n)}
    for arch in ("vgg19", "vgg16"):
        if set(conv_layers(arch)) == convs:
            return arch
    raise JaxnstError(f"{path}: its conv layers {sorted(convs)} match neither vgg16 nor vgg19")


def _read_canonical(f: h5py.File) -> tuple[dict, str, Preprocessing, str]:
    params = {n: {"kernel": f[n]["kernel"][()], "bias": f[n]["bias"][()]} for n in f if n.startswith("conv")}
    a = f.attrs
    pre = Preprocessing(
        str(a["preprocessing"]),
        str(a["channel_order"]),
        float(a["scale"]),
        tuple(float(v) for v in a["mean"]),
        tuple(float(v) for v in a["std"]),
    )
    return params, str(a["arch"]), pre, str(a.get("source", ""))


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    out = []
    group.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def _read_keras(f: h5py.File) -> tuple[dict, str | None, Preprocessing, str]:
    root = f["model_weights"] if "model_weights" in f else f
    params = {}
    for name in root:
        m = re.fullmatch(r"block(\d)_conv(\d)", name)
        if not m:
            continue
        kernel = [d for d in _datasets(root[name]) if re.search(r"(_W(_\d+)?|kernel)(:0)?$", d.name)]
        bias = [d for d in _datasets(root[name]) if re.search(r"(_b(_\d+)?|bias)(:0)?$", d.name)]
        if len(kernel) != 1 or len(bias) != 1:
            continue  # e.g. an empty group; _check names the missing layer
        params[f"conv{m[1]}_{m[2]}"] = {"kernel": kernel[0][()], "bias": bias[0][()]}
    return params, None, CAFFE, "keras"


def _read_flaxmodels(f: h5py.File) -> tuple[dict, str | None, Preprocessing, str]:
    params = {n: {"kernel": f[n]["weight"][()], "bias": f[n]["bias"][()]} for n in f if re.fullmatch(r"conv\d_\d", n)}
    return params, None, TORCH, "flaxmodels"


def detect_layout(f: h5py.File) -> str:
    """'jaxnst', 'keras' or 'flaxmodels', from the file's attributes and groups."""
    if f.attrs.get("format") == FORMAT:
        return "jaxnst"
    root = f["model_weights"] if "model_weights" in f else f
    if "block1_conv1" in root:
        return "keras"
    if "conv1_1" in f and "weight" in f["conv1_1"]:
        return "flaxmodels"
    raise JaxnstError(
        f"{f.filename}: not a VGG weight file jaxnst knows (expected a jaxnst, Keras notop or flaxmodels h5)"
    )


def load_weights(path: str | os.PathLike, arch: str | None = None) -> Weights:
    """Reads VGG weights from an HDF5 file in any layout ``detect_layout`` knows.

    ``arch`` (``'vgg16'``/``'vgg19'``), when given, must match the file.
    Raises ``JaxnstError`` for a missing, unreadable, incomplete or mis-shaped file.
    """
    path = Path(path)
    if not path.is_file():
        raise JaxnstError(f"weight file {path} does not exist: check the path, or use --weights random for a test run")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise JaxnstError(f"{path} is not an HDF5 file: give a .h5 weight file (see weights/README.md)") from None
    with f:
        layout = detect_layout(f)
        reader = {"jaxnst": _read_canonical, "keras": _read_keras, "flaxmodels": _read_flaxmodels}[layout]
        params, file_arch, pre, source = reader(f)
    file_arch = file_arch or _arch_from(params, path)
    if arch is not None and arch != file_arch:
        raise JaxnstError(f"{path} holds {file_arch} weights but {arch} was asked for: use --model {file_arch}")
    return Weights(_check(params, file_arch, path), file_arch, pre, source or layout)


def save_weights(weights: Weights, path: str | os.PathLike) -> None:
    """Writes ``weights`` in the canonical layout, atomically (temp file + rename)."""
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
        )
        for name, leaves in weights.params.items():
            g = f.create_group(name)
            for leaf in ("kernel", "bias"):
                g.create_dataset(leaf, data=np.asarray(leaves[leaf], np.float32))


def find_weights(arch: str = "vgg19") -> Path:
    """The cached weight file for ``arch``, or a ``JaxnstError`` that says how to get one."""
    d = cache_dir()
    for name in (f"{arch}.h5", KERAS_FILE.format(arch=arch)):
        if (d / name).is_file():
            return d / name
    raise JaxnstError(
        f"no {arch} weights in {d}: download {KERAS_URL.format(arch=arch)} into that folder, "
        f"or pass --weights PATH (or --weights random for a test run without pretrained weights)"
    )


def get_weights(spec: str | None, arch: str = "vgg19", seed: int = 0) -> Weights:
    """``'random'`` -> seeded random weights; a path -> that file; ``None`` -> the cache."""
    if spec == "random":
        return random_weights(arch, seed)
    return load_weights(spec if spec else find_weights(arch), arch)


__all__ = [
    "PREPROCESSINGS",
    "cache_dir",
    "detect_layout",
    "find_weights",
    "get_weights",
    "load_weights",
    "random_weights",
    "save_weights",
]
