"""How the talk metrics batch their generation: few compiled programs, every prompt answered."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gestalt_jax import config as config_lib
from gestalt_jax.infer import replies
from gestalt_jax.infer import compiles
from gestalt_jax.model.brain import build_brain
from gestalt_jax.text import bytes as byte_tok

PROMPTS = ["what is a mutex?", "hi", "", "please list the files in src", "how are you?", "run the tests"]


def test_ranked_replies_reuse_the_argmax_program_and_compile_one_sampler():
    c = config_lib.load_tier("test")
    c.gen.update(batch_size=8, candidates=3)  # 2 prompts (8 candidates) per ranked batch
    brain = build_brain(c)
    enc = jnp.asarray(byte_tok.encode_left(["x"], c.brain.enc_len))
    dec, _, _ = byte_tok.decoder_pair(["y"], c.brain.dec_len)
    params = nn.meta.unbox(jax.jit(brain.init)(jax.random.key(0), enc, dec)["params"])
    prompts = PROMPTS * 2  # two batches of 8 rows, the second filled up
    greedy = replies.replies(c, brain, params, byte_tok.decode, prompts)
    with compiles.counted() as first:
        ranked = replies.ranked_replies(c, brain, params, byte_tok.decode, prompts)
    with compiles.counted() as again:
        replies.ranked_replies(c, brain, params, byte_tok.decode, prompts[::-1] + prompts[:3])
    # The argmax candidates come from the replies' own program; only the sampler is new.
    assert first["jit(generate_ids)"] == 1, dict(first)
    assert sum(again.values()) == 0, dict(again)
    assert greedy[:len(PROMPTS)] == greedy[len(PROMPTS):]  # a prompt's reply is its own, whatever its batch
    assert len(ranked) == len(prompts)
