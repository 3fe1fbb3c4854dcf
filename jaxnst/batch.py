"""Many style transfers as one compiled program, spread over every device.

``stylize_batch`` is ``jax.vmap`` of the single-image loop of ``jaxnst.stylize``
(the same ``run_steps`` over the same step): each item brings its own content,
style targets and loss weights / learning rate as arrays with a leading batch
axis, so a folder of photos or a sweep of weights is one program, compiled once
per (bucket shape, batch size). The batch axis is laid on a
``jax.sharding.Mesh`` over ``jax.devices()``: the same call uses one CPU, eight
GPUs, a TPU slice or several hosts (after ``jax.distributed.initialize``).

``stylize_spatial`` is the other way to use a mesh: one image whose height is
split over the devices, XLA's SPMD partitioner exchanging the convolution halos.

Mixed sizes go into buckets by resizing, not padding: each content is resized
so that both sides are the nearest multiples of ``multiple`` (32 by default: a
side moves by at most 16 px, 3 % of the short side of a 512 x 341 photo),
stylised at that shape, and the result resized back to the content's own
shape, so every output keeps its aspect ratio. Padding with a
mask would need every loss to honour it: the Gram normalisation, the masks
downsampled through every pooling, and the zeros the convolutions would see at
the pad edge; and the padded pixels would cost compute. Resizing leaves the
losses of the single-image path untouched, and multiples of 32 survive the
five poolings of VGG without dropping a row.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnst import color, engine
from jaxnst.config import Config, scale_schedule, settings, validate
from jaxnst.engine import STOP_REASONS, Block, output
from jaxnst.errors import JaxnstError
from jaxnst.optimize import LossSpec, LossWeights, Targets, make_targets, objective_fn
from jaxnst.single import as_masks, check_arch, check_image_sizes, stylize
from jaxnst.transfer import as_batch, initial_image, resize, resize_mask, scaled_hw, scales
from jaxnst.vgg import Weights

# Config fields that may differ between the items of one batch: they enter the compiled program as
# arrays (or only shape its inputs). Every other field fixes the program and must be the same for all
# items, except those only used when reading files (the library ignores them). From ``Config``'s metadata.
PER_ITEM = settings("batch", "item")
_LOADING = settings("batch", "load")


def device_mesh(devices: Sequence[jax.Device] | None = None, axis: str = "batch") -> Mesh:
    """A 1-D mesh over ``devices`` (default: all of them, on every host)."""
    return Mesh(np.array(jax.devices() if devices is None else list(devices)), (axis,))


def bucket_shape(height: int, width: int, multiple: int | None = 32) -> tuple[int, int]:
    """The shape an (H, W) content is optimised at: each side rounded to the
    nearest multiple of ``multiple`` (at least one multiple); ``None`` keeps it."""
    if not multiple:
        return height, width
    r = lambda n: max(multiple, multiple * round(n / multiple))  # noqa: E731
    return r(height), r(width)


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    """What ``stylize_batch`` reports after each block of steps of one chunk.

    A chunk is the part of a bucket that runs as one program; ``items`` are the
    indices of its items in the batch, and the tuples below follow them.
    """

    items: tuple[int, ...]
    step: tuple[int, ...]  # steps done so far over all scales, per item (items stop early on --tol or NaN)
    steps: tuple[int, ...]  # steps asked for over all scales, per item
    loss: tuple[float, ...]  # total loss at each item's last step's input image
    shape: tuple[int, int]  # the (H, W) of this scale of the bucket
    elapsed: float  # seconds since this chunk started, compile included
    done: bool = False  # the chunk has finished
    reasons: tuple[str, ...] = ()  # why each item stopped, when ``done``
    outputs_fn: Callable[[], list[np.ndarray]] = dataclasses.field(default=lambda: [], repr=False)
    terms_fn: Callable[[], list[dict[str, float]]] = dataclasses.field(default=lambda: [], repr=False)
    scale: int = 0  # which scale of ``config.scale_schedule``
    scales: int = 1

    def outputs(self) -> list[np.ndarray]:
        """Current images, each (H_i, W_i, 3) at its content's own shape (a transfer and a resize)."""
        return self.outputs_fn()

    def terms(self) -> list[dict[str, float]]:
        """Unweighted ``{'content', 'style', 'tv'}`` losses per item (costs one forward pass)."""
        return self.terms_fn()


class Batched(NamedTuple):
    """The batched programs of one ``LossSpec``: ``init(images, lr, ema)``, ``run(state, loss_fn, n, tol)``
    and ``terms(loss_fn, images)``, each over a leading item axis."""

    init: Callable
    run: Callable
    terms: Callable


def batched_engine(spec: LossSpec, optimizer: str, shared_style: bool, mesh: Mesh, regions: bool = False) -> Batched:
    """``jaxnst.engine``'s ``init`` and ``run`` under ``vmap``, jitted.

    Per item (axis 0): the ``State`` (image (B, 1, H, W, 3), optimiser state,
    counters), steps ``n`` and ``tol``, and of the loss function (``objective_fn``) the content
    targets, the style statistics unless ``shared_style``, and the ``LossWeights``. Shared (no
    axis): the VGG weights, and the style statistics when ``shared_style``; with ``regions``,
    the targets' region masks per item too. Every output keeps its batch axis
    on ``mesh``: left to itself the partitioner may return small per-item leaves
    (Adam's step count, learning rate) replicated, and the next block would then
    compile again for the new input sharding. Cached, so equal (shape, batch
    size) reuse one program.
    """
    return _batched_engine(spec, optimizer, shared_style, mesh, regions)


@functools.lru_cache(maxsize=16)  # one key however the arguments are passed
def _batched_engine(spec: LossSpec, optimizer: str, shared_style: bool, mesh: Mesh, regions: bool) -> Batched:
    targets = Targets(0, None if shared_style else 0, 0 if regions else None)
    loss_axes, terms_axes = (objective_fn(None, targets, 0, s) for s in (spec, spec.forward_only))
    run = jax.vmap(engine.run_steps, in_axes=(0, loss_axes, 0, 0))
    terms = jax.vmap(lambda loss_fn, x: loss_fn(x)[1], in_axes=(terms_axes, 0))
    per_item = NamedSharding(mesh, P(mesh.axis_names[0]))
    init = lambda x, lr, ema: engine.with_learning_rate(engine.init(x, engine.optimizer(optimizer), ema=ema), lr)  # noqa: E731
    return Batched(
        jax.vmap(init),
        jax.jit(run, donate_argnums=0, out_shardings=per_item),
        jax.jit(terms, out_shardings=per_item),
    )


class _Item(NamedTuple):
    content: jax.Array  # as given: (H, W, 3) or (1, H, W, 3)
    style: tuple  # the style images, blended (or, with masks, one per region)
    cfg: Config
    masks: tuple | None = None  # content masks (1, H, W), one per style
    style_masks: tuple | None = None  # per style None or (1, H, W)
    coarse: tuple = ()  # the coarse styles: the targets of the style layers after ``cfg.split_layer``


def _put(tree, sharding: NamedSharding):
    """Places every leaf with ``sharding``, also when the mesh spans several hosts
    (each process holds the same host value and contributes its own shards)."""

    def put(x):
        if sharding.is_fully_addressable:
            return jax.device_put(x, sharding)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def _get(x: jax.Array) -> np.ndarray:
    """The whole array on this host, gathered from the other hosts if needed."""
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _check_same(configs: Sequence[Config]) -> None:
    for f in dataclasses.fields(Config):
        if f.name in PER_ITEM or f.name in _LOADING:
            continue
        values = {getattr(c, f.name) for c in configs}
        if len(values) > 1:
            raise JaxnstError(
                f"the items of a batch differ in {f.name} ({', '.join(map(str, values))}): it shapes the "
                f"compiled program, so run one batch per value; per-item fields are {', '.join(PER_ITEM)}"
            )


def _broadcast(seq, n: int, what: str) -> list:
    if len(seq) not in (1, n):
        raise JaxnstError(f"{len(seq)} {what} for {n} items: give one, or one per item")
    return list(seq) * n if len(seq) == 1 else list(seq)


def stylize_batch(
    contents: Sequence,
    styles: Sequence,
    weights: Weights,
    configs: Config | Sequence[Config] = Config(),
    *,
    callback: Callable[[BatchProgress], None] | None = None,
    every: int = 10,
    multiple: int | None = 32,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    init_image=None,
    content_masks: Sequence | None = None,
    style_masks: Sequence | None = None,
    coarse_styles: Sequence | None = None,
) -> list[np.ndarray]:
    """Style transfer of many items at once: ``jaxnst.stylize`` under ``jax.vmap``.

    Item ``i`` is ``(contents[i], styles[i], configs[i])``; any of the three may
    be given once for all items. A content is an RGB array (H, W, 3) in [0, 1];
    a style is one such array or a list of them (blended by the config's
    ``style_blend_weights``, as in ``stylize``). Items may differ in the fields
    of ``PER_ITEM`` (loss weights, learning rate, tol, steps, seed, init); the
    rest must agree. A content or style passed as the same object for several
    items is processed once: a single style is one set of Grams, shared by
    every item (``in_axes=None``) rather than copied.

    Items are grouped by ``bucket_shape(H, W, multiple)`` (see the module
    docstring) and each bucket runs in chunks of at most ``batch_size`` items
    (default: the whole bucket), one compiled program per (bucket shape, chunk
    size). The batch axis is sharded over ``mesh`` (default: every device); a
    chunk whose size is not a multiple of the device count is padded with
    copies of its last item, which take no steps and are dropped. An item that
    stops early (``tol``, a NaN) keeps its image while its chunk runs on.

    Returns the images in item order, float32 NumPy (H_i, W_i, 3) in [0, 1],
    each at its content's shape (with its ``preserve_color``; the images of
    ``BatchProgress`` are those the network sees). ``callback(BatchProgress)`` is called after
    each block of ``every`` steps of each chunk.

    Item for item, the result equals ``stylize`` with the same arguments (to
    float rounding) when the contents are already bucket-shaped. (With the Gram,
    bit for bit; with W2 the vmapped program rounds differently, and a run amplifies
    rounding: on real weights at 128 px, 200 steps apart, a batch item was 4.7/255 from
    its single run on average, and a single run started 1e-6 away 7.7/255 (Gram:
    5.5/255), alike to the eye.)

    ``content_masks`` (and ``style_masks``), given once or per item, are each item's
    regions as in ``stylize``: a list of masks, one per style of the item; every item then
    has the same number of regions. ``coarse_styles``, given once or per item (an image or a
    list of them), are each item's coarse styles as in ``stylize``.

    >>> import numpy as np, jaxnst
    >>> w = jaxnst.random_weights("vgg19", seed=0)  # NOT pretrained: jaxnst.get_weights() for real work
    >>> content, style = (np.random.default_rng(i).uniform(size=(32, 32, 3)).astype(np.float32) for i in (0, 1))
    >>> base = jaxnst.Config(steps=3, min_size=None, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    >>> cfgs = [dataclasses.replace(base, style_weight=v) for v in (1e2, 1e3, 1e4)]
    >>> [out.shape for out in jaxnst.stylize_batch([content], [style], w, cfgs)]  # a sweep: 3 images
    [(32, 32, 3), (32, 32, 3), (32, 32, 3)]
    """
    configs = [configs] if isinstance(configs, Config) else list(configs)
    n = max(len(contents), len(styles), len(configs))
    if n == 0 or not len(contents) or not len(styles) or not configs:
        raise JaxnstError("an empty batch: give at least one content, one style and one config")
    configs = [validate(c) for c in _broadcast(configs, n, "configs")]
    _check_same(configs)
    cfg0 = configs[0]
    check_arch(cfg0, weights)
    if every < 1:
        raise JaxnstError(f"every={every} must be >= 1")
    if batch_size is not None and batch_size < 1:
        raise JaxnstError(f"batch_size {batch_size} must be >= 1", "batch_size")
    items, originals, prepared = [], [], {}
    cmasks = [None] * n if content_masks is None else _broadcast(content_masks, n, "content masks")
    smasks = [None] * n if style_masks is None else _broadcast(style_masks, n, "style masks")
    coarse = [()] * n if coarse_styles is None else _broadcast(coarse_styles, n, "coarse styles")
    as_tuple = lambda s: tuple(s) if isinstance(s, (list, tuple)) else (s,)  # noqa: E731
    for c, s, cfg, cm, sm, co in zip(_broadcast(contents, n, "contents"), _broadcast(styles, n, "styles"), configs,
                                     cmasks, smasks, coarse, strict=True):  # fmt: skip
        style, co = as_tuple(s), as_tuple(co)
        if not style:
            raise JaxnstError("an item with no style image: give at least one")
        originals.append(c)
        if cfg.preserve_color in ("luminance", "histogram"):  # once per (content, styles): the cache keys on ids
            key = (id(c), tuple(map(id, style + co)), cfg.preserve_color, cfg.histogram_mode)
            if key not in prepared:
                pc, ps = color.prepare(as_batch(c, "content"), [as_batch(x, "style") for x in style + co],
                                       mode=cfg.preserve_color, histogram_mode=cfg.histogram_mode)  # fmt: skip
                prepared[key] = pc[0], tuple(x[0] for x in ps)
            c, prepared_styles = prepared[key]
            style, co = prepared_styles[: len(style)], prepared_styles[len(style) :]
        items.append(_Item(c, style, cfg, *as_masks(cm, sm, as_batch(c, "content").shape, style), co))
    if len({None if it.masks is None else len(it.masks) for it in items}) > 1:
        raise JaxnstError("items with different numbers of regions: give every item as many content masks")

    mesh = device_mesh() if mesh is None else mesh
    ndev = mesh.devices.size
    # Targets once per distinct object (ids are stable: ``items`` holds them).
    cache: dict = {}
    shapes = [as_batch(it.content, "content").shape[1:3] for it in items]
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (h, w) in enumerate(shapes):
        buckets.setdefault(bucket_shape(h, w, multiple), []).append(i)
    style_shapes = [as_batch(s, "style").shape for it in items for s in it.style + it.coarse]
    for hw in buckets:  # the first scale's sizes follow each bucket's long side
        check_image_sizes(dataclasses.replace(cfg0, size=max(hw)), [(*hw, 3)], style_shapes)

    outputs: list[np.ndarray | None] = [None] * n
    for hw, idx in buckets.items():
        size = batch_size or len(idx)
        for k in range(0, len(idx), size):
            chunk = idx[k : k + size]
            outs = _run_chunk(
                [items[i] for i in chunk], chunk, [shapes[i] for i in chunk], hw, weights, mesh, ndev,
                cache, callback, every, init_image,
            )  # fmt: skip
            for i, o in zip(chunk, outs, strict=True):
                original = as_batch(originals[i], "content")[0]
                outputs[i] = np.asarray(color.finish(o, original, mode=items[i].cfg.preserve_color))
    return outputs


def _regional_target(it, hw, hw_k, ratio, spec, weights, cache) -> Targets:
    """An item's style targets and region masks (its content's features are ``_content_target``'s): the
    masks brought to ``hw`` then ``hw_k`` as the content is, the styles and their masks shrunk by ``ratio``."""
    key = ("regions", tuple(map(id, it.style)), tuple(map(id, it.masks)), hw, hw_k, ratio)
    if key not in cache:
        masks = [resize_mask(resize_mask(m, hw), hw_k) for m in it.masks]
        styles = _scaled_styles(it, ratio)
        style_masks = [None if m is None else resize_mask(m, s.shape[1:3])
                       for m, s in zip(it.style_masks, styles, strict=True)]  # fmt: skip
        no_content = dataclasses.replace(spec, content_layers=())
        cache[key] = make_targets(weights, None, styles, no_content, content_masks=masks, style_masks=style_masks)
    return cache[key]


def _scaled_styles(it, ratio: float, which: str = "style") -> list[jax.Array]:
    images = (as_batch(a, "style") for a in getattr(it, which))
    return [resize(s, scaled_hw(s.shape[1:3], ratio)) for s in images]


def _content_target(it, hw, hw_k, spec, weights, cache):
    """The item's content at the bucket's shape ``hw`` brought to this scale's ``hw_k``, and its features."""
    key = ("content", id(it.content), hw, hw_k)
    if key not in cache:
        c = resize(resize(as_batch(it.content, "content"), hw), hw_k)
        cache[key] = (c, make_targets(weights, c, [], dataclasses.replace(spec, style_layers=())).content)
    return cache[key]


def _style_target(it, ratio, spec, weights, cache):
    blend = it.cfg.style_blend_weights
    key = ("style", tuple(map(id, it.style)), blend, ratio, tuple(map(id, it.coarse)), it.cfg.split_layer)
    if key not in cache:
        no_content = dataclasses.replace(spec, content_layers=())
        cache[key] = make_targets(weights, None, _scaled_styles(it, ratio), no_content, blend,
                                  coarse_styles=_scaled_styles(it, ratio, "coarse"),
                                  split_layer=it.cfg.split_layer).style  # fmt: skip
    return cache[key]


class _Scale(NamedTuple):  # a chunk's problem at one scale
    programs: Batched
    loss_fn: Callable
    terms_fn: Callable
    contents: list  # (content at the scale, its features) per row
    ratio: float


def _run_chunk(items, index, shapes, hw, weights, mesh, ndev, cache, callback, every, init_image):
    """The vmapped program of each scale over ``items`` (all of bucket shape ``hw``)."""
    b = len(items)
    pad = -b % ndev  # copies of the last item, so the batch divides over the devices
    rows = items + [items[-1]] * pad
    cfg0, long = items[0].cfg, max(hw)
    # Each item's steps per scale (the sides are the same for all: size and min_size are shared).
    schedules = [scale_schedule(dataclasses.replace(it.cfg, size=long)) for it in rows]
    sides = [side for side, _ in schedules[0]]
    totals = tuple(sum(n for _, n in sc) for sc in schedules[:b])
    per_item, replicated = NamedSharding(mesh, P(mesh.axis_names[0])), NamedSharding(mesh, P())
    put = lambda a: _put(jnp.asarray(a), per_item)  # noqa: E731
    tol = _put(jnp.asarray([it.cfg.tol for it in rows], jnp.float32), per_item)
    loss_weights = _put(_stack([LossWeights.from_config(it.cfg) for it in rows]), per_item)
    regions = items[0].masks is not None
    same_style = {(tuple(map(id, it.style)), it.cfg.style_blend_weights, tuple(map(id, it.coarse))) for it in items}
    shared = not regions and len(same_style) == 1
    # Each item's steps at each scale; padding rows take none.
    steps = [np.array([sc[k][1] for sc in schedules[:b]] + [0] * pad) for k in range(len(sides))]
    t0 = time.perf_counter()

    def report(block: Block, finished: bool, k: int, before, pb: _Scale):
        # A clipped copy: the loop donates the state, and the callback may keep the progress.
        x = jnp.clip(output(block.state), 0.0, 1.0)

        def outputs():
            imgs = _get(x[:, 0])[:b]
            return [np.asarray(resize(jnp.asarray(im), s)) for im, s in zip(imgs, shapes, strict=True)]

        def terms():
            t = {name: _get(v)[:b] for name, v in pb.programs.terms(pb.terms_fn, x).items()}
            return [{name: float(v[i]) for name, v in t.items()} for i in range(b)]

        reasons = tuple(STOP_REASONS[int(c)] for c in block.stop[:b]) if finished else ()
        p = BatchProgress(
            tuple(index), tuple(map(int, (before + block.step)[:b])), totals, tuple(map(float, block.loss[:b])),
            tuple(x.shape[2:4]), time.perf_counter() - t0, finished, reasons, outputs, terms, k, len(sides),
        )  # fmt: skip
        if callback is not None:
            callback(p)
        return p

    def problem(k: int):
        ratio, hw_k = sides[k] / long, scaled_hw(hw, sides[k] / long)
        # The kernels a single run of this shape and length would pick (ops="auto"); the targets
        # use plain lax kernels whatever the spec, so the cache serves every bucket.
        spec = LossSpec.from_config(dataclasses.replace(cfg0, steps=int(steps[k].max())), hw_k[0] * hw_k[1])
        contents = [_content_target(it, hw, hw_k, spec, weights, cache) for it in rows]
        content_features = _put(_stack([f for _, f in contents]), per_item)
        if regions:
            each = _stack([_regional_target(it, hw, hw_k, ratio, spec, weights, cache) for it in rows])
            targets = Targets(content_features, _put(each.style, per_item), _put(each.regions, per_item))
        else:
            style = (_style_target(items[0], ratio, spec, weights, cache) if shared
                     else _stack([_style_target(it, ratio, spec, weights, cache) for it in rows]))  # fmt: skip
            targets = Targets(content_features, _put(style, replicated if shared else per_item))
        loss_fn, terms_of = (objective_fn(_put(weights, replicated), targets, loss_weights, s)
                             for s in (spec, spec.forward_only))  # fmt: skip
        return _Scale(batched_engine(spec, cfg0.optimizer, shared, mesh, regions), loss_fn, terms_of, contents, ratio)

    def init(k: int, pb: _Scale) -> engine.State:
        starts = [initial_image(it.cfg, c, _scaled_styles(it, pb.ratio), init_image)
                  for it, (c, _) in zip(rows, pb.contents, strict=True)]  # fmt: skip
        # Each item's own optimiser state, learning rate included (Adam keeps it in the state).
        per_row = lambda name: jnp.asarray([getattr(it.cfg, name) for it in rows], jnp.float32)  # noqa: E731
        return _put(pb.programs.init(jnp.stack(starts), per_row("lr"), per_row("ema")), per_item)

    stages = scales(
        None, steps, tol, every, problem=problem, init=init, live=np.arange(len(rows)) < b, put=put, get=_get,
        rescale=lambda s, k: _put(_rescale_batch(s, scaled_hw(hw, sides[k] / long)), per_item),
        run=lambda s, pb, n, tol: pb.programs.run(s, pb.loss_fn, n, tol),
    )  # fmt: skip
    for stage in stages:
        p = report(stage.block, stage.done, stage.scale, stage.before, stage.problem)
    return p.outputs()


@functools.partial(jax.jit, static_argnums=1)
def _rescale_batch(state, hw):
    return jax.vmap(functools.partial(engine.rescale, hw=hw))(state)


def stylize_spatial(
    content,
    styles: Sequence,
    weights: Weights,
    config: Config = Config(),
    *,
    mesh: Mesh | None = None,
    **kwargs,
) -> jax.Array:
    """``jaxnst.stylize`` of one image whose height is split over the devices of ``mesh``.

    The content and the image (1, H, W, 3) are sharded as ``P(None, axis)``:
    each device holds H / n rows of the image and of every feature map, and
    XLA's SPMD partitioner exchanges the rows each 3x3 convolution needs from
    its neighbours and sums the Gram matrices across devices. This renders
    images that no single device could hold. H must be divisible by the number
    of devices. Other keyword arguments are those of ``stylize``.
    """
    mesh = device_mesh(axis="h") if mesh is None else mesh
    h = as_batch(content, "content").shape[1]
    ndev = mesh.devices.size
    if h % ndev:
        raise JaxnstError(f"the content's height {h} does not divide over {ndev} devices: resize it to a multiple")
    sharding = NamedSharding(mesh, P(None, mesh.axis_names[0]))
    weights = _put(weights, NamedSharding(mesh, P()))
    return stylize(content, styles, weights, config, place=lambda x: _put(x, sharding), **kwargs)


def grid_configs(base: Config, sweep: dict[str, Sequence]) -> list[tuple[dict, Config]]:
    """Every combination of the ``sweep`` values over ``base``, first key slowest:
    ``[({'style_weight': 1e2}, Config(..., style_weight=1e2)), ...]``."""
    for name in sweep:
        if name not in PER_ITEM:
            raise JaxnstError(
                f"cannot sweep {name}: one program has one value of it; sweep one of {', '.join(PER_ITEM)}"
            )
    out = [({}, base)]
    for name, values in sweep.items():
        out = [({**d, name: v}, dataclasses.replace(c, **{name: v})) for d, c in out for v in values]
    return out


__all__ = [
    "PER_ITEM",
    "BatchProgress",
    "batched_engine",
    "bucket_shape",
    "device_mesh",
    "grid_configs",
    "stylize_batch",
    "stylize_spatial",
]
