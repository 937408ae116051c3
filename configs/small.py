"""Small tier: the whole pipeline trains on a 2-core laptop CPU."""

from gestalt_jax import config


def get_config():
    c = config.base()
    c.tier = "small"
    c.brain.update(d_model=128, heads=4, d_ff=512, enc_layers=1, dec_layers=3,
                   n_prefix=8, mem_k=4, mem_capacity=256, enc_len=96, dec_len=192,
                   ngram_buckets=16384)
    # Two planner layers, not three: the same held-out plans (82.7%) and more held-out arguments
    # (67.6% against 63.5%) in 285 s of planner instead of 337 (BENCHMARKS.md, History, "The small
    # tier's recipe after packing").
    # Two planners and one policy. The README main job with them in a fresh clone of cd153bf took 817 s
    # (brain 583 s then the policy 216 s on core 0, the planners 388 + 377 s on core 1) against 620 s
    # for one planner, and `gestalt eval` gives held-out plans 89.5% against 88.0%, composites 28
    # against 26 of 37, arguments 79.7% against 77.0%, whole plans 112 against 110 of 133, training
    # goals 100% against 99.9% and val plans 92.5% against 90.0% (BENCHMARKS.md, History, "issue 19,
    # eleventh round"). On a slower day the same job took 1030 s (at 5c49567, eighth round); two
    # planners of 1100 steps (862 s) got no more whole plans than one (tenth round).
    # Three planners, one of them after the brain on core 0 (pipeline.side_by_side_groups): in a
    # fresh clone of 170ae28 the job took 943 s (15 min 45 s; brain 575 s and planner 353 s on core 0,
    # planners 365 + 355 s and the policy 209 s on core 1), 45 s past the tier's 15 minutes, and
    # `gestalt eval` gives held-out plans 92.5%, composites 31 of 37, arguments 87.8% and training
    # plans 100%, against 89.5%, 29 and 79.7% for two (793 s at da29327); three of 1350 steps took
    # 900 s and got 81.1% of the arguments (BENCHMARKS.md, History, "issue 19, thirteenth round").
    # With the steps cheaper (layers.kernel_dot_general), 832 s at 7e57343 (13 min 54 s): held-out
    # plans 93.2%, composites 31, arguments 85.1%, training plans 99.7%, 99.9% decoded at 2c800c3
    # (History, "issue 19, fourteenth round"); 830 s at 20803bf (13 min 52 s), training plans and
    # arguments 100% (the decode: "issue 19, fifteenth round").
    c.planner.update(d_model=128, heads=4, d_ff=512, layers=2, max_len=160, ngram_buckets=16384, members=3)
    c.policy.update(d_model=128, heads=4, d_ff=512, layers=2, max_len=128, ngram_buckets=16384, members=1)
    # Packed rows a step: the brain's rows (96 prompt bytes, 200 decoder positions) hold about 2.8
    # examples, the planner's (160) about 2, the policy's (128) 2.6.
    for phase in ("sft", "planner_sft", "policy_sft"):
        c[phase].update(batch_size=16)
    # The brain is kept for reproducing its training replies. With concept noise 1.0 and the
    # paraphrases, AdamW at 1e-3 reproduced 40% of the training prompts after 2500 steps of 12
    # rows, at 2e-3 83%; Muon for the hidden matrices 99%, and 99.2% of the 256-pair sample at
    # step 2000 of 2300 of 16 rows (BENCHMARKS.md). With the rest (embeddings, n-gram tables, norms)
    # at 2e-3 instead of 1e-3 it fits sooner: 96.5% of the training prompts after 1500 steps (ranked
    # held-out chrF 46.4) against 98.5% (45.7) after 2100, in two thirds of the time; 1400 steps
    # reproduce 94.0% (ranked chrF 47.6) on two cores. On one core beside the goal phases
    # (config.parallel_phases) 1400 steps reproduce 93.3% (ranked chrF 50.1), 1500 steps 97.0% but
    # a ranked chrF of 42.9, under the tier's 45, in 80 s more (BENCHMARKS.md, "Pipeline wall time").
    # Its best step is its last in every run (the fit only grows), so it validates and saves every
    # 300 steps (and at the last) rather than 100: each validation with its two saves (latest and
    # best) cost about 1.4 s of the 2 cores (BENCHMARKS.md, History, "Fewer validations").
    c.sft.update(optimizer="muon", lr=2e-3, steps=1400, patience=40, eval_every=300)
    # The goal phases' best val error came at step 1300 in runs of 1500 and 2000 steps, and at
    # 1200 (planner) and 1400 (policy) in this schedule, validated every 100 steps; every 200 keeps
    # those best steps and half the validations with their saves (about 0.6 s each).
    # They keep their last step (select_from=1.0): on 80 val goals their val error stays within a
    # few goals from step 600 on, and an early pick fit 96.4% of the training goals in a second
    # seed's run where the last step fit 99.3% (BENCHMARKS.md, History, "issue 19, fourth round").
    # The planner at a peak rate of 2e-3 rather than 1.5e-3: over seven seeds the same share of
    # held-out plans (83.9% against 83.6% in the mean; val a goal fewer) and more of their arguments
    # (70.5% against 67.2%; val 85.7% against 82.1%) (BENCHMARKS.md, History, "issue 19, seventh round").
    # 1500 steps: three planners of 1650 took 846 s at fca08c7 but 892 and 900 s of the 900 in
    # slower hours of the machine (ff5b7ac, c7ac99c), for one training goal's argument more and
    # held-out 92.5% / 86.5% / 30 composites against 93.2% / 85.1% / 31 (decoded at 2c800c3;
    # BENCHMARKS.md, History, "issue 19, fourteenth round").
    c.planner_sft.update(steps=1500, lr=2e-3, eval_every=200, select_from=1.0)
    # The planner's heads at 80 positions of each 160-position row, the ones the loss reads (the
    # built-in goals' longest plan trains 75; a row holds about 30): 10.2 GFLOP a step instead of
    # 11.7, 265 ms instead of 296 on one core; in the README main job the planner phases took 349 + 347 s
    # against 380 + 377 (BENCHMARKS.md, History, "issue 19, twelfth round"); the same loss.
    c.planner_sft.trained_len = 80
    c.policy_sft.update(steps=1500, lr=2e-3, patience=10, eval_every=200, select_from=1.0)
    # The talk metrics reply to every training prompt of the built-in corpus (596 after the val
    # split), not a sample. `gestalt eval` measures them; brain SFT leaves them out, 12 s of the
    # core that sets the main job's time (the brain, then planner 0).
    c.gen.talk_eval_max = 1024
    c.sft.talk_metrics = False
    return c
