import pydantic
import pytest
import torch

from ablab.trainer.config.schema import Config, ModelConfig, OptimConfig, TrainConfig
from ablab.trainer.errors import ConfigError
from ablab.trainer.model.transformer import Transformer
from ablab.trainer.optim.optimizers import Lion, build_optimizer, parameter_groups, set_lr


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


def fill_grads(m, seed):
    torch.manual_seed(seed)
    for p in m.parameters():
        p.grad = torch.randn_like(p)


def test_lion_matches_its_closed_form_over_two_steps():
    """θ1 = θ0·(1 − lr·λ) − lr·sign((1 − β1)·g1), m1 = (1 − β2)·g1; then c2 = β1·m1 + (1 − β1)·g2."""
    m = model()
    lr, wd, (b1, b2) = 0.01, 0.5, (0.9, 0.99)
    opt = build_optimizer(OptimConfig(name="lion", lr=lr, weight_decay=wd, lion_betas=(b1, b2)), m)
    assert isinstance(opt, Lion)
    theta0 = {n: p.detach().clone() for n, p in m.named_parameters()}
    fill_grads(m, 1)
    g1 = {n: p.grad.clone() for n, p in m.named_parameters()}
    opt.step()
    theta1 = {}
    for n, p in m.named_parameters():
        decay = wd if p.ndim >= 2 else 0.0
        theta1[n] = theta0[n] * (1 - lr * decay) - lr * torch.sign((1 - b1) * g1[n])
        torch.testing.assert_close(p.detach(), theta1[n])
    fill_grads(m, 2)
    g2 = {n: p.grad.clone() for n, p in m.named_parameters()}
    opt.step()
    for n, p in m.named_parameters():
        decay = wd if p.ndim >= 2 else 0.0
        c2 = b1 * (1 - b2) * g1[n] + (1 - b1) * g2[n]
        torch.testing.assert_close(p.detach(), theta1[n] * (1 - lr * decay) - lr * torch.sign(c2))
        torch.testing.assert_close(opt.state[p]["exp_avg"], b2 * (1 - b2) * g1[n] + (1 - b2) * g2[n])


def test_adafactor_is_torchs_with_the_configured_settings_and_decay_groups():
    m1, m2 = model(), model()
    cfg = OptimConfig(
        name="adafactor", lr=1e-2, adafactor_beta2_decay=-0.7, adafactor_eps=1e-3, adafactor_clip=1.5
    )
    ours = build_optimizer(cfg, m1)
    reference = torch.optim.Adafactor(parameter_groups(m2, 0.01), lr=1e-2, beta2_decay=-0.7, d=1.5)
    for step in range(3):
        fill_grads(m1, step)
        fill_grads(m2, step)
        ours.step()
        reference.step()
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert ours.param_groups[1]["weight_decay"] == 0.0  # no decay of biases and norm weights


def test_sgd_decay_is_decoupled_and_the_step_is_momentum_sgds():
    m1, m2 = model(), model()
    lr, wd = 0.1, 0.5
    ours = build_optimizer(OptimConfig(name="sgd", lr=lr, weight_decay=wd, momentum=0.9, nesterov=True), m1)
    reference = torch.optim.SGD(m2.parameters(), lr=lr, momentum=0.9, nesterov=True)
    for step in range(3):
        fill_grads(m1, step)
        fill_grads(m2, step)
        with torch.no_grad():  # decoupled: the decay never enters the momentum buffer
            for p in m2.parameters():
                if p.ndim >= 2:
                    p.mul_(1 - lr * wd)
        ours.step()
        reference.step()
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_8bit_adam_is_refused_clearly_without_cuda():
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        build_optimizer(OptimConfig(name="adamw8bit"), model())
    with pytest.raises(pydantic.ValidationError, match="adamw8bit' needs CUDA"):
        Config(optim=OptimConfig(name="adamw8bit"), train=TrainConfig(device="cpu"))
