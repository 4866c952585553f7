"""Training throughput of the ablab trainer against a seed-style reference loop, same run.

The reference is written the way the seed tutorials write it: ``nn.Transformer`` with
separate embeddings, sinusoidal positions and a linear generator; fixed-size batches of
128 sentences in random order, padded to their longest sentence; the causal and
padding masks rebuilt for every batch; ``nn.CrossEntropyLoss(ignore_index=pad,
label_smoothing=0.1)`` over every padded position; Adam with the paper's settings; gradient
clipping at 1.0. Both loops see the same Multi30k training pairs with the same BPE
vocabulary and the same model size (layers, d_model, heads, ff_dim, dropout). Throughput is
non-pad target tokens per second of the whole update (batch assembly included), measured in
alternating rounds so that load on the machine affects both alike; MFU uses the FLOP formula
of trainer/model/flops.py over the device's peak.

    python benchmarks/throughput.py                        # baseline config, fp32 and bf16
    python benchmarks/throughput.py --precisions fp32      # one precision only

Both loops run in each precision (the seed-style loop under ``torch.autocast`` for bf16), so the
speedup is at equal precision; the table also says what ``train.precision: auto`` picks here.
MFU is against this machine's peak (:mod:`ablab.trainer.hardware.peak`: the best native matmul rate).
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

from ablab.trainer.build import build_corpus, count_parameters
from ablab.trainer.config.files import load
from ablab.trainer.data.tokenizer import PAD
from ablab.trainer.hardware.device import describe, device_kind, pick_device
from ablab.trainer.hardware.peak import peak_flops
from ablab.trainer.hardware.precision import emulation_note, resolve
from ablab.trainer.run import build_trainer

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
    def __init__(self, corpus, cfg, device, precision: str):
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
        self.data, self.device, self.precision = corpus.train, device, precision
        order = np.random.default_rng(0).permutation(len(self.data))
        self.batches = [order[i : i + 128] for i in range(0, len(order), 128)]

    def update(self, index: int) -> int:
        batch = self.data.collate(self.batches[index % len(self.batches)])
        src, tgt_in, tgt_out = (t.to(self.device) for t in (batch.src, batch.tgt_in, batch.tgt_out))
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1)).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            logits = self.model(src, tgt_in, tgt_mask, src == PAD, tgt_in == PAD)
            loss = self.criterion(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return batch.n_tgt_tokens, batch.src_lens.numpy(), batch.tgt_lens.numpy(), tgt_out.numel()


class AblabLoop:
    def __init__(self, corpus, cfg, device, workdir, precision: str):
        self.trainer = build_trainer(cfg, corpus, device, workdir, precision=precision)
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
    parser.add_argument("--precisions", default="fp32,bf16", help="the precisions to measure, side by side")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    cfg = load(args.config, {"train.device": args.device})
    device = pick_device(cfg.train.device, cfg.train.precision)
    corpus = build_corpus(cfg.data, cfg.eval)
    precisions = args.precisions.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        loops = {}
        for p in precisions:
            loops[("seed-style", p)] = ReferenceLoop(corpus, cfg, device, p)
            loops[("ablab", p)] = AblabLoop(corpus, cfg, device, Path(workdir) / p, p)
        profile = loops[("ablab", precisions[0])].trainer.profile
        # an emulated precision is 10-20x slower: one round of 3 updates keeps the run in minutes
        emulated = {p: emulation_note(p, device) is not None for p in precisions}
        steps = {p: 3 if emulated[p] else args.steps for p in precisions}
        rounds = {p: 1 if emulated[p] else args.rounds for p in precisions}
        for (_, p), loop in loops.items():
            measure(loop, 0, 1 if emulated[p] else args.warmup, profile)
        for r in range(args.rounds):  # alternating, so that load on the machine affects all alike
            for (name, p), loop in loops.items():
                if r < rounds[p]:
                    start = args.warmup + r * steps[p]
                    results.setdefault((name, p), []).append(measure(loop, start, steps[p], profile))

    peak = peak_flops(device, "fp32")  # the best native rate of any precision (ablab.trainer.hardware.peak)
    print(f"device: {describe(device)}   torch {torch.__version__}   peak for MFU {peak / 1e9:,.0f} GFLOP/s")
    print(
        f"model: {cfg.model.layers} layers, d_model {cfg.model.d_model}, {cfg.model.heads} heads, "
        f"ff {cfg.model.ff_dim}, vocab {corpus.vocabs.tgt_size}; params ablab "
        f"{count_parameters(loops[('ablab', precisions[0])].trainer.model):,} (tied), seed-style "
        f"{count_parameters(loops[('seed-style', precisions[0])].model):,}"
    )
    runs = ", ".join(f"{rounds[p]} x {steps[p]} updates at {p}" for p in precisions)
    print(f"rounds x updates per loop: {runs}\n")
    print(f"{'loop':<11} {'precision':<9} {'tgt tok/s':>10} {'step ms':>8} {'real/padded':>11} {'MFU':>6}")
    tps = {}
    for (name, p), rows in results.items():
        tps[(name, p)] = statistics.median(r["tokens_per_s"] for r in rows)
        mfu = statistics.median(r["flops_per_s"] for r in rows) / peak if peak else float("nan")
        note = " (emulated)" if emulated[p] else ""
        step_ms, real = (statistics.median(r[k] for r in rows) for k in ("step_ms", "real_share"))
        print(f"{name:<11} {p:<9} {tps[(name, p)]:>10,.0f} {step_ms:>8.0f} {real:>11.2f} {mfu:>6.3f}{note}")
    auto = resolve("auto", device)
    print(f"\ntrain.precision auto picks {auto} here ({device_kind(device)})")
    if {"fp32", "bf16"} <= set(precisions):
        print(f"ablab bf16 / fp32: {tps[('ablab', 'bf16')] / tps[('ablab', 'fp32')]:.2f}x")
    for p in precisions:
        print(f"ablab / seed-style at {p}: {tps[('ablab', p)] / tps[('seed-style', p)]:.2f}x")


if __name__ == "__main__":
    main()
