"""Every default of jaxnst, written once.

The CLI builds its flags and help text from the fields below (``jaxnst.cli.common`` reads
``dataclasses.fields(Config)``), so a default is never written twice.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Literal

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The start images ``init`` names; anything else is an image file.
INIT_CHOICES = ("content", "noise", "gray", "normal", "style", "style-stats")


# What a field is to a batch (``setting``'s ``batch``): the items of one batch may differ in an "item"
# field (it enters the compiled program as an array, or only shapes an item's inputs: its start
# image, its colours); a "load" field is only read when files are loaded (the library then ignores
# it); a "program" field fixes the compiled program, so every item of a batch has the same value.
BATCH_KINDS = ("item", "load", "program")


def setting(
    help: str,
    *,
    default,
    batch: str | None = None,
    sweep: bool = False,
    page: str | None = None,
    page_value=None,
    record: bool = True,
    flag: str | None = None,
):
    """A ``Config`` field with, once, what it is to every part of jaxnst (its metadata; ``settings`` reads it).

    ``help``: the flag's help text. ``flag``: the command-line flag, if not ``--`` and the name with
    dashes. ``batch``: one of ``BATCH_KINDS`` (default "item" with ``sweep``, else "program").
    ``sweep``: ``jaxnst batch --sweep`` (and the web page, if it shows the field) may try several
    values in one program; only "item" fields can. ``page``: the label of its input on the web page
    (``None``: not there), which starts at ``page_value`` (``None``: the default). ``record``: the run
    record keeps it (``jaxnst.record``).
    """
    batch = batch or ("item" if sweep else "program")
    if batch not in BATCH_KINDS or (sweep and batch != "item"):
        raise ValueError(f"batch={batch!r}, sweep={sweep}: batch is one of {BATCH_KINDS}, and only 'item' sweeps")
    meta = {"help": help, "batch": batch, "sweep": sweep, "page": page, "page_value": page_value, "record": record}
    return dataclasses.field(default=default, metadata={**meta, "flag": flag})


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of one style transfer (Gatys et al. 2016).

    The loss is ``content_weight * content + style_weight * style + tv_weight * tv``
    on an image of RGB pixels in [0, 1]. The defaults, chosen by looking at real
    results side by side (docs/quality.md), follow crowsonkb/style-transfer-pytorch:
    coarse to fine from 128 px, the Wasserstein-2 style loss, style layers weighted
    256:64:16:4:1, the moving average of the iterates, converted to the Caffe-scaled
    features of the Keras/MatConvNet VGG19. ``preset("gatys")`` (``--preset gatys``)
    is the classic setting of jcjohnson/neural-style: one scale, Gram matrices
    divided by C*H*W, content 5, style 100.
    """

    size: int = setting(
        "long side of the output in pixels (the content is resized to it)",
        default=512,
        batch="load",
        page="Size (long side, px)",
        page_value=256,
    )
    style_scale: float = setting("long side of each style image, relative to --size", default=1.0, batch="load")
    steps: int = setting(
        "optimisation steps: at the last scale with --min-size (the only one without), and at each other"
        " unless --initial-steps or --middle-steps say otherwise; with --tol, at most",
        default=100,
        sweep=True,
        page="Steps (at the last scale)",
    )
    min_size: int | None = setting(
        "coarse to fine: start at this long side and grow by sqrt(2) up to --size, carrying the image"
        " and Adam's moments up (crowsonkb's scales; none: one scale, at --size)",
        default=128,
        page="Smallest scale (px, or none)",
    )
    initial_steps: int | None = setting(
        "steps at the first scale with --min-size (none: --steps)",
        default=60,
        sweep=True,
        page="Steps at the first scale",
    )
    middle_steps: int | None = setting(
        "steps at each scale between the first and the last with --min-size (none: --steps)",
        default=20,
        sweep=True,
        page="Steps at each middle scale",
    )
    ema: float = setting(
        "output the bias-corrected moving average of the iterates with this decay, restarted at each"
        " scale (0: the last iterate)",
        default=0.95,
        sweep=True,
    )
    content_weight: float = setting("alpha: weight of the content loss", default=5.0, sweep=True, page="Content weight")
    style_weight: float = setting("beta: weight of the style loss", default=1.0, sweep=True, page="Style weight")
    tv_weight: float = setting(
        "gamma: weight of the total-variation loss (0 = off, as in Gatys)", default=2e6, sweep=True
    )
    content_layers: tuple[str, ...] = setting("VGG taps for the content loss", default=("relu4_2",))
    style_layers: tuple[str, ...] = setting("VGG taps for the style loss", default=STYLE_LAYERS)
    content_layer_weights: tuple[float, ...] | None = setting(
        "weight of each content layer, comma-separated, one per content layer (None: 1 each)",
        default=None,
        batch="item",
    )
    style_layer_weights: tuple[float, ...] | None = setting(
        "weight of each style layer, comma-separated, one per style layer (None: by --style-layer-ratio)",
        default=None,
        batch="item",
    )
    style_layer_ratio: float = setting(
        "without --style-layer-weights, a style layer of block b weighs RATIO^(5 - b): 4 gives relu1_1..relu5_1"
        " 256:64:16:4:1 (crowsonkb), 1 gives 1 each (Gatys)",
        default=4.0,
        sweep=True,
    )
    style_statistic: Literal["gram", "w2", "mean_std"] = setting(
        "what of the style is matched: gram (Gatys: channel correlations), w2 (the Wasserstein-2"
        " distance of Gaussians fitted to the features: means and covariances) or mean_std (channel"
        " means and standard deviations, as AdaIN)",
        default="w2",
        page="Style statistic",
    )
    style_blend_weights: tuple[float, ...] | None = setting(
        "relative weights of several style images, comma-separated (None: equal)", default=None, batch="item"
    )
    split_layer: str = setting(
        "with coarse styles (--style-coarse): the style layers up to this one match the style images, the"
        " deeper ones the coarse styles",
        default="relu3_1",
        page="Split layer (coarse styles)",
    )
    preserve_color: Literal["none", "luminance", "histogram", "post"] = setting(
        "keep the content's colours: luminance (transfer luminance only, then the content's chroma),"
        " histogram (first give each style the content's RGB mean and covariance) or post (the"
        " output's luminance with the content's chroma); jaxnst.color",
        default="none",
        batch="item",
        page="Keep the photo's colours",
    )
    histogram_mode: Literal["pca", "cholesky", "sym", "ot"] = setting(
        "the linear map of --preserve-color histogram: pca (principal axes onto principal axes),"
        " cholesky, sym (symmetric square roots, image analogies) or ot (moves the pixels least; docs/controls.md)",
        default="ot",
        batch="item",
    )
    gram_norm: Literal["chw", "hw"] = setting("Gram divisor: C*H*W (Johnson) or H*W (Gatys)", default="chw")
    tv_kind: Literal["l2", "l1"] = setting("total variation: squared (l2) or absolute (l1) differences", default="l2")
    optimizer: Literal["adam", "lbfgs"] = setting("optimiser over the pixels", default="adam")
    lr: float = setting(
        "Adam learning rate on [0,1] pixels (L-BFGS picks its steps by line search)", default=0.02, sweep=True
    )
    tol: float = setting(
        "end a scale once its image changes by less than this per step (RMS of pixels in [0, 1], averaged over"
        " ~10 steps; 0 = never: every scale takes all its steps)",
        default=3e-4,
        sweep=True,
    )
    init: str = setting(
        "start image: content, noise (uniform), gray (0.5 with a little noise), normal (truncated normal"
        " around 0.5), style (the first style image resized), style-stats (noise with the styles' channel"
        " means and spreads), or an image file",
        default="content",
        sweep=True,
    )
    seed: int = setting("seed of every random choice (noise init, random weights)", default=0, sweep=True, page="Seed")
    pooling: Literal["max", "avg"] = setting("VGG pooling", default="max")
    model: Literal["vgg19", "vgg16"] = setting("VGG architecture", default="vgg19")
    precision: Literal["fp32", "tf32", "bf16"] = setting(
        "fp32: float32 throughout; tf32: TensorFloat-32 convolutions and Grams on GPUs (JAX's and"
        " PyTorch's GPU default; same as fp32 on CPU); bf16: bfloat16 convolutions, with Grams,"
        " losses and the image in float32",
        default="fp32",
    )
    remat: bool = setting("recompute VGG activations per block in the backward pass (less memory)", default=False)
    ops: Literal["auto", "fast", "direct", "lax"] = setting(
        "convolution kernels (jaxnst.ops): fast (Winograd on CPU, hand-written gradients), direct (no"
        " Winograd: compiles ~3 s faster on CPU), lax (plain lax: every derivative, slower); auto: fast"
        " when the run is long enough to repay Winograd's compile, else direct",
        default="auto",
    )


def settings(key: str, value=None, *, config: type = Config) -> tuple[str, ...]:
    """The names of ``config``'s fields, in order, whose ``setting`` metadata ``key`` is ``value``
    (``None``: is set, e.g. ``page``): every list of fields in jaxnst is one of these.

    >>> settings("batch", "load")
    ('size', 'style_scale')
    """
    meta = [(f.name, f.metadata.get(key)) for f in dataclasses.fields(config)]
    return tuple(name for name, v in meta if (v if value is None else v == value))


def flag(name: str, config: type = Config) -> str:
    """The command-line flag of field ``name`` (any other name: ``--`` and the name with dashes).

    >>> flag("style_weight")
    '--style-weight'
    """
    field = {f.name: f for f in dataclasses.fields(config)}.get(name)
    return (field and field.metadata.get("flag")) or "--" + name.replace("_", "-")


def parse_value(name: str, text: str, config: type = Config):
    """A value of field ``name`` written as text (the web page's form, ``--sweep``): ``none`` for an
    optional field, one of the choices, comma-separated values for a tuple; else a ``JaxnstError``.

    >>> parse_value("initial_steps", "none"), parse_value("style_layers", "relu1_1,relu2_1")
    (None, ('relu1_1', 'relu2_1'))
    """
    from jaxnst.errors import JaxnstError

    hint, text = typing.get_type_hints(config)[name], str(text).strip()
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if text.lower() == "none":
            return None
        (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        if text not in typing.get_args(hint):
            raise JaxnstError(f"{name} {text!r} is not one of {', '.join(typing.get_args(hint))}", name)
        return text
    if sequence_of(hint):
        return tuple(_scalar(name, sequence_of(hint), v) for v in text.split(",") if v.strip())
    return _scalar(name, hint, text)


def sequence_of(hint):
    """``float`` for ``tuple[float, ...]`` or ``tuple[float, ...] | None`` (``str`` likewise), else ``None``."""
    for h in (hint, *typing.get_args(hint)):
        if typing.get_origin(h) is tuple:
            return typing.get_args(h)[0]
    return None


def _scalar(name: str, kind: type, text: str):
    from jaxnst.errors import JaxnstError

    text = text.strip()
    if kind is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        if kind is not bool:
            return kind(text)
    except ValueError:
        pass
    what = {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, f"a {kind.__name__}")
    raise JaxnstError(f"{name} {text!r} is not {what}", name)


# Named sets of changes to the defaults (``preset``, ``--preset``); a flag given with --preset still wins.
PRESETS: dict[str, dict] = {
    # The default's schedule cut for a quick look: about half its time (docs/quality.md).
    "draft": {"initial_steps": 30, "middle_steps": 10, "steps": 30, "tol": 6e-4},
    # The default before it learnt to stop (issue 24): every scale to its count, a longer average; ~2.7x the time.
    "best": {"initial_steps": 320, "middle_steps": None, "steps": 160, "ema": 0.99, "tol": 0.0},
    # Gatys et al. 2016 as jcjohnson/neural-style runs it: one scale, Gram matrices, equal layers,
    # 500 Adam steps on the last iterate.
    "gatys": {
        "min_size": None, "initial_steps": None, "steps": 500, "style_statistic": "gram", "content_weight": 5.0,
        "style_weight": 100.0, "style_layer_ratio": 1.0, "tv_weight": 0.0, "ema": 0.0, "tol": 0.0,
    },
    # crowsonkb/style-transfer-pytorch's own schedule: 1000 steps at 128 px, 500 at each later scale.
    "crowsonkb": {"initial_steps": 1000, "middle_steps": None, "steps": 500, "ema": 0.99, "tol": 0.0},
}  # fmt: skip


def preset(name: str, **changes) -> Config:
    """``Config()`` with the changes of ``PRESETS[name]``, then ``changes``.

    >>> preset("gatys", size=256).style_statistic
    'gram'
    """
    from jaxnst.errors import JaxnstError

    if name not in PRESETS:
        raise JaxnstError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}", "preset")
    return dataclasses.replace(Config(), **{**PRESETS[name], **changes})


def style_layer_weights(cfg: Config) -> tuple[float, ...]:
    """The weight of each style layer: ``cfg.style_layer_weights``, else ``style_layer_ratio ** (5 - b)``
    for a layer of block ``b`` (``relu3_1``: b = 3).

    >>> style_layer_weights(Config(style_layer_ratio=4.0))
    (256.0, 64.0, 16.0, 4.0, 1.0)
    """
    if cfg.style_layer_weights is not None:
        return tuple(cfg.style_layer_weights)
    return tuple(float(cfg.style_layer_ratio ** (5 - int(name[4]))) for name in cfg.style_layers)


MAX_SIZE, MAX_STEPS = 16384, 10**7  # what ``validate`` accepts


def style_size(cfg: Config) -> int:
    """Long side of each style image in pixels: ``size * style_scale``, at least 16."""
    return max(16, round(cfg.size * cfg.style_scale))


def scale_schedule(cfg: Config) -> list[tuple[int, int]]:
    """``(long side, steps)`` of each scale of a run: with ``min_size``, the sides ``size / sqrt(2)^i``
    (rounded) that are at least ``min_size``, smallest first (crowsonkb's ``gen_scales``), the first
    taking ``initial_steps``, the middle ones ``middle_steps`` and the last ``steps`` (each None:
    ``steps``); else the one scale ``(size, steps)``. With ``tol`` the counts are ceilings.

    >>> scale_schedule(Config(size=512, min_size=128, initial_steps=60, middle_steps=20, steps=100))
    [(128, 60), (181, 20), (256, 20), (362, 20), (512, 100)]
    """
    if cfg.min_size is None or cfg.min_size >= cfg.size:
        return [(cfg.size, cfg.steps)]
    sides, i = [], 0
    while (side := round(cfg.size / 2 ** (i / 2))) >= cfg.min_size:
        sides.insert(0, side)
        i += 1
    first = cfg.steps if cfg.initial_steps is None else cfg.initial_steps
    middle = cfg.steps if cfg.middle_steps is None else cfg.middle_steps
    return [(sides[0], first)] + [(side, middle) for side in sides[1:-1]] + [(sides[-1], cfg.steps)] * (len(sides) > 1)


def validate(cfg: Config) -> Config:
    """Checks the values a user can get wrong; returns ``cfg`` or raises ``JaxnstError``."""
    from jaxnst.errors import JaxnstError
    from jaxnst.vgg import check_taps

    def need(ok, field, msg):
        if not ok:
            raise JaxnstError(f"{field} {msg}", field)

    for name, hint in typing.get_type_hints(type(cfg)).items():  # every number and list of numbers is finite
        v = getattr(cfg, name)
        if hint is float:
            need(math.isfinite(v), name, f"{v} must be a finite number")
        elif sequence_of(hint) is float and v is not None:
            need(all(math.isfinite(x) for x in v), name, f"{','.join(map(str, v))} must be finite numbers")
    need(cfg.size >= 16, "size", f"{cfg.size} is too small: use at least 16 pixels")
    # Bounds far past any run a machine finishes, so that a typo or a hostile form is a message, not an overflow.
    need(cfg.size <= MAX_SIZE, "size", f"{cfg.size} is too large: use at most {MAX_SIZE} pixels")
    need(style_size(cfg) <= MAX_SIZE, "style_scale", f"{cfg.style_scale} makes styles of {style_size(cfg)} px: "
         f"at most {MAX_SIZE}")  # fmt: skip
    for name in ("steps", "initial_steps", "middle_steps"):
        v = getattr(cfg, name)
        need(v is None or v <= MAX_STEPS, name, f"{v} is too many: use at most {MAX_STEPS}")
    # A JAX key holds 32 bits of its seed: seeds 2**32 apart would give the same image.
    need(0 <= cfg.seed < 2**32, "seed", f"{cfg.seed} is too large or negative: give 0 to {2**32 - 1}")
    need(cfg.style_scale > 0, "style_scale", f"{cfg.style_scale} must be positive")
    need(cfg.steps >= 0, "steps", f"{cfg.steps} must be >= 0")
    for name in ("initial_steps", "middle_steps"):
        v = getattr(cfg, name)
        need(v is None or v >= 0, name, f"{v} must be >= 0")
    need(cfg.min_size is None or cfg.min_size >= 16, "min_size", f"{cfg.min_size} is too small: use at least 16 pixels")
    need(math.isfinite(cfg.ema) and 0 <= cfg.ema < 1, "ema", f"{cfg.ema} must be in [0, 1), e.g. 0.99")
    need(cfg.lr > 0, "lr", f"{cfg.lr} must be positive")
    # Pixels are in [0, 1]: a larger Adam step crosses the whole range and the image turns to noise.
    too_large = f"{cfg.lr} is too large for pixels in [0, 1]: use at most 1, e.g. 0.02"
    need(cfg.optimizer != "adam" or cfg.lr <= 1, "lr", too_large)
    need(cfg.tol >= 0, "tol", f"{cfg.tol} must be >= 0")
    ratio = cfg.style_layer_ratio
    need(0 < ratio <= 1e6, "style_layer_ratio", f"{ratio} must be positive, at most 1e6 (a layer weighs its 4th power)")
    for name in ("content_weight", "style_weight", "tv_weight"):
        need(getattr(cfg, name) >= 0, name, f"{getattr(cfg, name)} must be >= 0")
    nothing = "are all 0: nothing to optimise; give one of them a positive weight"
    need(cfg.content_weight or cfg.style_weight or cfg.tv_weight, "content_weight", f"{cfg.content_weight}, "
         f"{flag('style_weight')} {cfg.style_weight} and {flag('tv_weight')} {cfg.tv_weight} {nothing}")  # fmt: skip
    need(cfg.content_layers or cfg.style_layers, "style_layers", "and content_layers are both empty: give a layer")
    check_taps(cfg.model, (*cfg.content_layers, *cfg.style_layers, cfg.split_layer))
    for name, layers in (("content_layer_weights", cfg.content_layers), ("style_layer_weights", cfg.style_layers)):
        values = getattr(cfg, name)
        if values is not None:
            msg = f"gives {len(values)} weights for {len(layers)} layers: give one per layer"
            need(len(values) == len(layers), name, msg)
            need(all(v >= 0 for v in values), name, "must be >= 0")
    if cfg.style_blend_weights is not None:
        w = cfg.style_blend_weights
        need(all(v >= 0 for v in w) and sum(w) > 0, "style_blend_weights", "must be >= 0 and not all zero")
    return cfg
