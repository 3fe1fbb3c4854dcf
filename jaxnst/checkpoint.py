"""A run's ``State`` on disk: one ``.npz`` file, written atomically, read back into the same pytree.

Each leaf of the state is an array named by its path in the pytree
(``.opt_state.inner_state[0].mu``); ``meta`` is a JSON object stored beside
them (the CLI keeps the config, the jaxnst version, the weights' SHA-256 and
the output there). Reading needs a template state of the run to be resumed
(``Engine.init`` of an image of the same shape), so a file from another run,
shape or optimiser is refused with one line instead of resuming wrongly. The file is
data from outside: a damaged or crafted one is one line too (``read_meta``, ``load_checkpoint``).
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import jax
import numpy as np

from jaxnst._files import atomic_path, check_file
from jaxnst.engine import STOP_REASONS, State
from jaxnst.errors import JaxnstError

FORMAT = 1
_META = "__meta__"


def _leaves(state: State) -> dict[str, jax.Array]:
    return {jax.tree_util.keystr(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def save_tree(path: str | os.PathLike, tree, meta: dict) -> None:
    """Writes the pytree ``tree`` (fetched to the host) and ``meta`` to ``path`` (an ``.npz``), atomically."""
    arrays = {k: np.asarray(v) for k, v in _leaves(jax.device_get(tree)).items()}
    arrays[_META] = np.array(json.dumps({"format": FORMAT, **meta}))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def save_checkpoint(path: str | os.PathLike, state: State, meta: dict) -> None:
    """Writes ``state`` and ``meta`` to ``path`` (an ``.npz``), atomically (``save_tree``)."""
    save_tree(path, state, meta)


def _damaged(path: Path, e: Exception) -> JaxnstError:
    return JaxnstError(
        f"{path} is not a jaxnst checkpoint, or it is damaged ({type(e).__name__}): give an .npz a run wrote, or "
        "start again without --resume"
    )


# What a damaged or foreign .npz makes np.load and zipfile raise (a bad CRC, a deflated member cut short, an
# object array, which allow_pickle=False refuses, JSON that does not parse...).
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error)
# The leaves the output is made of: never NaN in a state a run saved (L-BFGS' line search may hold inf, the loss NaN).
_PIXELS = (".image", ".average", ".average_weight", ".ema_decay")


def read_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` of a checkpoint the CLI wrote: its run record (``jaxnst.record.read_record``), ``scale``,
    ``inputs_sha256`` and ``output_sha256``, each checked; else a ``JaxnstError`` naming what is wrong."""
    from jaxnst.record import read_record

    path = Path(path)
    meta = read_meta_only(path, "give the .npz a run wrote")

    def damaged(name: str, want: str) -> JaxnstError:
        return JaxnstError(f"checkpoint {path}: its {name} is {meta.get(name)!r}, not {want}: it is damaged; start "
                           "again without --resume")  # fmt: skip

    scale, inputs = meta.get("scale", 0), meta.get("inputs_sha256", [])
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 0:
        raise damaged("scale", "a whole number >= 0")
    if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
        raise damaged("inputs_sha256", "a list of hashes")
    if not isinstance(meta.get("output_sha256"), (str, type(None))):
        raise damaged("output_sha256", "a hash")
    return read_record(meta, f"checkpoint {path}")


def _most_steps(config: dict) -> int:
    """The most steps one scale of the run of ``config`` (a record's, checked by ``read_record``) takes."""
    from jaxnst.config import Config, parse_value, scale_schedule, validate
    from jaxnst.record import setting_text

    cfg = validate(Config(**{k: parse_value(k, setting_text(v)) for k, v in config.items()}))
    return max(n for _, n in scale_schedule(cfg))


def read_meta_only(path: str | os.PathLike, fix: str) -> dict:
    """The JSON ``meta`` object of an ``.npz`` ``save_tree`` wrote, of this ``FORMAT``; else a ``JaxnstError``."""
    path = Path(path)
    check_file(path, "checkpoint", fix)
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f[_META]))
    except _UNREADABLE as e:
        raise _damaged(path, e) from None
    if not isinstance(meta, dict):
        raise JaxnstError(f"{path} is not a jaxnst checkpoint: its meta is a {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise JaxnstError(f"checkpoint {path} has format {meta.get('format')}; this jaxnst reads format {FORMAT}")
    return meta


def read_tree(path: str | os.PathLike, template, finite: tuple[str, ...] = ()):
    """The pytree saved in ``path`` in the structure, shapes and dtypes of ``template``, every leaf whose name
    starts with one of ``finite`` checked finite; else a ``JaxnstError`` saying how the file differs."""
    want = _leaves(template)
    try:
        with np.load(path, allow_pickle=False) as f:
            have = {k: f[k] for k in f.files if k != _META}
    except _UNREADABLE as e:
        raise _damaged(Path(path), e) from None
    if set(have) != set(want):
        raise JaxnstError(
            f"checkpoint {path} holds another kind of run (another optimizer, or an older jaxnst?): "
            f"its state has {sorted(set(have) - set(want)) or 'no'} extra and {sorted(set(want) - set(have)) or 'no'}"
            " missing parts"
        )
    for k, t in want.items():
        if have[k].shape != t.shape or have[k].dtype != t.dtype:
            raise JaxnstError(
                f"checkpoint {path}: {k} is {have[k].dtype}{list(have[k].shape)}, this run needs "
                f"{t.dtype}{list(t.shape)} (another image size, or network?)"
            )
    if finite and not all(np.all(np.isfinite(a)) for k, a in have.items() if k.startswith(finite)):
        raise JaxnstError(
            f"checkpoint {path} holds NaN or infinite values: it is damaged; start again without --resume"
        )
    leaves = [have[jax.tree_util.keystr(p)] for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    return jax.tree.unflatten(jax.tree.structure(template), [jax.numpy.asarray(a) for a in leaves])


def load_checkpoint(path: str | os.PathLike, template: State) -> tuple[State, dict]:
    """The state saved in ``path``, in the structure, shapes and dtypes of ``template``, and its meta (``read_meta``).
    A state no run can have saved (NaN pixels, a step past its run's) is refused as damaged."""
    meta = read_meta(path)
    state = read_tree(path, template, _PIXELS)
    try:
        most = _most_steps(meta["config"])
    except JaxnstError as e:  # settings no run can have had (a size past the bounds, a min_size of 0)
        raise JaxnstError(f"checkpoint {path}: its record's {e}: it is damaged; start again without --resume") from None
    step, stop = int(state.step), int(state.stop)
    if step not in range(most + 1) or stop not in STOP_REASONS:
        what = (
            f"step {step} is not one of its run's (0 to {most})" if stop in STOP_REASONS else f"stop {stop} is unknown"
        )
        raise JaxnstError(f"checkpoint {path}: {what}: it is damaged; start again without --resume")
    return state, meta
