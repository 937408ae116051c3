"""Reply generation speed (tokens/s), KV cache vs full recompute, per tier and batch size.

    python benchmarks/generate_speed.py --tiers=small,default --batches=1,16 --max_new=128 \\
        --uncached_max_new=default:32

Random parameters, greedy decoding with the default n-gram penalty, float32. Each setting
is compiled and run once, then timed `--repeats` times; the best time counts, because on a
shared machine the slower runs measure the neighbours. tokens/s = rows × loop steps / time
(the loop stops early only if every row emits EOS). Prints a Markdown table.
"""

from __future__ import annotations

import time

from absl import app, flags, logging

_TIERS = flags.DEFINE_list("tiers", ["small", "default"], "Tiers whose brain generates.")
_BATCHES = flags.DEFINE_list("batches", ["1", "16"], "Batch sizes (prompts per call).")
_MAX_NEW = flags.DEFINE_integer("max_new", 128, "New tokens per reply.")
_UNCACHED_MAX_NEW = flags.DEFINE_list(
    "uncached_max_new", ["default:32"], "tier:n — fewer new tokens for a slow tier's full recompute.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs per setting after the compiling run.")

PROMPTS = ["what is a mutex?", "hi", "please list the files in src and read main.py",
           "run the tests and fix what fails", "how are you today?", "search for TODO in the repo"]


def main(argv):
    del argv
    from gestalt_jax import huge_pages
    huge_pages.rerun()  # timed as `gestalt` runs (config.huge_pages)
    logging.set_verbosity(logging.WARNING)  # backend INFO lines would break up the table
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gestalt_jax import config as config_lib
    from gestalt_jax.infer.generate import generate
    from gestalt_jax.infer.sampling import Sampling
    from gestalt_jax.model.brain import build_brain
    from gestalt_jax.text import bytes as byte_tok
    from gestalt_jax.text.bytes import EOS

    uncached_max_new = {t: int(n) for t, n in (s.split(":") for s in _UNCACHED_MAX_NEW.value)}
    print(f"devices: {jax.devices()[0].device_kind} x{len(jax.devices())}")
    print("| tier | batch | path | new tokens | ms/token step | tokens/s | cache speed-up |")
    print("|---|---|---|---|---|---|---|")
    for tier in _TIERS.value:
        c = config_lib.load_tier(tier)
        c.compute_dtype = "float32"  # CPU has no fast bf16 path
        brain = build_brain(c)
        enc = jnp.asarray(byte_tok.encode_left(["x"], c.brain.enc_len))
        dec, _, _ = byte_tok.decoder_pair(["y"], c.brain.dec_len)
        params = nn.meta.unbox(jax.jit(brain.init)(jax.random.key(0), enc, dec)["params"])
        for B in map(int, _BATCHES.value):
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(B)]
            slow_new = uncached_max_new.get(tier, _MAX_NEW.value)
            # The cached path also runs at the recompute length, so the speed-up compares like with like.
            lengths = sorted({_MAX_NEW.value, slow_new}, reverse=True)
            settings = [(True, n) for n in lengths] + [(False, slow_new)]
            rates = {}
            for cached, max_new in settings:
                times = []  # the first run compiles
                for _ in range(1 + _REPEATS.value):
                    start = time.perf_counter()
                    ids = generate(brain, params, prompts, max_new, Sampling(), cached=cached)
                    times.append(time.perf_counter() - start)
                best = min(times[1:])
                ended_B = (ids == EOS).any(axis=1)
                steps = max_new if not ended_B.all() else int(np.argmax(ids == EOS, axis=1).max()) + 1
                rates[cached, max_new] = B * steps / best
                speedup = "" if cached else f"{rates[True, max_new] / rates[False, max_new]:.1f}×"
                print(f"| {tier} | {B} | {'KV cache' if cached else 'recompute'} | {steps} | "
                      f"{1e3 * best / steps:.2f} | {rates[cached, max_new]:,.0f} | {speedup} |", flush=True)

if __name__ == "__main__":
    app.run(main)
