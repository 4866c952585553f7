"""Optimizers; all but ``adam`` with decoupled weight decay on the matrices only (as AdamW).

- ``adamw`` (Loshchilov & Hutter 2019) and ``adam`` (Vaswani et al. 2017, no decay): PyTorch's
  fused kernels, which on this CPU step a baseline model about 5x faster than the multi-tensor
  ones (measured in benchmarks).
- ``lion`` (Chen et al. 2023): :class:`Lion`, written from the paper.
- ``adafactor`` (Shazeer & Stern 2018): ``torch.optim.Adafactor``, whose decay is decoupled.
- ``sgd``: :class:`SGDW`, momentum SGD with decoupled decay, the control.
- ``adamw8bit``: bitsandbytes' 8-bit AdamW, on CUDA only.

Weight decay: every matrix (linear weights, embeddings) is decayed by ``lr · weight_decay`` per
update, apart from the gradient step; biases and LayerNorm weights (the 1-D parameters) are not.
The schedule sets ``lr`` of every group before each update (:func:`set_lr`).
"""

from __future__ import annotations

import torch
from torch import nn

from ablab.trainer.config.schema import OptimConfig
from ablab.trainer.errors import ConfigError


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices with ``weight_decay``, vectors (biases, norm weights) without."""
    decay, no_decay = [], []
    for p in model.parameters():  # tied parameters appear once
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _evaluate(closure):
    """The closure's loss (gradients enabled: an optimizer steps under ``no_grad``), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).
    For each parameter θ with gradient g and momentum m (zero at the start):

        c = β1·m + (1 − β1)·g
        θ ← θ − lr·(sign(c) + λ·θ)
        m ← β2·m + (1 − β2)·g

    Every coordinate moves by exactly ``lr`` (or not at all), so Lion wants a learning rate
    3-10x smaller than AdamW's and a decay λ as much larger; it keeps one state per weight
    (AdamW keeps two)."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay=0.0):
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lion's betas must lie in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                momentum = state["exp_avg"]
                direction = momentum.mul(beta1).add_(p.grad, alpha=1 - beta1).sign_()
                if decay:
                    p.mul_(1 - lr * decay)
                p.add_(direction, alpha=-lr)
                momentum.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss


class SGDW(torch.optim.SGD):
    """Momentum SGD with decoupled weight decay (Loshchilov & Hutter's SGDW): each update first
    ``θ ← θ·(1 − lr·λ)`` with the group's ``decoupled_weight_decay`` λ, then PyTorch's SGD step
    (whose own, coupled L2 decay stays 0)."""

    def __init__(self, groups: list[dict], lr: float, momentum: float, nesterov: bool):
        groups = [
            {**g, "decoupled_weight_decay": g.get("weight_decay", 0.0), "weight_decay": 0.0} for g in groups
        ]
        super().__init__(groups, lr=lr, momentum=momentum, nesterov=nesterov)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            decay = group["decoupled_weight_decay"]
            with_grad = [p for p in group["params"] if p.grad is not None]
            if decay and with_grad:
                torch._foreach_mul_(with_grad, 1 - group["lr"] * decay)
        super().step()
        return loss


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg``; its learning rate is set by the schedule every update."""
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)
    if cfg.name == "lion":
        return Lion(groups, lr=cfg.lr, betas=cfg.lion_betas)
    if cfg.name == "adafactor":
        return torch.optim.Adafactor(
            groups,
            lr=cfg.lr,
            beta2_decay=cfg.adafactor_beta2_decay,
            eps=(None, cfg.adafactor_eps),
            d=cfg.adafactor_clip,
        )
    if cfg.name == "sgd":
        return SGDW(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return _adamw8bit(cfg, groups)


def _adamw8bit(cfg: OptimConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """bitsandbytes' 8-bit AdamW: CUDA only, and only where bitsandbytes is installed."""
    if not torch.cuda.is_available():
        raise ConfigError(
            "optim.name 'adamw8bit' needs a CUDA device (bitsandbytes' 8-bit states live on the GPU) "
            "and none is visible; use 'adamw' here."
        )
    try:
        import bitsandbytes
    except ImportError:
        raise ConfigError(
            "optim.name 'adamw8bit' needs bitsandbytes: pip install bitsandbytes (on the GPU nodes)."
        ) from None
    return bitsandbytes.optim.AdamW8bit(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
