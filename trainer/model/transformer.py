"""Transformer encoder-decoder (Vaswani et al. 2017) with pre- or post-LayerNorm.

Shapes: B batch, S source length, T target length, d ``d_model``, H heads, d_h = d / H.

* Embeddings are scaled by sqrt(d) and summed with sinusoidal positions
  ``PE(p, 2i) = sin(p / 10000^(2i/d))``, ``PE(p, 2i+1) = cos(p / 10000^(2i/d))``.
* Attention is ``softmax(Q K^T / sqrt(d_h)) V`` through ``F.scaled_dot_product_attention``,
  with masks from :mod:`ablab.trainer.model.masks` (True = may attend).
* Dropout sits in the four places of the paper's recipe: on embeddings + positions, on each
  sublayer output before the residual add, on the attention probabilities, and after the
  feed-forward activation.
* ``post`` norm: ``x = LN(x + Drop(F(x)))``; ``pre`` norm: ``x = x + Drop(F(LN(x)))`` with a
  final LN on the encoder and decoder outputs.
* Incremental decoding caches the decoder self-attention keys/values and the projected
  memory, so a step costs O(t) rather than re-running the prefix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ablab.trainer.config.schema import ModelConfig
from ablab.trainer.data.tokenizer import PAD
from ablab.trainer.evaluation.decode import DecodeState
from ablab.trainer.model.dropout import Dropout
from ablab.trainer.model.flops import FlopsProfile, matmul_params
from ablab.trainer.model.masks import causal_mask, decoder_self_mask, padding_mask


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention of ``q (B,H,Tq,dh)`` over ``k, v (B,H,Tk,dh)``.

    With ``need_weights`` the probabilities ``(B,H,Tq,Tk)`` are computed explicitly and
    returned too (for attention maps; no dropout is applied then).
    """
    if not need_weights:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out, None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.float().softmax(-1).to(v.dtype)
    return weights @ v, weights


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    B, T, d = x.shape
    return x.view(B, T, heads, d // heads).transpose(1, 2)  # (B, H, T, dh)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    B, H, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * dh)  # (B, T, d)


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: DecodeState | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = (_split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        if cache is not None:  # incremental decoding: append this step's keys and values
            k, v = cache.extend(f"self_k{layer}", k), cache.extend(f"self_v{layer}", v)
        p = self.dropout if self.training else 0.0
        y, w = attend(q, k, v, mask, p, need_weights)
        return self.out(_merge_heads(y)), w


class CrossAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(memory).chunk(2, dim=-1)
        return _split_heads(k, self.heads), _split_heads(v, self.heads)

    def forward(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = _split_heads(self.q(x), self.heads)
        p = self.dropout if self.training else 0.0
        y, w = attend(q, *memory_kv, mask, p, need_weights)
        return self.out(_merge_heads(y)), w


class FeedForward(nn.Module):
    """``W_2 Drop(act(W_1 x + b_1)) + b_2``."""

    def __init__(self, d: int, ff_dim: int, act_dropout: float, activation: str):
        super().__init__()
        self.inner = nn.Linear(d, ff_dim)
        self.outer = nn.Linear(ff_dim, d)
        self.activation = F.relu if activation == "relu" else F.gelu
        self.drop = Dropout(act_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.drop(self.activation(self.inner(x))))


class Residual(nn.Module):
    """One sublayer with its residual connection, dropout and LayerNorm (pre or post)."""

    def __init__(self, d: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.drop = Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, sublayer) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, weights = sublayer(self.norm(x) if self.pre_norm else x)
        x = x + self.drop(y)
        return (x if self.pre_norm else self.norm(x)), weights


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, attn_dropout: float, act_dropout: float):
        super().__init__()
        pre = cfg.norm == "pre"
        self.attn = SelfAttention(cfg.d_model, cfg.heads, attn_dropout)
        self.ff = FeedForward(cfg.d_model, cfg.ff_dim, act_dropout, cfg.activation)
        self.attn_block = Residual(cfg.d_model, cfg.dropout, pre)
        self.ff_block = Residual(cfg.d_model, cfg.dropout, pre)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False):
        x, w = self.attn_block(x, lambda h: self.attn(h, mask, need_weights=need_weights))
        x, _ = self.ff_block(x, lambda h: (self.ff(h), None))
        return x, w


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, attn_dropout: float, act_dropout: float):
        super().__init__()
        pre = cfg.norm == "pre"
        self.self_attn = SelfAttention(cfg.d_model, cfg.heads, attn_dropout)
        self.cross_attn = CrossAttention(cfg.d_model, cfg.heads, attn_dropout)
        self.ff = FeedForward(cfg.d_model, cfg.ff_dim, act_dropout, cfg.activation)
        self.self_block = Residual(cfg.d_model, cfg.dropout, pre)
        self.cross_block = Residual(cfg.d_model, cfg.dropout, pre)
        self.ff_block = Residual(cfg.d_model, cfg.dropout, pre)

    def forward(
        self,
        x: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        memory_mask: torch.Tensor,
        cache: DecodeState | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ):
        x, _ = self.self_block(x, lambda h: self.self_attn(h, self_mask, cache, layer))
        x, w = self.cross_block(x, lambda h: self.cross_attn(h, memory_kv, memory_mask, need_weights))
        x, _ = self.ff_block(x, lambda h: (self.ff(h), None))
        return x, w


class SinusoidalPositions(nn.Module):
    def __init__(self, d: int, max_len: int = 1024):
        super().__init__()
        self.d = d
        self.register_buffer("table", self._table(max_len), persistent=False)

    def _table(self, length: int) -> torch.Tensor:
        position = torch.arange(length, dtype=torch.float32)[:, None]
        inv_freq = torch.exp(torch.arange(0, self.d, 2, dtype=torch.float32) * (-math.log(1e4) / self.d))
        table = torch.zeros(length, self.d)
        table[:, 0::2] = torch.sin(position * inv_freq)
        table[:, 1::2] = torch.cos(position * inv_freq[: self.d // 2])
        return table

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        if offset + length > self.table.shape[0]:
            self.table = self._table(2 * (offset + length)).to(self.table.device)
        return self.table[offset : offset + length]  # (length, d)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        d = cfg.d_model
        attn_dropout = cfg.dropout if cfg.attn_dropout is None else cfg.attn_dropout
        act_dropout = cfg.dropout if cfg.act_dropout is None else cfg.act_dropout
        self.cfg = cfg
        self.src_embed = nn.Embedding(src_vocab, d, padding_idx=PAD)
        self.tgt_embed = (
            self.src_embed if cfg.tie_embeddings == "all" else nn.Embedding(tgt_vocab, d, padding_idx=PAD)
        )
        self.positions = SinusoidalPositions(d)
        self.embed_drop = Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg, attn_dropout, act_dropout) for _ in range(cfg.layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg, attn_dropout, act_dropout) for _ in range(cfg.layers))
        final_norm = cfg.norm == "pre"
        self.encoder_norm = nn.LayerNorm(d) if final_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d) if final_norm else nn.Identity()
        self.output = nn.Linear(d, tgt_vocab, bias=False)
        self.grad_checkpointing = False
        self._init_weights()
        if cfg.tie_embeddings != "none":
            self.output.weight = self.tgt_embed.weight

    def _init_weights(self) -> None:
        """Xavier-uniform linear weights, zero biases, embeddings N(0, d^-1/2), pad row zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=self.cfg.d_model**-0.5)
                with torch.no_grad():
                    module.weight[PAD].zero_()

    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = embedding(tokens) * math.sqrt(self.cfg.d_model)  # (B, T, d)
        return self.embed_drop(x + self.positions(tokens.shape[1], offset))

    def _run(self, layer: nn.Module, *args):
        if self.grad_checkpointing and self.training:
            return checkpoint(layer, *args, use_reentrant=False)
        return layer(*args)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory ``(B, S, d)`` and its padding mask ``(B, 1, 1, S)``."""
        mask = padding_mask(src_lens, src.shape[1])
        x = self._embed(self.src_embed, src)
        for layer in self.encoder:
            x, _ = self._run(layer, x, mask)
        return self.encoder_norm(x), mask

    def forward(
        self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor, tgt_lens: torch.Tensor
    ) -> torch.Tensor:
        """Decoder states ``(B, T, d)`` for teacher-forced ``tgt_in``; :meth:`logits` maps them."""
        memory, memory_mask = self.encode(src, src_lens)
        self_mask = decoder_self_mask(tgt_lens, tgt_in.shape[1])
        x = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder:
            memory_kv = layer.cross_attn.project_memory(memory)
            x, _ = self._run(layer, x, self_mask, memory_kv, memory_mask)
        return self.decoder_norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(hidden)  # (..., V)

    # -- incremental decoding -------------------------------------------------------------

    def start(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecodeState:
        """Encode the source and cache each decoder layer's projected memory."""
        memory, memory_mask = self.encode(src, src_lens)
        tensors = {"memory_mask": memory_mask}
        for i, layer in enumerate(self.decoder):
            tensors[f"mem_k{i}"], tensors[f"mem_v{i}"] = layer.cross_attn.project_memory(memory)
        return DecodeState(tensors)

    def step(self, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Log-probabilities ``(B, V)`` of the next token after ``tokens (B,)``; updates ``state``."""
        x = self._embed(self.tgt_embed, tokens[:, None], offset=state.step)  # (B, 1, d)
        for i, layer in enumerate(self.decoder):
            memory_kv = (state[f"mem_k{i}"], state[f"mem_v{i}"])
            x, _ = layer(x, None, memory_kv, state["memory_mask"], cache=state, layer=i)
        state.step += 1
        return self.logits(self.decoder_norm(x))[:, 0].float().log_softmax(-1)

    @torch.no_grad()
    def attention_maps(
        self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Attention probabilities for one teacher-forced pair (batch of 1).

        ``encoder_self``: ``(L, H, S, S)``; ``cross``: ``(L, H, T, S)`` (decoder over source).
        """
        mask = padding_mask(src_lens, src.shape[1])
        x, enc = self._embed(self.src_embed, src), []
        for layer in self.encoder:
            x, w = layer(x, mask, need_weights=True)
            enc.append(w[0])
        memory = self.encoder_norm(x)
        y, cross = self._embed(self.tgt_embed, tgt_in), []
        self_mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        for layer in self.decoder:
            y, w = layer(y, self_mask, layer.cross_attn.project_memory(memory), mask, need_weights=True)
            cross.append(w[0])
        return {"encoder_self": torch.stack(enc).float(), "cross": torch.stack(cross).float()}

    def flops_profile(self) -> FlopsProfile:
        L = self.cfg.layers
        return FlopsProfile(
            n_enc=matmul_params(self.encoder),
            n_dec=matmul_params(self.decoder),
            d_model=self.cfg.d_model,
            vocab=self.output.weight.shape[0],
            enc_self_layers=L,
            dec_self_layers=L,
            cross_layers=L,
        )
