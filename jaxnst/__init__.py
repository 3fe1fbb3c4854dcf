"""jaxnst: neural style transfer (Gatys et al.) in JAX.

Pure functions over arrays: ``features`` (VGG taps), style statistics
(``gram``, ``mean_std``, ``gaussian_moments`` with ``w2_distance``),
``content_loss``, ``style_loss``, ``tv_loss``, the ``objective`` and an Optax
step; the run as a value (``State``, and an ``Engine``'s ``init``/``run``,
``rescale`` to the next scale, ``output``); ``stylize`` that runs them end to
end, coarse to fine; ``stylize_batch`` (many images and
sweeps as one vmapped program over every device) and ``stylize_spatial`` (one
image split over devices). Images are float32 RGB in [0, 1], NHWC.
"""

from jaxnst.batch import BatchProgress, stylize_batch, stylize_spatial
from jaxnst.config import PRESETS, Config, preset, scale_schedule
from jaxnst.engine import Engine, Problem, State, blocks, compiled_engine, make_engine, output, rescale
from jaxnst.errors import JaxnstError
from jaxnst.hub import get_weights
from jaxnst.image import load_image, save_image
from jaxnst.losses import (
    STYLE_STATISTICS,
    content_loss,
    gaussian_moments,
    gram,
    mean_squared_distance,
    mean_std,
    style_loss,
    tv_loss,
    w2_distance,
    w2_target,
)
from jaxnst.optimize import LossSpec, LossWeights, Targets, make_optimizer, make_step, make_targets, objective
from jaxnst.stylize import Progress, stylize
from jaxnst.vgg import CAFFE, PRECISIONS, TORCH, VGG, Network, Preprocessing, Weights, features, layer_names
from jaxnst.weights import load_weights, random_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "BatchProgress",
    "CAFFE",
    "Config",
    "Engine",
    "JaxnstError",
    "LossSpec",
    "LossWeights",
    "Network",
    "PRECISIONS",
    "PRESETS",
    "Preprocessing",
    "Problem",
    "Progress",
    "STYLE_STATISTICS",
    "State",
    "TORCH",
    "Targets",
    "VGG",
    "Weights",
    "blocks",
    "compiled_engine",
    "content_loss",
    "features",
    "gaussian_moments",
    "get_weights",
    "gram",
    "layer_names",
    "load_image",
    "load_weights",
    "make_engine",
    "make_optimizer",
    "make_step",
    "make_targets",
    "mean_squared_distance",
    "mean_std",
    "objective",
    "output",
    "preset",
    "random_weights",
    "rescale",
    "save_image",
    "save_weights",
    "scale_schedule",
    "style_loss",
    "stylize",
    "stylize_batch",
    "stylize_spatial",
    "tv_loss",
    "w2_distance",
    "w2_target",
]
