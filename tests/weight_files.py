"""Synthetic weight files in the exact public layouts, written from given arrays (for tests)."""

import h5py
import numpy as np

from jaxnst import vgg


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
