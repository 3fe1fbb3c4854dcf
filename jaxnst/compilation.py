"""JAX's persistent compilation cache, for jaxnst's programs.

A style transfer compiles a few large programs (the VGG, its gradient, the optimiser's loop),
tens of seconds on a CPU. With the cache on, a later process that compiles the same program
(same shapes, same settings, same JAX) loads it from disk instead. The CLI turns it on; a
script or notebook calls ``enable_compilation_cache()`` once, before its first run.
"""

from __future__ import annotations

import os


def enable_compilation_cache(folder: str | os.PathLike | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache for this process; returns its folder (``None``: off).

    The folder is ``folder`` if given, else ``$JAX_COMPILATION_CACHE_DIR`` if set, else
    ``$JAXNST_HOME/jax-cache`` (``~/.cache/jaxnst/jax-cache``). Every program is kept, however
    fast it compiled. ``JAXNST_COMPILATION_CACHE=0`` turns it off. It sets JAX's global options
    (``jax_compilation_cache_dir``): it affects every program of the process, jaxnst's or not.
    """
    if os.environ.get("JAXNST_COMPILATION_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    import jax

    from jaxnst.hub import cache_dir

    folder = str(folder or os.environ.get("JAX_COMPILATION_CACHE_DIR") or cache_dir() / "jax-cache")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder
