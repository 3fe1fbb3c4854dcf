"""jaxnst: neural style transfer (Gatys et al.) in JAX.

Pure functions over arrays: ``features`` (VGG taps), style statistics
(``gram``, ``mean_std``), ``content_loss``, ``style_loss``, ``tv_loss``, the
``objective`` and an Optax step; the run as a value (``State``, and an
``Engine``'s ``init``/``run``); ``stylize`` that runs them end to end; ``stylize_batch`` (many images and
sweeps as one vmapped program over every device) and ``stylize_spatial`` (one
image split over devices). Images are float32 RGB in [0, 1], NHWC.
"""

from jaxnst.batch import BatchProgress, stylize_batch, stylize_spatial
from jaxnst.config import Config
from jaxnst.engine import Engine, Problem, State, blocks, compiled_engine, make_engine
from jaxnst.errors import JaxnstError
from jaxnst.hub import get_weights
from jaxnst.image import load_image, save_image
from jaxnst.losses import STYLE_STATISTICS, content_loss, gram, mean_squared_distance, mean_std, style_loss, tv_loss
from jaxnst.optimize import LossSpec, LossWeights, Targets, make_optimizer, make_step, make_targets, objective
from jaxnst.stylize import Progress, stylize
from jaxnst.vgg import CAFFE, PRECISIONS, TORCH, VGG, Network, Preprocessing, Weights, features, layer_names
from jaxnst.weights import load_weights, random_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "BatchProgress",
    "CAFFE",
    "TORCH",
    "VGG",
    "Config",
    "Engine",
    "JaxnstError",
    "LossSpec",
    "LossWeights",
    "Network",
    "PRECISIONS",
    "Preprocessing",
    "Problem",
    "Progress",
    "STYLE_STATISTICS",
    "State",
    "Targets",
    "Weights",
    "blocks",
    "compiled_engine",
    "content_loss",
    "features",
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
    "random_weights",
    "save_image",
    "save_weights",
    "style_loss",
    "stylize",
    "stylize_batch",
    "stylize_spatial",
    "tv_loss",
]
