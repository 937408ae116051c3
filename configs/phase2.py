"""Phase 2 tier: ~200M-parameter brain, bf16 compute, remat, Muon, FSDP over every device."""

from gestalt_jax import config


def get_config():
    c = config.base()
    c.tier = "phase2"
    c.compute_dtype = "bfloat16"
    c.remat = True
    c.brain.update(d_model=1024, heads=16, d_ff=4096, enc_layers=8, dec_layers=8,
                   n_prefix=16, mem_k=8, mem_capacity=4096, enc_len=128, dec_len=256,
                   ngram_buckets=65536)
    c.planner.update(d_model=1024, heads=16, d_ff=4096, layers=8, max_len=256, ngram_buckets=65536)
    c.policy.update(d_model=512, heads=8, d_ff=2048, layers=4, max_len=128, ngram_buckets=65536)
    for phase in ("sft", "planner_sft", "policy_sft"):
        c[phase].update(steps=50000, batch_size=256, eval_every=1000, patience=10,
                        optimizer="muon", weight_decay=0.1)
    c.mesh.update(data=1, fsdp=-1, tensor=1)
    c.check.batch_size = 1
    return c
