import h5py
import numpy as np
import pytest
from conftest import small_params, to_jax
from numpy_vgg import forward

import jaxnst
from jaxnst import vgg
from jaxnst.weights import load_weights, save_weights

TAPS = ["relu1_1", "relu2_1"]


@pytest.fixture(scope="module")
def params19():
    return small_params(5, "vgg19")


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


def numpy_features(params, images, pre):
    return forward(
        params, images, TAPS, vgg.BLOCKS["vgg19"], "max", (pre.channel_order == "BGR", pre.scale, pre.mean, pre.std)
    )


@pytest.mark.parametrize("naming", ["old", "new"])
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
    w2 = load_weights(tmp_path / "c.h5")
    assert (w2.arch, w2.preprocessing, w2.source) == ("vgg19", vgg.CAFFE, "keras")
    for t in TAPS:
        np.testing.assert_array_equal(jaxnst.features(w2, images, TAPS)[t], got[t])


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
    with pytest.raises(jaxnst.JaxnstError, match="holds vgg16 weights.*--model vgg16"):
        load_weights(tmp_path / "k16.h5", "vgg19")


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
