"""jaxnst.torch_pickle: torch.save files read without torch, and pickles that would run code refused."""

import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from weight_files import Storage, TensorPickler, fake_torch_modules, legacy_file

from jaxnst.errors import JaxnstError
from jaxnst.torch_pickle import read_torch_file

# --- files crafted by hand, no torch needed --------------------------------------------------------------------


@pytest.fixture
def fake_torch(monkeypatch):
    return fake_torch_modules(monkeypatch)


def _zip_file(path, pickled: bytes, records=()):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        for name, data in records:
            z.writestr(f"archive/{name}", data)
    return path


def _tensors(torch, little=True):
    """A float32 (3, 4) tensor, a transposed view of it, and a uint8 (5,) tensor at offset 1 of its storage."""
    values = (np.arange(12, dtype=np.float32) / 4).astype("<f4" if little else ">f4")
    floats = Storage(("storage", torch.FloatStorage, "0", "cpu", 12), values.tobytes())
    bytes_ = Storage(("storage", torch.ByteStorage, "1", "cpu", 6), bytes([9, 1, 2, 3, 250, 255]))
    obj = collections.OrderedDict(
        w=torch.Tensor(floats, 0, (3, 4), (4, 1)),
        wt=torch.Tensor(floats, 1, (4, 2), (1, 4)),
        q=[torch.Tensor(bytes_, 1, (5,), (1,))],
    )
    return obj, (floats, bytes_)


def _check_tensors(got):
    want = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
    assert type(got) is dict and list(got) == ["w", "wt", "q"]
    np.testing.assert_array_equal(got["w"], want)
    np.testing.assert_array_equal(got["wt"], [[want.flat[1 + i + 4 * j] for j in range(2)] for i in range(4)])
    np.testing.assert_array_equal(got["q"][0], np.array([1, 2, 3, 250, 255], np.uint8))
    assert got["w"].dtype == np.float32 and got["q"][0].dtype == np.uint8 and type(got["q"]) is list
    for a in (got["w"], got["wt"], got["q"][0]):
        assert a.flags.c_contiguous and a.flags.owndata and a.flags.writeable


def test_hand_madelegacy_file(fake_torch, tmp_path):
    obj, storages = _tensors(fake_torch)
    _check_tensors(read_torch_file(legacy_file(tmp_path / "w.pth", obj, storages)))


def test_storage_views_and_bare_storages_of_old_legacy_files(fake_torch, tmp_path):
    """torch < 0.4 named a view of a storage with ``(view_key, offset, size)`` as the persistent id's last item."""
    data = np.arange(12, dtype="<f4")
    root = Storage(("storage", fake_torch.FloatStorage, "0", "cpu", 12), data.tobytes())
    view = Storage(("storage", fake_torch.FloatStorage, "0", "cpu", 12, ("0.v", 4, 6)), b"")
    obj = {"t": fake_torch.Tensor(view, 1, (2, 2), (2, 1)), "view": view, "root": root}
    got = read_torch_file(legacy_file(tmp_path / "old.pth", obj, [root]))
    np.testing.assert_array_equal(got["t"], data[5:9].reshape(2, 2))
    np.testing.assert_array_equal(got["view"], data[4:10])
    np.testing.assert_array_equal(got["root"], data)


@pytest.mark.parametrize("order", ["little", "big", None])
def test_hand_made_zip_file_in_either_byte_order(fake_torch, tmp_path, order):
    obj, storages = _tensors(fake_torch, little=order != "big")
    f = io.BytesIO()
    TensorPickler(f, protocol=2).dump(obj)
    records = [(f"data/{s.pid[2]}", s.data) for s in storages] + ([("byteorder", order)] if order else [])
    _check_tensors(read_torch_file(_zip_file(tmp_path / "w.pth", f.getvalue(), records)))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _refused(path, glob):
    with pytest.raises(JaxnstError) as e:
        read_torch_file(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and f"refuses to load global {glob}" in msg, msg


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_code_in_the_pickle_is_refused_and_not_run(tmp_path, layout):
    marker = tmp_path / "MARKER"
    obj = {"weight": [1.0, _Evil(marker)]}
    path = tmp_path / "evil.pth"
    if layout == "zip":
        _zip_file(path, pickle.dumps(obj, protocol=2), [("byteorder", "little")])
    else:
        legacy_file(path, obj, plain_pickle=True)
    _refused(path, f"{os.system.__module__}.system")
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Evil(marker)))  # what plain pickle would have done
    assert marker.exists()


@pytest.mark.parametrize(
    "obj, glob",
    [
        (np.arange(3), "numpy"),  # numpy.core.multiarray._reconstruct or numpy._core...
        (eval, "builtins.eval"),
        (collections.Counter(a=1), "collections.Counter"),
        (collections.OrderedDict.fromkeys, "builtins.getattr"),
    ],
)
def test_other_globals_are_refused(tmp_path, obj, glob):
    _refused(_zip_file(tmp_path / "x.pth", pickle.dumps({"x": obj}, protocol=4)), glob)


def test_a_pickle_that_lies_about_a_tensor_does_not_read_past_its_storage(fake_torch, tmp_path):
    floats = Storage(("storage", fake_torch.FloatStorage, "0", "cpu", 4), bytes(16))
    for size, stride, offset in [((5,), (1,), 0), ((2,), (1,), 3), ((2, 2), (1, 10**9), 0), ((2,), (1,), -1)]:
        path = legacy_file(tmp_path / "lie.pth", {"x": fake_torch.Tensor(floats, offset, size, stride)}, [floats])
        with pytest.raises(JaxnstError, match="damaged"):
            read_torch_file(path)


def _damaged(path):
    with pytest.raises(JaxnstError) as e:
        read_torch_file(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "not a torch.save file, or it is damaged" in msg, msg


def test_random_empty_and_truncated_files(fake_torch, tmp_path):
    (tmp_path / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.pth").write_bytes(b"")
    obj, storages = _tensors(fake_torch)
    whole = legacy_file(tmp_path / "whole.pth", obj, storages).read_bytes()
    f = io.BytesIO()
    TensorPickler(f, protocol=2).dump(obj)
    _zip_file(tmp_path / "whole.zip", f.getvalue(), [(f"data/{s.pid[2]}", s.data) for s in storages])
    zipped = (tmp_path / "whole.zip").read_bytes()
    (tmp_path / "cut_data.pth").write_bytes(whole[:-3])
    (tmp_path / "cut_pickle.pth").write_bytes(whole[:80])
    (tmp_path / "cut_zip.pth").write_bytes(zipped[: len(zipped) // 2])
    (tmp_path / "bad_crc.pth").write_bytes(zipped.replace(storages[1].data, bytes(6)))
    for name in ("random", "empty", "cut_data", "cut_pickle", "cut_zip", "bad_crc"):
        _damaged(tmp_path / f"{name}.pth")
    with pytest.raises(JaxnstError, match="cannot read"):
        read_torch_file(tmp_path / "missing.pth")


# --- files written by torch --------------------------------------------------------------------------------------

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def _saved(torch):
    g = torch.Generator().manual_seed(0)
    by_dtype = collections.OrderedDict()
    for name in DTYPES:
        values = torch.randn(3, 5, generator=g) * 50
        by_dtype[name] = (values > 0) if name == "bool" else values.to(getattr(torch, name))
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    shared = torch.arange(10, dtype=torch.int64)
    return {
        "by_dtype": by_dtype,
        "views": [base.t(), base[1:, 2:5], base[:, ::2]],
        "shared": (shared[2:5], shared[5:].view(5, 1)),
        "param": torch.nn.Parameter(torch.randn(2, 3, generator=g)),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "plain": {"name": "vgg", "n": 3, "f": 1.5, "flag": True, "none": None, "nested": [[1, 2], (3,)]},
    }


def _compare(torch, ours, theirs):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, np.ndarray) and ours.flags.c_contiguous and ours.flags.owndata
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.") and ours.shape == tuple(theirs.shape)
        if theirs.dtype == torch.bfloat16:
            ours, theirs = ours.astype(np.float32), theirs.float()
        np.testing.assert_array_equal(ours, theirs.detach().numpy(), strict=True)
    elif isinstance(theirs, dict):
        assert type(ours) is dict and list(ours) == list(theirs)
        for k in theirs:
            _compare(torch, ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _compare(torch, a, b)
    else:
        assert type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize("layout", ["zip", "zip_without_byteorder", "legacy"])
def test_matches_torch_load(tmp_path, layout):
    torch = pytest.importorskip("torch")
    path = tmp_path / "saved.pth"
    options = {"legacy": {"_use_new_zipfile_serialization": False}, "zip": {}}
    torch.save(_saved(torch), path, **options.get(layout, {"_disable_byteorder_record": True}))
    assert zipfile.is_zipfile(path) == (layout != "legacy")
    ours = read_torch_file(path)
    _compare(torch, ours, torch.load(path, weights_only=True))
    a, b = ours["shared"]  # one storage in the file, two arrays here
    a[0] = -1
    assert b[0, 0] == 5 and ours["by_dtype"]["bfloat16"].dtype.name == "bfloat16"


@pytest.mark.parametrize("legacy", [False, True])
def test_a_whole_module_is_refused(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 3), path, _use_new_zipfile_serialization=not legacy)
    _refused(path, "torch.nn.modules.linear.Linear")
