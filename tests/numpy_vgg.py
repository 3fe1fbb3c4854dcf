"""An independent NumPy VGG forward pass (NHWC), written from the paper, for tests."""

import numpy as np


def conv3x3(x, kernel, bias):
    """'SAME' 3x3 convolution as a sum of nine shifted matrix products (float64)."""
    n, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nhwc,cd->nhwd", xp[:, dy : dy + h, dx : dx + w, :], kernel[dy, dx])
    return out + bias


def pool(x, kind):
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


def preprocess(images, bgr, scale, mean, std):
    x = images[..., ::-1] if bgr else images
    return (x * scale - np.asarray(mean)) / np.asarray(std)


def forward(
    params, images, taps, blocks, pooling="max", pre=(True, 255.0, (103.939, 116.779, 123.68), (1, 1, 1)), scales=None
):
    """Activations in float64; ``scales`` multiply each pooling's output (one per block)."""
    x = preprocess(np.asarray(images, np.float64), *pre)
    out = {}
    for b, n in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            p = params[f"conv{b}_{i}"]
            x = conv3x3(x, np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64))
            out[f"conv{b}_{i}"] = x
            x = np.maximum(x, 0)
            out[f"relu{b}_{i}"] = x
        x = pool(x, pooling) * (1.0 if scales is None else scales[b - 1])
        out[f"pool{b}"] = x
        if all(t in out for t in taps):
            break
    return {t: out[t] for t in taps}
