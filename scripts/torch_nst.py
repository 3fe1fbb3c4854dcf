"""The same style-transfer problem in PyTorch, as an independent reference.

Same VGG (weights copied from a jaxnst ``Weights``), same preprocessing, same
losses (content MSE, Gram / C*H*W or H*W, mean squared Gram difference, TV) and
the same Adam on [0, 1] pixels with clipping. Used by ``tests/test_torch_reference.py``
(when torch is installed) and ``scripts/bench.py``. torch is never needed by jaxnst.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from jaxnst.vgg import layer_names


class TorchVGG(torch.nn.Module):
    def __init__(self, weights, taps, pooling="max"):
        super().__init__()
        names = layer_names(weights.arch)
        self.layers = names[: max(names.index(t) for t in taps) + 1]
        self.taps = set(taps)
        self.pooling = pooling
        pre = weights.preprocessing
        self.bgr = pre.channel_order == "BGR"
        self.scale = pre.scale
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.w = torch.nn.ParameterDict()
        for name in self.layers:
            if name.startswith("conv"):
                k = np.asarray(weights.params[name]["kernel"])  # HWIO -> OIHW
                self.w[name + "_k"] = torch.nn.Parameter(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()), False)
                self.w[name + "_b"] = torch.nn.Parameter(
                    torch.from_numpy(np.array(weights.params[name]["bias"])), False
                )

    def forward(self, x):  # x: (N, 3, H, W) RGB in [0, 1]
        if self.bgr:
            x = x.flip(1)
        x = (x * self.scale - self.mean) / self.std
        out = {}
        for name in self.layers:
            if name.startswith("conv"):
                x = F.conv2d(x, self.w[name + "_k"], self.w[name + "_b"], padding=1)
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2) if self.pooling == "max" else F.avg_pool2d(x, 2)
            if name in self.taps:
                out[name] = x
        return out


def gram(f, norm="chw"):
    n, c, h, w = f.shape
    m = f.reshape(n, c, h * w)
    return m @ m.transpose(1, 2) / (c * h * w if norm == "chw" else h * w)


def tv(x, kind="l2"):
    rho = torch.square if kind == "l2" else torch.abs
    return rho(x[:, :, 1:] - x[:, :, :-1]).mean() + rho(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()


def to_torch(image_nhwc):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image_nhwc, np.float32).transpose(0, 3, 1, 2)))


class TorchNST:
    """``step()`` = one Adam step of jaxnst's objective; ``image`` NCHW."""

    def __init__(self, weights, content, style, cfg, device="cpu"):
        self.cfg = cfg
        self.net = TorchVGG(weights, tuple(dict.fromkeys(cfg.content_layers + cfg.style_layers)), cfg.pooling)
        self.net.to(device)
        content, style = to_torch(content).to(device), to_torch(style).to(device)
        with torch.no_grad():
            c = self.net(content)
            s = self.net(style)
        self.content = {n: c[n] for n in cfg.content_layers}
        self.style = {n: gram(s[n], cfg.gram_norm) for n in cfg.style_layers}
        self.image = content.clone().requires_grad_(True)
        self.opt = torch.optim.Adam([self.image], lr=cfg.lr)

    def loss(self, x):
        f = self.net(x)
        c = sum(F.mse_loss(f[n], self.content[n]) for n in self.cfg.content_layers)
        s = sum(F.mse_loss(gram(f[n], self.cfg.gram_norm), self.style[n]) for n in self.cfg.style_layers)
        cfg = self.cfg
        return cfg.content_weight * c + cfg.style_weight * s + cfg.tv_weight * tv(x, cfg.tv_kind)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.image)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.image.clamp_(0, 1)
        return loss.detach()
