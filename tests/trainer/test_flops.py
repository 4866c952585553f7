import numpy as np
import torch
from torch import nn

from ablab.trainer.config.schema import ModelConfig
from ablab.trainer.model.flops import FlopsProfile, matmul_params
from ablab.trainer.model.seq2seq import Seq2Seq
from ablab.trainer.model.transformer import Transformer


def test_transformer_profile_counts_matmul_weights_only():
    d, f, L, V = 64, 128, 3, 500
    model = Transformer(ModelConfig(layers=L, d_model=d, heads=4, ff_dim=f), V, V)
    profile = model.flops_profile()
    assert profile.n_enc == L * (4 * d * d + 2 * d * f)
    assert profile.n_dec == L * (8 * d * d + 2 * d * f)
    assert (profile.vocab, profile.enc_self_layers, profile.dec_self_layers, profile.cross_layers) == (
        V,
        L,
        L,
        L,
    )


def test_step_flops_formula_by_hand():
    p = FlopsProfile(
        n_enc=10, n_dec=20, d_model=2, vocab=3, enc_self_layers=1, dec_self_layers=2, cross_layers=2
    )
    s, t = np.array([2, 3]), np.array([1, 4])
    dense = 6 * (10 * 5 + (20 + 2 * 3) * 5)
    attention = 12 * 2 * (1 * (4 + 9) + 2 * (1 + 16) + 2 * (2 * 1 + 3 * 4))
    assert p.step_flops(s, t) == dense + attention


def test_dense_term_equals_measured_linear_flops():
    """The 6*N*tokens rule is exact for a linear layer: count the FLOPs torch reports."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = nn.Linear(32, 48, bias=False)
    x = torch.randn(10, 32, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        layer(x).sum().backward()
    assert counter.get_total_flops() == 6 * matmul_params(layer) * 10


def test_matmul_params_counts_gru_matrices():
    gru = nn.GRU(8, 16, num_layers=2)
    assert matmul_params(gru) == 3 * 16 * (8 + 16) + 3 * 16 * (16 + 16)
    seq = Seq2Seq(ModelConfig(arch="seq2seq", layers=1, d_model=16), 50, 50).flops_profile()
    assert seq.cross_layers == 1 and seq.enc_self_layers == 0


def test_transformer_step_flops_against_flop_counter():
    """The whole formula against torch's FLOP counter on a real training step.

    The counter sees every matmul (MATH attention backend, whose matmuls it can count). The
    only difference is the convention's: it charges the cross-attention K/V projections
    (2 d^2 per decoder layer) per target token, while they run once per source token."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    V, B, S, T, d, L = 300, 4, 12, 10, 64, 2
    cfg = ModelConfig(layers=L, d_model=d, heads=4, ff_dim=128, dropout=0.0, tie_embeddings="none")
    model = Transformer(cfg, V, V)
    src, tgt = torch.randint(4, V, (B, S)), torch.randint(4, V, (B, T))
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        model.logits(model(src, torch.full((B,), S), tgt, torch.full((B,), T))).sum().backward()
    formula = model.flops_profile().step_flops(np.full(B, S), np.full(B, T))
    kv_projections_per_source_token = 6 * (2 * d * d) * L * (B * S - B * T)
    assert counter.get_total_flops() == formula + kv_projections_per_source_token
