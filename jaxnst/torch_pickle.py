"""Read files written by ``torch.save`` into NumPy arrays, without torch and without running their code.

A ``.pth`` is a pickle, and unpickling may call any function the file names (``os.system`` included). So
``read_torch_file`` unpickles with an allow-list: ``collections.OrderedDict``, torch's tensor and parameter
rebuild functions and the typed storage classes (``torch.FloatStorage`` ...). Those names are mapped onto small
stand-ins here; torch is never imported, and any other global stops the read before anything is called.

``torch.save`` has written two layouts:

* zip (torch >= 1.6): one top folder holding ``data.pkl``, the raw bytes of storage ``k`` in ``data/k``, and
  ``byteorder`` (``little``, the default, or ``big``). Storages are named in the pickle by persistent ids
  ``('storage', storage_type, key, location, numel)``.
* legacy (older torch, or ``_use_new_zipfile_serialization=False``): pickles one after the other: a magic
  number, the protocol version 1001, a ``sys_info`` dict, the object (persistent ids
  ``('storage', storage_type, root_key, location, numel, view_metadata)``), the list of storage keys, then for
  each key an int64 element count and the raw bytes. Torch writes both little-endian on any machine, whatever
  ``sys_info['little_endian']`` says.

Tensors come back as C-contiguous arrays that own their memory, containers as ``dict``, ``list`` and ``tuple``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxnst.errors import JaxnstError

__all__ = ["read_torch_file"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class _StorageType:
    """Stands in the pickle for ``torch.FloatStorage`` and the like; never called."""

    def __init__(self, dtype: str):
        self.dtype = dtype


class _Storage:
    """Elements ``start:start + length`` (``None``: to the end) of storage ``key``, read as ``dtype``."""

    def __init__(self, key: Any, dtype: str, start: int = 0, length: int | None = None):
        self.key, self.dtype, self.start, self.length = key, dtype, start, length


class _Tensor:
    """What a rebuild function made: a strided view of a storage, turned into an array once the bytes are read."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, negate: bool = False):
        self.storage, self.offset, self.size, self.stride, self.negate = storage, offset, size, stride, negate


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    return _Tensor(storage, storage_offset, size, stride, bool(metadata and metadata.get("neg")))


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
for _name, _dtype in _STORAGE_DTYPES.items():
    for _module in ("torch", "torch.cuda", "torch.storage"):
        _ALLOWED[_module, _name] = _StorageType(_dtype)


class _Unpickler(pickle.Unpickler):
    """Finds only the allowed globals; turns persistent ids into ``_Storage`` and notes each key's first dtype."""

    def __init__(self, file: io.IOBase, path: str, key_dtypes: dict[Any, str]):
        super().__init__(file, encoding="utf-8")
        self.path, self.key_dtypes = path, key_dtypes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        raise JaxnstError(
            f"{self.path}: refuses to load global {module}.{name} from this pickle: only tensors and dicts/lists "
            "of them are read (a .pth can run code when unpickled); save model.state_dict()"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:60]}")
        key, dtype = pid[2], pid[1].dtype
        self.key_dtypes.setdefault(key, dtype)
        if len(pid) == 6 and pid[5] is not None:  # a view into the root storage, from torch < 0.4
            _, start, length = pid[5]
            return _Storage(key, dtype, start, length)
        return _Storage(key, dtype)


class _NoGlobals(pickle.Unpickler):
    """For the legacy header pickles, which hold plain numbers and dicts."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} in the header")


def _read_zip(path: str, f: io.BufferedReader) -> tuple[Any, Callable[[Any], bytes], bool]:
    zf = zipfile.ZipFile(f)
    pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError("a zip without one top_folder/data.pkl")
    prefix = pickles[0][: -len("data.pkl")]
    names = set(zf.namelist())
    order = zf.read(prefix + "byteorder").strip() if prefix + "byteorder" in names else b"little"
    if order not in (b"little", b"big"):
        raise ValueError(f"byteorder {order[:20]!r}")
    key_dtypes: dict[Any, str] = {}
    obj = _Unpickler(io.BytesIO(zf.read(pickles[0])), path, key_dtypes).load()
    return obj, lambda key: zf.read(f"{prefix}data/{key}"), order.decode() != sys.byteorder


def _read_legacy(path: str, f: io.BufferedReader) -> tuple[Any, Callable[[Any], bytes], bool]:
    if _NoGlobals(f).load() != LEGACY_MAGIC:
        raise ValueError("no zip and no legacy magic number")
    if _NoGlobals(f).load() != LEGACY_PROTOCOL:
        raise ValueError("unknown legacy protocol version")
    _NoGlobals(f).load()  # sys_info: says nothing needed to read the data, see the module docstring
    key_dtypes: dict[Any, str] = {}
    obj = _Unpickler(f, path, key_dtypes).load()
    where: dict[Any, tuple[int, int]] = {}
    size = os.fstat(f.fileno()).st_size
    for key in _NoGlobals(f).load():
        head = f.read(8)
        count = struct.unpack("<q", head)[0] if len(head) == 8 else -1
        nbytes = count * _np_dtype(key_dtypes[key]).itemsize
        where[key] = (f.tell(), nbytes)
        if count < 0 or f.seek(nbytes, os.SEEK_CUR) > size:
            raise ValueError(f"storage {key} runs past the end of the file")

    def read(key: Any) -> bytes:
        f.seek(where[key][0])
        return f.read(where[key][1])

    return obj, read, sys.byteorder != "little"


def _to_array(t: _Tensor, raw: bytes, swap: bool) -> np.ndarray:
    """A copy of the tensor's elements; byte-swapped when the file's byte order is not this machine's."""
    s = t.storage
    if not (isinstance(s, _Storage) and isinstance(s.start, int) and s.start >= 0):
        raise ValueError("a tensor without a valid storage")
    dtype = _np_dtype(s.dtype)
    end = len(raw) if s.length is None else min(len(raw), (s.start + s.length) * dtype.itemsize)
    buf = memoryview(raw)[s.start * dtype.itemsize : end]
    if t.size is None:  # a bare storage
        t.size, t.stride, t.offset = (len(buf) // dtype.itemsize,), (1,), 0
    if 0 in t.size:
        return np.zeros(t.size, dtype)
    strides = [st * dtype.itemsize for st in t.stride]
    # np.ndarray checks that every element lies inside buf, so a lying pickle cannot reach other memory
    out = np.array(np.ndarray(t.size, dtype, buf, t.offset * dtype.itemsize, strides), order="C", copy=True)
    if swap and dtype.itemsize > 1:
        out.view(f"u{dtype.itemsize}").byteswap(inplace=True)
    return np.negative(out) if t.negate else out


def _tensors(obj: Any, found: dict[int, _Tensor]) -> None:
    """Collects, by ``id``, the tensors (and bare storages) in ``obj``."""
    if isinstance(obj, _Tensor):
        found[id(obj)] = obj
    elif isinstance(obj, _Storage):
        found[id(obj)] = _Tensor(obj, 0, None, None)
    elif isinstance(obj, dict):
        for v in obj.values():
            _tensors(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _tensors(v, found)


def _replace(obj: Any, arrays: dict[int, np.ndarray]) -> Any:
    if isinstance(obj, (_Tensor, _Storage)):
        return arrays[id(obj)]
    if isinstance(obj, dict):
        return {k: _replace(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_replace(v, arrays) for v in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    return obj


def read_torch_file(
    path: str | os.PathLike, damaged: str = "not a torch.save file, or it is damaged ({reason})"
) -> Any:
    """The object saved by ``torch.save`` at ``path``, with every tensor as a NumPy array; runs no code from it.
    A file it cannot read is a ``JaxnstError``: its path, then ``damaged`` with ``{reason}`` what failed."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            read = _read_zip if f.read(4) == b"PK\x03\x04" else _read_legacy
            f.seek(0)
            obj, read_storage, swap = read(path, f)
            found: dict[int, _Tensor] = {}
            _tensors(obj, found)
            by_key: dict[Any, list[int]] = {}
            for i, t in found.items():
                by_key.setdefault(t.storage.key, []).append(i)
            arrays: dict[int, np.ndarray] = {}
            for key, ids in by_key.items():  # one storage's bytes in memory at a time
                raw = read_storage(key)
                arrays.update((i, _to_array(found[i], raw, swap)) for i in ids)
                del raw
            return _replace(obj, arrays)
    except JaxnstError:
        raise
    except OSError as e:
        raise JaxnstError(f"{path}: cannot read: {e.strerror or e}") from None
    except Exception as e:  # anything a damaged or foreign file makes pickle, zipfile or numpy raise
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:120]
        raise JaxnstError(f"{path}: {damaged.format(reason=reason)}") from None
