"""Default tier: one GPU."""

from gestalt_jax import config


def get_config():
    c = config.base()
    c.tier = "default"
    c.brain.update(d_model=512, heads=8, d_ff=2048, enc_layers=1, dec_layers=4,
                   n_prefix=16, mem_k=8, mem_capacity=1024, enc_len=128, dec_len=256,
                   ngram_buckets=32768)
    c.planner.update(d_model=512, heads=8, d_ff=2048, layers=4, max_len=256, ngram_buckets=32768)
    c.policy.update(d_model=256, heads=4, d_ff=1024, layers=3, max_len=128, ngram_buckets=32768)
    for phase in ("sft", "planner_sft", "policy_sft"):
        c[phase].update(steps=20000, batch_size=48, eval_every=500, lr=3e-4, patience=8)
    c.check.batch_size = 2
    return c
