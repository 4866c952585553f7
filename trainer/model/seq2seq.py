"""GRU encoder-decoder with global attention (Luong et al. 2015), hidden size ``d_model``.

* Encoder: bidirectional GRU, ``d/2`` per direction, so the memory ``M`` is ``(B, S, d)``.
* Bridge: the decoder's initial state per layer is ``tanh(W_b [h_fwd; h_bwd])``.
* Decoder: a GRU of width ``d`` over the embedded target, ``o_t``.
* Attention, after the GRU (no input feeding, so training runs the GRU over the whole target
  at once): ``a_t = softmax((W_a o_t) M^T / sqrt(d))`` over unmasked source positions,
  ``c_t = a_t M``, and the attentional state ``h~_t = tanh(W_c [c_t; o_t])``.
* Output: ``logits = W_o Drop(h~_t)``, ``W_o`` tied to the target embedding as configured.

Embeddings are scaled by sqrt(d) as in the Transformer, so ``tie_embeddings`` means the same.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ablab.trainer.config.schema import ModelConfig
from ablab.trainer.data.tokenizer import PAD
from ablab.trainer.evaluation.decode import DecodeState
from ablab.trainer.model.dropout import Dropout
from ablab.trainer.model.flops import FlopsProfile, matmul_params
from ablab.trainer.model.masks import padding_mask
from ablab.trainer.model.transformer import attend


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        d, L = cfg.d_model, cfg.layers
        between = cfg.dropout if L > 1 else 0.0
        self.cfg = cfg
        self.src_embed = nn.Embedding(src_vocab, d, padding_idx=PAD)
        self.tgt_embed = (
            self.src_embed if cfg.tie_embeddings == "all" else nn.Embedding(tgt_vocab, d, padding_idx=PAD)
        )
        self.encoder = nn.GRU(d, d // 2, L, batch_first=True, bidirectional=True, dropout=between)
        self.bridge = nn.Linear(d, d)
        self.decoder = nn.GRU(d, d, L, batch_first=True, dropout=between)
        self.attn = nn.Linear(d, d, bias=False)
        self.combine = nn.Linear(2 * d, d)
        self.drop = Dropout(cfg.dropout)
        self.output = nn.Linear(d, tgt_vocab, bias=False)
        for emb in {self.src_embed, self.tgt_embed}:
            nn.init.normal_(emb.weight, std=d**-0.5)
            with torch.no_grad():
                emb.weight[PAD].zero_()
        if cfg.tie_embeddings != "none":
            self.output.weight = self.tgt_embed.weight
        self.grad_checkpointing = False  # GRUs are not checkpointed; kept for a uniform interface

    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        return self.drop(embedding(tokens) * math.sqrt(self.cfg.d_model))

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor):
        """Memory ``(B, S, d)``, its mask ``(B, 1, 1, S)`` and the decoder's ``h_0 (L, B, d)``."""
        B, S = src.shape
        packed = pack_padded_sequence(
            self._embed(self.src_embed, src), src_lens.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h = self.encoder(packed)  # h: (L * 2, B, d/2)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=S)
        h = h.view(self.cfg.layers, 2, B, -1).permute(0, 2, 1, 3).reshape(self.cfg.layers, B, -1)
        return memory, padding_mask(src_lens, S), torch.tanh(self.bridge(h))

    def _attend(self, o: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, need_weights: bool = False):
        q = self.attn(o)[:, None]  # (B, 1, T, d): one head
        context, weights = attend(q, memory[:, None], memory[:, None], mask, 0.0, need_weights)
        return torch.tanh(self.combine(torch.cat([context[:, 0], o], dim=-1))), weights

    def forward(
        self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor, tgt_lens: torch.Tensor
    ) -> torch.Tensor:
        """Attentional states ``(B, T, d)`` for teacher-forced ``tgt_in``."""
        memory, mask, h0 = self.encode(src, src_lens)
        # Padding sits after the last real token, so it cannot affect real positions.
        o, _ = self.decoder(self._embed(self.tgt_embed, tgt_in), h0)
        hidden, _ = self._attend(o, memory, mask)
        return self.drop(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(hidden)

    def start(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecodeState:
        memory, mask, h0 = self.encode(src, src_lens)
        return DecodeState({"memory": memory, "memory_mask": mask, "hidden": h0.transpose(0, 1)})

    def step(self, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
        h = state["hidden"].transpose(0, 1).contiguous()  # (L, B, d)
        o, h = self.decoder(self._embed(self.tgt_embed, tokens[:, None]), h)
        state["hidden"] = h.transpose(0, 1)
        state.step += 1
        hidden, _ = self._attend(o, state["memory"], state["memory_mask"])
        return self.logits(hidden)[:, 0].float().log_softmax(-1)

    @torch.no_grad()
    def attention_maps(
        self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``attention``: ``(T, S)`` probabilities of one teacher-forced pair (batch of 1)."""
        memory, mask, h0 = self.encode(src, src_lens)
        o, _ = self.decoder(self._embed(self.tgt_embed, tgt_in), h0)
        _, weights = self._attend(o, memory, mask, need_weights=True)
        return {"attention": weights[0, 0].float()}

    def flops_profile(self) -> FlopsProfile:
        return FlopsProfile(
            n_enc=matmul_params(self.encoder),
            n_dec=matmul_params(self.decoder) + matmul_params(self.attn) + matmul_params(self.combine),
            d_model=self.cfg.d_model,
            vocab=self.output.weight.shape[0],
            enc_self_layers=0,
            dec_self_layers=0,
            cross_layers=1,
        )
