"""jaxnst: neural style transfer (Gatys et al.) in JAX.

Pure functions over arrays: ``features`` (VGG taps), ``gram``, ``content_loss``,
``style_loss``, ``tv_loss``, the ``objective`` and a jitted Optax step;
``stylize`` that runs them end to end; ``stylize_batch`` (many images and
sweeps as one vmapped program over every device) and ``stylize_spatial`` (one
image split over devices). Images are float32 RGB in [0, 1], NHWC.
"""

from jaxnst.batch import BatchProgress, stylize_batch, stylize_spatial
from jaxnst.config import Config
from jaxnst.errors import JaxnstError
from jaxnst.hub import get_weights
from jaxnst.image import load_image, save_image
from jaxnst.losses import content_loss, gram, style_loss, tv_loss
from jaxnst.optimize import Hyper, LossSpec, Targets, make_optimizer, make_step, make_targets, objective, run_steps
from jaxnst.stylize import Progress, stylize
from jaxnst.vgg import CAFFE, TORCH, VGG, Preprocessing, Weights, features, layer_names
from jaxnst.weights import load_weights, random_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "BatchProgress",
    "CAFFE",
    "TORCH",
    "VGG",
    "Config",
    "Hyper",
    "JaxnstError",
    "LossSpec",
    "Preprocessing",
    "Progress",
    "Targets",
    "Weights",
    "content_loss",
    "features",
    "get_weights",
    "gram",
    "layer_names",
    "load_image",
    "load_weights",
    "make_optimizer",
    "make_step",
    "make_targets",
    "objective",
    "random_weights",
    "run_steps",
    "save_image",
    "save_weights",
    "style_loss",
    "stylize",
    "stylize_batch",
    "stylize_spatial",
    "tv_loss",
]
