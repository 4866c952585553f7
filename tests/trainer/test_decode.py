import itertools
import math

import pytest
import torch

from ablab.trainer.config.schema import ModelConfig
from ablab.trainer.data.tokenizer import BOS, EOS
from ablab.trainer.evaluation.decode import DecodeState, beam_search, greedy, max_lengths
from ablab.trainer.model.seq2seq import Seq2Seq
from ablab.trainer.model.transformer import Transformer

WORDS = [4, 5, 6]  # real tokens of the toy vocabulary, besides </s>
V = 7


class MarkovModel:
    """Next-token log-probabilities depend only on the previous token: exact search is easy."""

    def __init__(self, table: torch.Tensor):
        self.table = table  # (V, V) log-probs, row = previous token

    def start(self, src, src_lens):
        return DecodeState({"rows": torch.zeros(src.shape[0], 1)})

    def step(self, tokens, state):
        state.step += 1
        return self.table[tokens]


def random_table(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.full((V, V), -1e9)
    allowed = WORDS + [EOS]
    logits[:, allowed] = torch.randn(V, len(allowed), generator=g) * 2
    return logits.log_softmax(-1)


def brute_force(table, limit, alpha):
    """Best sequence by score / length**alpha over all outputs of at most ``limit`` tokens."""
    best, best_seq = -math.inf, None
    for n in range(limit):
        for words in itertools.product(WORDS, repeat=n):
            seq, prev, score = list(words), BOS, 0.0
            for tok in seq + [EOS]:
                score += table[prev, tok].item()
                prev = tok
            if (s := score / (n + 1) ** alpha) > best:
                best, best_seq = s, seq
    for words in itertools.product(WORDS, repeat=limit):  # cut at the limit without </s>
        prev, score = BOS, 0.0
        for tok in words:
            score += table[prev, tok].item()
            prev = tok
        if (s := score / limit**alpha) > best:
            best, best_seq = s, list(words)
    return best_seq


def run(model, beam, limit, alpha=1.0, batch=1):
    src = torch.zeros(batch, 3, dtype=torch.long)
    lens = torch.full((batch,), 3)
    limits = torch.full((batch,), limit)
    if beam == 0:
        return greedy(model, src, lens, limits)
    return beam_search(model, src, lens, limits, beam, alpha)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_is_exact_search(seed, alpha):
    table = random_table(seed)
    limit = 4
    assert run(MarkovModel(table), beam=64, limit=limit, alpha=alpha)[0] == brute_force(table, limit, alpha)


def test_beam_finds_what_greedy_misses():
    table = torch.full((V, V), -1e9)
    table[BOS, 4], table[BOS, 5] = math.log(0.55), math.log(0.45)
    table[4, EOS], table[4, 6] = math.log(0.4), math.log(0.6)  # greedy: 4 then 6 ...
    table[6, EOS], table[6, 6] = math.log(0.3), math.log(0.7)
    table[5, EOS], table[5, 4] = math.log(0.95), math.log(0.05)
    model = MarkovModel(table)
    assert run(model, beam=0, limit=3)[0] == [4, 6, 6]
    assert run(model, beam=2, limit=3, alpha=0.0)[0] == [5]


@pytest.mark.parametrize("arch", ["transformer", "seq2seq"])
def test_beam_one_equals_greedy(arch):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, layers=2, d_model=32, heads=4, ff_dim=64)
    model = (Transformer if arch == "transformer" else Seq2Seq)(cfg, 50, 50).eval()
    src = torch.randint(4, 50, (6, 9))
    lens = torch.tensor([9, 8, 7, 5, 3, 1])
    for i, n in enumerate(lens):
        src[i, n:] = 0
    limits = max_lengths(lens, 1.5, 5)
    assert beam_search(model, src, lens, limits, beam=1) == greedy(model, src, lens, limits)


def test_outputs_respect_limits_and_strip_specials():
    table = torch.full((V, V), -1e9)
    table[:, 4] = 0.0  # never ends by itself
    out = run(MarkovModel(table), beam=0, limit=5, batch=2)
    assert out == [[4] * 5, [4] * 5]
    assert run(MarkovModel(table), beam=3, limit=5)[0] == [4] * 5


def test_max_lengths():
    assert max_lengths(torch.tensor([10, 3]), 1.5, 10).tolist() == [25, 14]
