"""jaxnst: neural style transfer (Gatys et al.) in JAX.

Images are float32 RGB in [0, 1], NHWC. The names here are what most programs need:

- run a transfer: ``stylize`` (one image, coarse to fine; ``Progress``), ``stylize_batch``
  (many images and sweeps as one vmapped program over every device; ``BatchProgress``),
  ``stylize_spatial`` (one image split over devices), set up by ``Config`` / ``preset``;
- files: ``load_image``, ``load_mask``, ``save_image``; weights: ``get_weights`` (the cached
  pretrained VGG, fetched once), ``load_weights``, ``save_weights``, ``random_weights``;
  runs on disk: ``save_checkpoint``, ``load_checkpoint``; ``enable_compilation_cache``;
- the network: ``VGG``, ``Network``, ``Weights``, ``features`` (a dict tap -> activation),
  ``layer_names``;
- the objective: ``make_targets`` (``Targets``), ``LossWeights``, ``LossSpec``, and
  ``objective_fn``, the Gatys loss as a ``loss_fn(image) -> (loss, terms)``;
- submodules: ``jaxnst.transfer`` (the algorithm in the order it runs: scales, targets per
  scale, the coarse-to-fine loop ``scales`` that every entry point drives; read it first),
  ``jaxnst.losses`` (statistics, distances, content/style/TV losses), ``jaxnst.engine``
  (``init``/``run``/``rescale``/``output`` over any loss function and any optax optimiser),
  ``jaxnst.color`` (colour control).

docs/research.md shows them under ``jit``, ``grad``, ``vmap`` and ``jvp``.
"""

from jaxnst import color, engine, losses, transfer
from jaxnst.batch import BatchProgress, stylize_batch, stylize_spatial
from jaxnst.checkpoint import load_checkpoint, save_checkpoint
from jaxnst.compilation import enable_compilation_cache
from jaxnst.config import Config, preset
from jaxnst.errors import JaxnstError
from jaxnst.hub import get_weights
from jaxnst.image import load_image, load_mask, save_image
from jaxnst.optimize import LossSpec, LossWeights, Targets, make_targets, objective_fn
from jaxnst.stylize import Progress, stylize
from jaxnst.vgg import VGG, Network, Weights, features, layer_names
from jaxnst.weights import load_weights, random_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "BatchProgress",
    "Config",
    "JaxnstError",
    "LossSpec",
    "LossWeights",
    "Network",
    "Progress",
    "Targets",
    "VGG",
    "Weights",
    "color",
    "enable_compilation_cache",
    "engine",
    "features",
    "get_weights",
    "layer_names",
    "load_checkpoint",
    "load_image",
    "load_mask",
    "load_weights",
    "losses",
    "make_targets",
    "objective_fn",
    "preset",
    "random_weights",
    "save_checkpoint",
    "save_image",
    "save_weights",
    "stylize",
    "stylize_batch",
    "stylize_spatial",
    "transfer",
]
