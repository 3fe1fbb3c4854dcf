"""Training a ``jaxnst.fast.TransformNet`` for one style with jaxnst's own objective (Johnson et al. 2016).

The loss of a batch of photos is ``jaxnst.optimize.objective`` of the network's output, with the
photos' own features as the content targets and the style's statistics (``make_targets``) as the
style targets: the same function, weights and layers as an optimisation run, averaged over the
batch. ``step`` is one optax update of the network's parameters; under a ``jax.sharding.Mesh`` the
batch is split over the devices (each computes its photos' gradients; XLA sums them), which changes
no arithmetic but the order of one sum. The mesh may span several hosts (``jax.distributed``): each
process then makes only its ``local_rows`` of each batch, ``shard`` assembles them.

Batches are reproducible: row ``j`` of batch ``k`` is drawn from ``(seed, k, j)`` alone (which photo,
which crop, which flip), so a run resumed from a checkpoint at step ``k`` goes on exactly as one that
did not stop, and a host can make its rows without the others'. A photo that cannot be read is
skipped (``Photos.bad`` counts them) and its place drawn again from the same generator.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from PIL import Image

from jaxnst import optimize
from jaxnst.config import Config
from jaxnst.errors import JaxnstError
from jaxnst.fast import TransformNet, init_params
from jaxnst.image import IMAGE_SUFFIXES, load_image
from jaxnst.optimize import LossSpec, LossWeights, Targets
from jaxnst.vgg import Weights


def _field(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What a training run adds to the objective's ``Config``: the network, the batches and the optimiser."""

    steps: int = _field(2000, "optax updates of the network")
    batch: int = _field(4, "photos per update (Johnson's 4); a multiple of the devices")
    crop: int = _field(256, "side of the square crops trained on: each photo's short side is resized to it, and the "
                       "style's long side to it times --style-scale")  # fmt: skip
    lr: float = _field(1e-3, "Adam's learning rate")
    width: int = _field(32, "channels of the network's first convolution (Johnson's 32; the others 2x and 4x it)")
    blocks: int = _field(5, "residual blocks of the network (Johnson's 5)")
    seed: int = _field(0, "seed of the network's initial weights and of the batches")


# The ``Config`` fields the objective reads (``LossSpec``, ``LossWeights``, the style's size): ``jaxnst train``'s
# flags for them, and its run record.
LOSS_FIELDS = ("content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
               "content_layer_weights", "style_layer_weights", "style_layer_ratio", "style_statistic",
               "style_blend_weights", "style_scale", "gram_norm", "tv_kind", "pooling", "model", "precision", "remat",
               "ops")  # fmt: skip


def photo_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (recursively; hidden ones left out), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise JaxnstError(f"photos {folder}: not a folder: give a folder of photos (searched recursively)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))  # fmt: skip
    if not files:
        raise JaxnstError(f"photos {folder}: no image in it ({', '.join(IMAGE_SUFFIXES)}): give a folder of photos")
    return files


def square_crop(image: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop`` x ``crop`` window of ``image`` after its short side is resized to ``crop``, flipped
    left-right half the time."""
    h, w = image.shape[:2]
    s = crop / min(h, w)
    size = (max(crop, round(w * s)), max(crop, round(h * s)))
    planes = [Image.fromarray(image[..., c]).resize(size, Image.Resampling.LANCZOS) for c in range(3)]
    a = np.clip(np.stack([np.asarray(p) for p in planes], axis=-1), 0.0, 1.0)
    y, x = rng.integers(0, a.shape[0] - crop + 1), rng.integers(0, a.shape[1] - crop + 1)
    a = a[y : y + crop, x : x + crop]
    return a[:, ::-1] if rng.random() < 0.5 else a


class Photos:
    """Batches of random crops of ``files``: row ``j`` of batch ``k`` depends on ``(seed, k, j)`` only, so any
    rows of any batch can be made alone (each host of a multi-host run makes only its own).

    A file that cannot be read is remembered in ``bad`` (path -> reason) and another one drawn in its
    place. Photos decode in ``threads`` threads (Pillow releases the GIL)."""

    def __init__(self, files: Sequence[Path], cfg: TrainConfig, threads: int = 4):
        self.files, self.cfg = list(files), cfg
        self._readable = set(self.files)
        self.bad: dict[Path, str] = {}
        self._pool = ThreadPoolExecutor(threads)

    def _one(self, path: Path, rng: np.random.Generator) -> np.ndarray | None:
        if path in self.bad:
            return None
        try:
            return square_crop(load_image(path), self.cfg.crop, rng)
        except (JaxnstError, OSError, ValueError) as e:
            self.bad[path] = str(e)
            return None

    def _row(self, k: int, j: int) -> np.ndarray:
        rng = np.random.default_rng([self.cfg.seed, k, j])
        while len(self.bad.keys() & self._readable) < len(self._readable):  # ``bad`` may hold others (held out)
            crop = self._one(self.files[rng.integers(len(self.files))], rng)
            if crop is not None:
                return crop
        raise JaxnstError(f"none of the {len(self.files)} photos can be read: give photos jaxnst can read")

    def batch(self, k: int, rows: Sequence[int] | None = None) -> np.ndarray:
        """Rows ``rows`` (default: all) of batch ``k``: (len(rows), crop, crop, 3) float32."""
        rows = range(self.cfg.batch) if rows is None else rows
        return np.stack(list(self._pool.map(lambda j: self._row(k, j), rows))).astype(np.float32)

    def batches(self, first: int, last: int, rows: Sequence[int] | None = None, ahead: int = 2):
        """``(k, batch(k, rows))`` for k in first..last-1, decoding ``ahead`` batches before they are asked for."""
        with ThreadPoolExecutor(1) as pre:
            pending = [pre.submit(self.batch, k, rows) for k in range(first, min(first + ahead, last))]
            for k in range(first, last):
                if k + ahead < last:
                    pending.append(pre.submit(self.batch, k + ahead, rows))
                yield k, pending.pop(0).result()


class TrainState(NamedTuple):
    step: jax.Array
    params: Any
    opt_state: Any


def loss_spec(cfg: Config) -> LossSpec:
    """The objective's static part for training: ``cfg``'s, the network run with ``ops='auto'``'s choice for a
    long run (the fastest step)."""
    return LossSpec.from_config(cfg if cfg.ops != "auto" else dataclasses.replace(cfg, ops="fast"))


def style_targets(weights: Weights, styles: Sequence, cfg: Config) -> dict:
    """The style half of ``optimize.Targets``: the (blended) statistics of ``styles`` (1, H, W, 3) each."""
    spec = loss_spec(cfg)
    return optimize.make_targets(weights, None, [jnp.asarray(s) for s in styles], spec, cfg.style_blend_weights).style


def photo_loss(params, photos: jax.Array, net: TransformNet, weights: Weights, style: dict, loss_weights: LossWeights,
               spec: LossSpec) -> tuple[jax.Array, dict]:  # fmt: skip
    """The objective of the network's paintings of ``photos`` (N, H, W, 3), each against its own photo's
    content and the style, averaged over the photos: ``(loss, {'content', 'style', 'tv'})``."""
    painted = net.apply({"params": params}, photos)
    content = jax.lax.stop_gradient(spec.forward_only.features(weights, photos, spec.content_layers))
    total, terms = optimize.objective(painted, weights, Targets(content, style), loss_weights, spec=spec)
    n = photos.shape[0]
    return total / n, {k: v / n for k, v in terms.items()}


def optimizer(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


def init(net: TransformNet, tx: optax.GradientTransformation, seed: int) -> TrainState:
    params = init_params(net, jax.random.key(seed))
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))


@functools.cache
def make_step(net: TransformNet, tx: optax.GradientTransformation, spec: LossSpec) -> Callable:
    """``step(state, photos, weights, style, loss_weights) -> (state, terms)``: one update, compiled."""

    def step(state: TrainState, photos, weights, style, loss_weights):
        grad_fn = jax.value_and_grad(photo_loss, has_aux=True)
        (loss, terms), grads = grad_fn(state.params, photos, net, weights, style, loss_weights, spec)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), {
            "loss": loss,
            **terms,
        }

    return jax.jit(step, donate_argnums=0)


def mesh(batch: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The devices the batch is split over: all of them (``devices``); the batch must divide evenly."""
    devices = list(jax.devices() if devices is None else devices)
    if batch % len(devices):
        raise JaxnstError(f"a batch of {batch} photos does not split over {len(devices)} devices: give a multiple "
                          f"of {len(devices)}", "batch")  # fmt: skip
    return Mesh(np.array(devices), ("batch",))


def local_rows(m: Mesh, batch: int) -> list[int]:
    """The rows of a batch that this process's devices of ``m`` hold, in order (all of them on one host)."""
    index = NamedSharding(m, P("batch")).addressable_devices_indices_map((batch,))
    return sorted({r for (s,) in index.values() for r in range(*s.indices(batch))})


def replicate(m: Mesh, tree):
    """``tree`` copied to every device of ``m`` (on several hosts: the same values on each)."""
    return jax.device_put(tree, NamedSharding(m, P()))


def shard(m: Mesh, photos: np.ndarray) -> jax.Array:
    """A batch split over the devices of ``m`` by its first axis, from this process's ``local_rows`` of it (the
    whole batch on one host)."""
    return jax.make_array_from_process_local_data(NamedSharding(m, P("batch")), photos)


def place(m: Mesh, state: TrainState, photos: np.ndarray, *rest):
    """``replicate`` of ``state`` and ``rest``, ``shard`` of ``photos``: the arguments of ``make_step``'s step."""
    return replicate(m, state), shard(m, photos), *replicate(m, rest)


__all__ = ["Photos", "TrainConfig", "TrainState", "init", "local_rows", "make_step", "mesh", "photo_files",
           "photo_loss", "place", "replicate", "shard", "style_targets"]  # fmt: skip
