"""A run's ``State`` on disk: one ``.npz`` file, written atomically, read back into the same pytree.

Each leaf of the state is an array named by its path in the pytree
(``.opt_state.inner_state[0].mu``); ``meta`` is a JSON object stored beside
them (the CLI keeps the config, the jaxnst version, the weights' SHA-256 and
the output there). Reading needs a template state of the run to be resumed
(``Engine.init`` of an image of the same shape), so a file from another run,
shape or optimiser is refused with one line instead of resuming wrongly.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxnst._files import atomic_path
from jaxnst.engine import State
from jaxnst.errors import JaxnstError

FORMAT = 1
_META = "__meta__"


def _leaves(state: State) -> dict[str, jax.Array]:
    return {jax.tree_util.keystr(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def save_checkpoint(path: str | os.PathLike, state: State, meta: dict) -> None:
    """Writes ``state`` (fetched to the host) and ``meta`` to ``path`` (an ``.npz``), atomically."""
    arrays = {k: np.asarray(v) for k, v in _leaves(jax.device_get(state)).items()}
    arrays[_META] = np.array(json.dumps({"format": FORMAT, **meta}))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` of a checkpoint, or a ``JaxnstError`` naming what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise JaxnstError(f"checkpoint {path} does not exist: give the .npz a run wrote")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f[_META]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise JaxnstError(f"{path} is not a jaxnst checkpoint ({type(e).__name__}): give an .npz a run wrote") from None
    if meta.get("format") != FORMAT:
        raise JaxnstError(f"checkpoint {path} has format {meta.get('format')}; this jaxnst reads format {FORMAT}")
    return meta


def load_checkpoint(path: str | os.PathLike, template: State) -> tuple[State, dict]:
    """The state saved in ``path``, in the structure, shapes and dtypes of ``template``, and its meta."""
    meta = read_meta(path)
    want = _leaves(template)
    with np.load(path, allow_pickle=False) as f:
        have = {k: f[k] for k in f.files if k != _META}
    if set(have) != set(want):
        raise JaxnstError(
            f"checkpoint {path} holds another kind of run (another optimizer?): "
            f"its state has {sorted(set(have) - set(want)) or 'no'} extra and {sorted(set(want) - set(have)) or 'no'}"
            " missing parts"
        )
    for k, t in want.items():
        if have[k].shape != t.shape or have[k].dtype != t.dtype:
            raise JaxnstError(
                f"checkpoint {path}: {k} is {have[k].dtype}{list(have[k].shape)}, this run needs "
                f"{t.dtype}{list(t.shape)} (another image size?)"
            )
    leaves = [have[jax.tree_util.keystr(p)] for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    state = jax.tree.unflatten(jax.tree.structure(template), [jax.numpy.asarray(a) for a in leaves])
    return state, meta
