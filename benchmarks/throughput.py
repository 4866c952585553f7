"""Training throughput of the ablab trainer against a seed-style reference loop, same run.

The reference is written the way the seed tutorials write it: ``nn.Transformer`` with
separate embeddings, sinusoidal positions and a linear generator; fixed-size batches of
128 sentences in random order, padded to their longest sentence; fp32; the causal and
padding masks rebuilt for every batch; ``nn.CrossEntropyLoss(ignore_index=pad,
label_smoothing=0.1)`` over every padded position; Adam with the paper's settings; gradient
clipping at 1.0. Both loops see the same Multi30k training pairs with the same BPE
vocabulary and the same model size (layers, d_model, heads, ff_dim, dropout). Throughput is
non-pad target tokens per second of the whole update (batch assembly included), measured in
alternating rounds so that load on the machine affects both alike; MFU uses the FLOP formula
of trainer/flops.py over the device's peak.

    python benchmarks/throughput.py                     # baseline config, this machine
    python benchmarks/throughput.py --precision fp32    # ablab without mixed precision
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer.build import build_corpus, count_parameters
from trainer.config_files import load
from trainer.device import describe, peak_flops, pick_device
from trainer.run import build_trainer
from trainer.tokenizer import PAD

ROOT = Path(__file__).resolve().parent.parent
# The seed code mixes a float causal mask with boolean padding masks, as the tutorials do.
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float, max_len: int = 512):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return self.dropout(x + self.pe[: x.size(1)])


class SeedTransformer(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, d_model, heads, layers, ff_dim, dropout):
        super().__init__()
        self.d_model = d_model
        self.src_tok = nn.Embedding(src_vocab, d_model)
        self.tgt_tok = nn.Embedding(tgt_vocab, d_model)
        self.pos = PositionalEncoding(d_model, dropout)
        self.transformer = nn.Transformer(d_model, heads, layers, layers, ff_dim, dropout, batch_first=True)
        self.generator = nn.Linear(d_model, tgt_vocab)

    def forward(self, src, tgt, tgt_mask, src_padding_mask, tgt_padding_mask):
        src_emb = self.pos(self.src_tok(src) * math.sqrt(self.d_model))
        tgt_emb = self.pos(self.tgt_tok(tgt) * math.sqrt(self.d_model))
        out = self.transformer(
            src_emb,
            tgt_emb,
            tgt_mask=tgt_mask,
            src_key_padding_mask=src_padding_mask,
            tgt_key_padding_mask=tgt_padding_mask,
            memory_key_padding_mask=src_padding_mask,
        )
        return self.generator(out)


class ReferenceLoop:
    def __init__(self, corpus, cfg, device):
        m = cfg.model
        torch.manual_seed(0)
        self.model = (
            SeedTransformer(
                corpus.vocabs.src_size,
                corpus.vocabs.tgt_size,
                m.d_model,
                m.heads,
                m.layers,
                m.ff_dim,
                m.dropout,
            )
            .to(device)
            .train()
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-9)
        self.criterion = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=cfg.loss.label_smoothing)
        self.data, self.device = corpus.train, device
        order = np.random.default_rng(0).permutation(len(self.data))
        self.batches = [order[i : i + 128] for i in range(0, len(order), 128)]

    def update(self, index: int) -> int:
        batch = self.data.collate(self.batches[index % len(self.batches)])
        src, tgt_in, tgt_out = (t.to(self.device) for t in (batch.src, batch.tgt_in, batch.tgt_out))
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1)).to(self.device)
        logits = self.model(src, tgt_in, tgt_mask, src == PAD, tgt_in == PAD)
        loss = self.criterion(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return batch.n_tgt_tokens, batch.src_lens.numpy(), batch.tgt_lens.numpy(), tgt_out.numel()


class AblabLoop:
    def __init__(self, corpus, cfg, device, workdir):
        self.trainer = build_trainer(cfg, corpus, device, workdir)
        self.trainer.model.train()
        self.batches = self.trainer.epoch_batches(0)

    def update(self, index: int):
        group = self.batches[index % len(self.batches)]
        self.trainer.update([group])
        src_lens, tgt_lens = self.trainer.train_data.src_lens[group], self.trainer.train_data.tgt_lens[group]
        padded = len(group) * int(tgt_lens.max())
        return int(tgt_lens.sum()), src_lens, tgt_lens, padded


def measure(loop, start: int, steps: int, profile) -> dict[str, float]:
    tokens = padded = 0
    flops = 0.0
    began = time.perf_counter()
    for i in range(start, start + steps):
        n, src_lens, tgt_lens, n_padded = loop.update(i)
        tokens, padded = tokens + n, padded + n_padded
        flops += profile.step_flops(src_lens, tgt_lens)
    seconds = time.perf_counter() - began
    return {
        "tokens_per_s": tokens / seconds,
        "step_ms": 1000 * seconds / steps,
        "flops_per_s": flops / seconds,
        "real_share": tokens / padded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments/configs/baseline.yaml"))
    parser.add_argument("--steps", type=int, default=30, help="updates per loop per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", default=None, help="override train.precision of the config")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    overrides = {"train.device": args.device}
    if args.precision:
        overrides["train.precision"] = args.precision
    cfg = load(args.config, overrides)
    device = pick_device(cfg.train.device, cfg.train.precision)
    corpus = build_corpus(cfg.data, cfg.eval)
    with tempfile.TemporaryDirectory() as workdir:
        ours = AblabLoop(corpus, cfg, device, Path(workdir))
        reference = ReferenceLoop(corpus, cfg, device)
        profile = ours.trainer.profile
        for loop in (reference, ours):
            measure(loop, 0, args.warmup, profile)
        results = {"reference": [], "ablab": []}
        for r in range(args.rounds):
            start = args.warmup + r * args.steps
            results["reference"].append(measure(reference, start, args.steps, profile))
            results["ablab"].append(measure(ours, start, args.steps, profile))

    peak = peak_flops(device, cfg.train.precision)
    peak_fp32 = peak_flops(device, "fp32")
    print(f"device: {describe(device)}   torch {torch.__version__}")
    print(
        f"model: {cfg.model.layers} layers, d_model {cfg.model.d_model}, {cfg.model.heads} heads, "
        f"ff {cfg.model.ff_dim}, vocab {corpus.vocabs.tgt_size}; params ablab "
        f"{count_parameters(ours.trainer.model):,} (tied), reference {count_parameters(reference.model):,}"
    )
    print(f"{args.rounds} rounds x {args.steps} updates per loop, after {args.warmup} warm-up updates\n")
    print(f"{'loop':<10} {'precision':<9} {'tgt tok/s':>10} {'step ms':>8} {'real/padded':>11} {'MFU':>6}")
    summary = {}
    for name, rows in results.items():
        precision = cfg.train.precision if name == "ablab" else "fp32"
        tps = statistics.median(r["tokens_per_s"] for r in rows)
        fps = statistics.median(r["flops_per_s"] for r in rows)
        p = peak if name == "ablab" else peak_fp32
        mfu = fps / p if p else float("nan")
        summary[name] = tps
        print(
            f"{name:<10} {precision:<9} {tps:>10,.0f} {statistics.median(r['step_ms'] for r in rows):>8.0f} "
            f"{statistics.median(r['real_share'] for r in rows):>11.2f} {mfu:>6.3f}"
        )
    print(f"\nspeedup (target tokens/s, median of rounds): {summary['ablab'] / summary['reference']:.2f}x")
    if device.type == "cpu":
        print(
            f"peak used for MFU: best measured 2048^3 matmul, "
            f"{peak / 1e9:.0f} GFLOP/s at {cfg.train.precision}, "
            f"{peak_fp32 / 1e9:.0f} GFLOP/s at fp32"
        )


if __name__ == "__main__":
    main()
