import torch
from torch import nn

from ablab.trainer.model.masks import causal_mask, decoder_self_mask, padding_mask


def test_padding_mask_marks_real_keys():
    mask = padding_mask(torch.tensor([3, 1]), 4)
    assert mask.shape == (2, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]


def test_padding_mask_is_the_negation_of_key_padding_mask():
    tokens = torch.tensor([[5, 6, 0, 0], [7, 8, 9, 0]])
    key_padding_mask = tokens == 0  # nn.Transformer's convention: True = ignore
    assert torch.equal(padding_mask(torch.tensor([2, 3]), 4)[:, 0, 0], ~key_padding_mask)


def test_causal_mask_matches_nn_transformer():
    reference = nn.Transformer.generate_square_subsequent_mask(5)  # 0 allowed, -inf masked
    assert torch.equal(causal_mask(5), reference == 0)


def test_decoder_mask_combines_both():
    mask = decoder_self_mask(torch.tensor([2, 3]), 3)
    assert mask.shape == (2, 1, 3, 3)
    assert mask[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    assert torch.equal(mask[1, 0], causal_mask(3))


def test_masks_work_with_sdpa():
    q = torch.randn(2, 1, 3, 4)
    k, v = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)
    mask = decoder_self_mask(torch.tensor([2, 3]), 3)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    weights = (q @ k.transpose(-1, -2) / 2).masked_fill(~mask, float("-inf")).softmax(-1)
    torch.testing.assert_close(out, weights @ v)
