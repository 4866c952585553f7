import math

import pytest
import torch
from torch import nn

from ablab.trainer.build import count_parameters
from ablab.trainer.config.schema import ModelConfig
from ablab.trainer.data.tokenizer import BOS, PAD
from ablab.trainer.evaluation.decode import DecodeState
from ablab.trainer.model.seq2seq import Seq2Seq
from ablab.trainer.model.transformer import SinusoidalPositions, Transformer, attend

V = 97


def batch(seed=0, lengths=(7, 4, 2), tgt_lengths=(5, 6, 3)):
    g = torch.Generator().manual_seed(seed)
    S, T = max(lengths), max(tgt_lengths)
    src = torch.randint(4, V, (len(lengths), S), generator=g)
    tgt = torch.randint(4, V, (len(lengths), T), generator=g)
    for i, (s, t) in enumerate(zip(lengths, tgt_lengths, strict=True)):
        src[i, s:] = PAD
        tgt[i, t:] = PAD
    tgt[:, 0] = BOS
    return src, torch.tensor(lengths), tgt, torch.tensor(tgt_lengths)


def make(arch="transformer", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, layers=2, d_model=32, heads=4, ff_dim=48, **kw)
    cls = Transformer if arch == "transformer" else Seq2Seq
    return cls(cfg, V, V).eval()


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_parameter_count_matches_nn_transformer(norm):
    d, heads, ff, L = 32, 4, 48, 2
    ours = make(norm=norm, tie_embeddings="none")
    reference = nn.Transformer(d, heads, L, L, ff, batch_first=True)
    embeddings_and_output = 3 * V * d  # source, target embedding and output projection
    final_norms = 0 if norm == "pre" else 4 * d  # nn.Transformer always has both final norms
    assert count_parameters(ours) == count_parameters(reference) + embeddings_and_output - final_norms


def test_tied_embeddings_count_once():
    untied, decoder, shared = (count_parameters(make(tie_embeddings=t)) for t in ("none", "decoder", "all"))
    assert untied - decoder == V * 32 and decoder - shared == V * 32
    model = make(tie_embeddings="all")
    assert model.output.weight is model.tgt_embed.weight is model.src_embed.weight


def test_sinusoidal_positions_closed_form():
    table = SinusoidalPositions(8)(5)
    p, i = 3, 2
    assert table[p, 2 * i].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 8)), abs=1e-6)
    assert torch.equal(SinusoidalPositions(8, max_len=2)(3, offset=2), table[2:5])


def test_attend_matches_explicit_softmax():
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, None, :]
    fast, _ = attend(q, k, v, mask, 0.0)
    slow, weights = attend(q, k, v, mask, 0.0, need_weights=True)
    torch.testing.assert_close(fast, slow)
    assert torch.all(weights[1, ..., 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4))


@pytest.mark.parametrize("arch", ["transformer", "seq2seq"])
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_incremental_decoding_equals_full_forward(arch, norm):
    model = make(arch, norm=norm)
    src, src_lens, tgt, tgt_lens = batch(tgt_lengths=(6, 6, 6))
    with torch.no_grad():
        full = model.logits(model(src, src_lens, tgt, tgt_lens)).log_softmax(-1)
        state = model.start(src, src_lens)
        for t in range(tgt.shape[1]):
            step = model.step(tgt[:, t], state)
            torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["transformer", "seq2seq"])
def test_padding_changes_nothing(arch):
    model = make(arch)
    src, src_lens, tgt, tgt_lens = batch()
    with torch.no_grad():
        together = model(src, src_lens, tgt, tgt_lens)
        for i in range(len(src_lens)):
            s, t = src_lens[i], tgt_lens[i]
            alone = model(src[i : i + 1, :s], src_lens[i : i + 1], tgt[i : i + 1, :t], tgt_lens[i : i + 1])
            torch.testing.assert_close(together[i, :t], alone[0], atol=1e-5, rtol=1e-4)


def test_state_reorder_selects_rows():
    model = make()
    src, src_lens, tgt, _ = batch()
    with torch.no_grad():
        state = model.start(src, src_lens)
        model.step(tgt[:, 0], state)
        order = torch.tensor([2, 0, 0])
        expected = {k: v[order] for k, v in state.tensors.items()}
        state.reorder(order)
        assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_decode_state_extend_appends_along_time():
    state = DecodeState({})
    state.extend("k", torch.ones(2, 1, 1, 3))
    assert state.extend("k", torch.zeros(2, 1, 1, 3)).shape == (2, 1, 2, 3)


@pytest.mark.parametrize("arch", ["transformer", "seq2seq"])
def test_attention_maps_are_distributions_over_real_source(arch):
    model = make(arch)
    src, src_lens, tgt, _ = batch(lengths=(5,), tgt_lengths=(4,))
    maps = model.attention_maps(src, src_lens, tgt)
    if arch == "transformer":
        assert maps["encoder_self"].shape == (2, 4, 5, 5) and maps["cross"].shape == (2, 4, 4, 5)
    else:
        assert maps["attention"].shape == (4, 5)
    for weights in maps.values():
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_gradient_checkpointing_gives_the_same_gradients():
    src, src_lens, tgt, tgt_lens = batch()
    grads = []
    for flag in (False, True):
        model = make(dropout=0.0).train()
        model.grad_checkpointing = flag
        model(src, src_lens, tgt, tgt_lens).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_post_norm_outputs_are_normalized_and_pre_norm_has_final_norm():
    src, src_lens, tgt, tgt_lens = batch()
    with torch.no_grad():
        out = make(norm="post")(src, src_lens, tgt, tgt_lens)
    torch.testing.assert_close(out.mean(-1), torch.zeros(out.shape[:-1]), atol=1e-5, rtol=0)
    assert isinstance(make(norm="pre").decoder_norm, nn.LayerNorm)
    assert isinstance(make(norm="post").decoder_norm, nn.Identity)


def test_seq2seq_parameter_count_closed_form():
    d, L = 32, 2
    model = make("seq2seq", tie_embeddings="none")
    h = d // 2
    encoder = 2 * (3 * h * (d + h) + 6 * h) + 2 * (3 * h * (2 * h + h) + 6 * h)  # 2 layers, 2 directions
    decoder = L * (3 * d * (d + d) + 6 * d)
    expected = 3 * V * d + encoder + (d * d + d) + decoder + d * d + (2 * d * d + d)
    assert count_parameters(model) == expected
