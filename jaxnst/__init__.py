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

import importlib
import importlib.util

__version__ = "0.1.0"

# Each public name and the module that defines it. They are imported on first use (PEP 562), so that
# `jaxnst --help` answers at once and a Ctrl-C during JAX's import reaches the CLI's handler.
_HOME = {
    "BatchProgress": "batch",
    "stylize_batch": "batch",
    "stylize_spatial": "batch",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "enable_compilation_cache": "compilation",
    "Config": "config",
    "preset": "config",
    "JaxnstError": "errors",
    "get_weights": "hub",
    "load_image": "image",
    "load_mask": "image",
    "save_image": "image",
    "LossSpec": "optimize",
    "LossWeights": "optimize",
    "Targets": "optimize",
    "make_targets": "optimize",
    "objective_fn": "optimize",
    "Progress": "single",
    "stylize": "single",
    "VGG": "vgg",
    "Network": "vgg",
    "Weights": "vgg",
    "features": "vgg",
    "layer_names": "vgg",
    "load_weights": "weights",
    "random_weights": "weights",
    "save_weights": "weights",
}
_SUBMODULES = ("color", "engine", "losses", "transfer")

__all__ = sorted([*_HOME, *_SUBMODULES])


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f"jaxnst.{_HOME[name]}"), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"jaxnst.{name}") is not None:
        value = importlib.import_module(f"jaxnst.{name}")  # any submodule: jaxnst.vgg, jaxnst.memory, ...
    else:
        raise AttributeError(f"module 'jaxnst' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
