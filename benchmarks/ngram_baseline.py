"""How far the goal's character n-grams alone go: a linear classifier on the n-gram bag.

    python benchmarks/ngram_baseline.py --buckets=16384 --steps=1500

Features are the buckets the policy hashes a goal's n-grams into (model/ngrams.py; the
planner hashes its prompt, the goal between a "Goal" and a "Plan" line, the same way),
counted per goal and L2-normalised; two softmax classifiers (intent, and the whole action
sequence as one class) train with Adam on datasets/goals/train.jsonl + synthetic.jsonl and
are scored on held_out.jsonl. Prints a Markdown table. This is the baseline the planner and
policy should at least match on held-out phrasings.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags, logging

_BUCKETS = flags.DEFINE_integer("buckets", 16384, "n-gram table rows (config.policy.ngram_buckets).")
_STEPS = flags.DEFINE_integer("steps", 1500, "Adam steps per classifier.")
_BATCH = flags.DEFINE_integer("batch", 256, "Goals per step.")

GOALS = Path(__file__).resolve().parent.parent / "datasets" / "goals"


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from gestalt_jax.data.examples import load_goals
    from gestalt_jax.model import ngrams
    from gestalt_jax.text import bytes as byte_tok

    def features(records):
        ids = jnp.asarray(byte_tok.encode_left([r["goal"] for r in records], 256))
        ids = jnp.pad(ids, ((0, 0), (0, 1)), constant_values=byte_tok.PAD)  # a boundary after the text
        x = np.zeros((len(records), _BUCKETS.value), np.float32)
        for n in ngrams.ORDERS:
            b, keep, _ = ngrams.ngram_buckets(ids, ids < 256, n, _BUCKETS.value)
            rows = np.broadcast_to(np.arange(len(records))[:, None], b.shape)
            np.add.at(x, (rows[np.asarray(keep)], np.asarray(b)[np.asarray(keep)]), 1.0)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)

    train = load_goals(GOALS / "train.jsonl") + load_goals(GOALS / "synthetic.jsonl")
    held = load_goals(GOALS / "held_out.jsonl")
    x_train, x_held = features(train), features(held)
    print(f"| label | classes | train acc | held-out acc |  ({len(train)} training goals, {len(held)} held out)")
    print("|---|---|---|---|")
    for label, of in (("intent", lambda r: r["intent"]), ("actions", lambda r: " ".join(r["actions"]))):
        classes = sorted({of(r) for r in train + held})
        index = {k: i for i, k in enumerate(classes)}
        y_train = np.array([index[of(r)] for r in train])
        y_held = np.array([index[of(r)] for r in held])
        params = (jnp.zeros((_BUCKETS.value, len(classes))), jnp.zeros(len(classes)))
        opt = optax.adam(1e-2)
        state = opt.init(params)

        @jax.jit
        def step(params, state, x, y):
            def loss(p):
                return optax.softmax_cross_entropy_with_integer_labels(x @ p[0] + p[1], y).mean()
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        rng = np.random.default_rng(0)
        for _ in range(_STEPS.value):
            i = rng.integers(0, len(train), _BATCH.value)
            params, state = step(params, state, x_train[i], y_train[i])

        def acc(x, y):
            return float(np.mean(np.argmax(x @ np.asarray(params[0]) + np.asarray(params[1]), -1) == y))
        print(f"| {label} | {len(classes)} | {100 * acc(x_train, y_train):.1f} | {100 * acc(x_held, y_held):.1f} |")


if __name__ == "__main__":
    app.run(main)
