import pytest
import torch

from trainer.config import ModelConfig, OptimConfig
from trainer.model import Transformer
from trainer.optim import build_optimizer, parameter_groups, set_lr


def model():
    torch.manual_seed(0)
    return Transformer(ModelConfig(layers=1, d_model=16, heads=2, ff_dim=32), 40, 40)


def test_biases_and_norm_weights_are_not_decayed():
    m = model()
    decay, no_decay = parameter_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert no_decay["weight_decay"] == 0.0
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert any("norm.weight" in n for n in undecayed) and any(n.endswith(".bias") for n in undecayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))


def test_adamw_decay_is_decoupled():
    """With zero gradients Adam's update is zero, so only decoupled decay moves weights."""
    m = model()
    opt = build_optimizer(OptimConfig(name="adamw", lr=0.1, weight_decay=0.5), m)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in m.named_parameters():
        factor = 1 - 0.1 * 0.5 if p.ndim >= 2 else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor)


def test_adam_uses_the_papers_settings():
    opt = build_optimizer(OptimConfig(name="adam"), model())
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9 and group["weight_decay"] == 0.0


def test_fused_step_equals_reference_adamw():
    m1, m2 = model(), model()
    fused = build_optimizer(OptimConfig(lr=1e-2), m1)
    reference = torch.optim.AdamW(
        parameter_groups(m2, 0.01), lr=1e-2, betas=(0.9, 0.98), eps=1e-9, foreach=False
    )
    for _ in range(3):
        for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
            g = torch.randn_like(a)
            a.grad, b.grad = g.clone(), g.clone()
        fused.step()
        reference.step()
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_set_lr():
    opt = build_optimizer(OptimConfig(), model())
    set_lr(opt, 0.123)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.123, 0.123])
