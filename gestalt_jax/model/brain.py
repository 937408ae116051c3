"""The brain: concept encoder → one concept vector → prefix for the language decoder.

Concept encoder: byte ids (left-padded) → transformer → mean pool → concept [B, D].
ConceptProjector: concept → N prefix embeddings [B, N, D].
MemoryProjector: K retrieved concept vectors [B, K, D] → cross-attention source.
LanguageDecoder: [N prefix] + BOS + text → logits at text positions only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gestalt_jax import config as config_lib
from gestalt_jax.model.layers import StackConfig, dense
from gestalt_jax.model.transformer import ByteEncoder, Stack, embedding, stack_config


# Parameters that only memory reaches: without memory, cross-attention is skipped and these
# rightly get no gradient.
MEMORY_PATHS = ("/cross/", "/cross_norm/", "memory_proj/")


class LanguageDecoder(nn.Module):
    """Causal LM over [prefix] + text with optional memory cross-attention and a KV cache.

    Text positions are 0.. from BOS; the prefix gets none (unrotated). While decoding,
    `positions_BxT` gives the text position of each new token and `rope_len` the cache's
    text capacity.
    """
    cfg: StackConfig
    vocab: int
    train: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, tokens_BxT, prefix_BxNxD=None, memory_BxMxD=None, positions_BxT=None,
                 rope_len=None):
        B, T = tokens_BxT.shape
        x = embedding(self.vocab, self.cfg, "embed")(tokens_BxT)
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(T), (B, T))
        positions = positions_BxT
        N = 0
        if prefix_BxNxD is not None:
            N = prefix_BxNxD.shape[1]
            x = jnp.concatenate([prefix_BxNxD.astype(x.dtype), x], axis=1)
            positions = jnp.concatenate([jnp.full((B, N), -1, positions_BxT.dtype), positions_BxT], 1)
        h = Stack(self.cfg, self.train, self.decode, name="stack")(
            x, positions, memory_BxMxD=memory_BxMxD, rope_len=rope_len or T)
        logits = dense(self.vocab, ("embed", "vocab"), self.cfg, "lm_head")(h[:, N:])
        return nn.with_logical_constraint(logits.astype(jnp.float32), ("batch", "length", "vocab"))


class Brain(nn.Module):
    """Encoder, both projectors and the decoder. `__call__` is the SFT forward pass.

    In training, `concept_noise` adds Gaussian noise of that size relative to each concept's
    RMS before the prefix, to teach the decoder a whole training reply from anywhere near its
    concept, so that a new prompt whose concept lands near a known one is not answered with a
    blend of several (how far that goes: BENCHMARKS.md)."""
    enc: StackConfig
    dec: StackConfig
    n_prefix: int
    dec_vocab: int
    ngram_buckets: int = 0
    concept_noise: float = 0.0
    train: bool = False

    def setup(self):
        D = self.dec.d_model
        self.encoder = ByteEncoder(self.enc, self.train, self.ngram_buckets)
        self.concept_proj = dense(self.n_prefix * D, ("embed", "mlp"), self.dec, "concept_proj",
                                  use_bias=True)
        self.memory_proj = dense(D, ("embed", "mlp"), self.dec, "memory_proj", use_bias=True)
        self.decoder = LanguageDecoder(self.dec, self.dec_vocab, self.train)

    def encode(self, enc_ids_BxL):
        """Concept vectors [B, D] (f32): the encoder's mean over real positions."""
        return self.encoder(enc_ids_BxL)[1]

    def prefix(self, concept_BxD):
        return self.concept_proj(concept_BxD).reshape(concept_BxD.shape[0], self.n_prefix, -1)

    def memory(self, memory_BxKxD):
        return None if memory_BxKxD is None else self.memory_proj(memory_BxKxD)

    def __call__(self, enc_ids_BxL, dec_ids_BxT, memory_BxKxD=None):
        """Logits [B, T, V] at text positions, and the concept vectors [B, D]."""
        concept_BxD = self.encode(enc_ids_BxL)
        conditioned_BxD = concept_BxD
        if self.train and self.concept_noise > 0:
            rms_Bx1 = jax.lax.stop_gradient(jnp.sqrt(jnp.mean(jnp.square(concept_BxD), -1, keepdims=True)))
            eps_BxD = jax.random.normal(self.make_rng("dropout"), concept_BxD.shape, concept_BxD.dtype)
            conditioned_BxD = concept_BxD + self.concept_noise * rms_Bx1 * eps_BxD
        logits = self.decoder(dec_ids_BxT, self.prefix(conditioned_BxD), self.memory(memory_BxKxD))
        return logits, concept_BxD


def build_brain(c: ml_collections.ConfigDict, train: bool = False) -> Brain:
    b = c.brain
    enc = stack_config(b, c, layers=b.enc_layers, dropout=b.enc_dropout, causal=False, cross=False,
                       train_len=b.enc_len)
    dec = stack_config(b, c, layers=b.dec_layers, dropout=b.dec_dropout, causal=True, cross=True,
                       train_len=b.dec_len)
    return Brain(enc, dec, b.n_prefix, config_lib.decoder_vocab(c), b.ngram_buckets, c.sft.concept_noise, train)
