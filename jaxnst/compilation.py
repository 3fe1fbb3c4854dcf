"""JAX's persistent compilation cache, for jaxnst's programs.

A style transfer compiles a few large programs (the VGG, its gradient, the optimiser's loop),
tens of seconds on a CPU. With the cache on, a later process that compiles the same program
(same shapes, same settings, same JAX) loads it from disk instead. The CLI turns it on; a
script or notebook calls ``enable_compilation_cache()`` once, before its first run.
"""

from __future__ import annotations

import functools
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


# XLA:CPU's MLIR fusion emitters (its default in jaxlib 0.10) compiled jaxnst's step twice as slowly as its
# older emitters did (XLA's own compile of a default 512 px run's five steps: 12.5 s -> 6.2 s on the 2-core CPU)
# for steps as fast within the noise at 181-512 px (~5 % slower at 128 px): docs/benchmarks.md.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def compiler_options() -> dict:
    """Options for ``jax.jit(..., compiler_options=)`` of jaxnst's optimisation loops: ``CPU_COMPILER_OPTIONS``
    where JAX's default backend is the CPU and this jaxlib knows them (tried once on a tiny program), else none."""
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(jnp.negative, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.zeros(())).compile()
    except Exception:  # an XLA without the option ("No such compile option") compiles with its defaults
        return {}
    return dict(CPU_COMPILER_OPTIONS)
