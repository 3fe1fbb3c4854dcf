"""The fast network's upsampling, side by side in one process: the plain recipe (nearest-neighbour doubling,
reflection padding, a 3x3 convolution) against ``jaxnst.fast``'s (four 2x2 convolutions of the small image),
the same model file's parameters in both.

    python scripts/fast_upsampling.py models/shipwreck_w16.h5 --photo ../shared/images/tubingen.jpg

Prints the largest difference of the two paintings and the seconds per photo of each (after a compile),
alternating the two ``--repeats`` times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxnst
from jaxnst import fast


class Plain(fast.TransformNet):
    """``TransformNet`` with the upsampling done as written: doubled image, then ``_Conv``."""

    @nn.compact
    def __call__(self, x):
        h, w = x.shape[1:3]
        x = fast._pad(x, (0, 0), (-h % fast.MULTIPLE, -w % fast.MULTIPLE))
        y = fast._Conv(self.width, 9, name="in")(x)
        y = fast._Conv(2 * self.width, 3, 2, name="down1")(y)
        y = fast._Conv(4 * self.width, 3, 2, name="down2")(y)
        for k in range(self.blocks):
            y = fast._Residual(4 * self.width, name=f"res{k + 1}")(y)
        for k, c in enumerate((2 * self.width, self.width), start=1):
            n, hh, ww, ch = y.shape
            y = fast._Conv(c, 3, name=f"up{k}")(jax.image.resize(y, (n, 2 * hh, 2 * ww, ch), "nearest"))
        return fast._Conv(3, 9, last=True, name="out")(y)[:, :h, :w]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--photo", required=True)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    model = fast.load_model(args.model)
    photo = jnp.asarray(jaxnst.load_image(args.photo, args.size))[None]
    nets = {"plain": Plain(model.net.width, model.net.blocks), "jaxnst": model.net}
    paint = {k: jax.jit(lambda p, x, n=n: n.apply({"params": p}, x)) for k, n in nets.items()}
    out = {k: np.asarray(f(model.params, photo)) for k, f in paint.items()}  # compiles
    print(f"{photo.shape[2]}x{photo.shape[1]}: largest difference {np.abs(out['plain'] - out['jaxnst']).max():.2g}")
    seconds = {k: [] for k in paint}
    for _ in range(args.repeats):
        for k, f in paint.items():
            t = time.perf_counter()
            f(model.params, photo).block_until_ready()
            seconds[k].append(time.perf_counter() - t)
    for k, s in seconds.items():
        print(f"{k:7} median {statistics.median(s):.3f} s, best {min(s):.3f} s")
    print(f"jaxnst / plain: {statistics.median(seconds['jaxnst']) / statistics.median(seconds['plain']):.2f}")


if __name__ == "__main__":
    main()
