"""Do held-out paraphrases land next to the prompt they paraphrase in concept space?

    python benchmarks/concept_neighbours.py --config=configs/small.py --workdir=runs/small

Encodes every prompt of the talk corpus (config.data.talk_files) and every held-out
paraphrase (config.gen.held_out_file) with the trained brain in the workdir, and prints, by
cosine of concept vectors: the share of paraphrases whose nearest training prompt has their
reference response, the mean cosine to the nearest training prompt and to the paraphrased one,
and the median rank of the paraphrased one. A decoder can at best reply to a new prompt as it
replies to the training prompt whose concept is nearest, so the first number bounds held-out
exact match from above for a brain that snaps to its nearest training reply.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Tier config file.", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir holding the trained brain (default runs/<tier>).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import numpy as np

    from gestalt_jax.data import formats
    from gestalt_jax.evals import talk
    from gestalt_jax.infer import trained

    c = _CONFIG.value
    workdir = _WORKDIR.value or f"runs/{c.tier}"
    brain = trained.load(c, workdir, "brain")
    c = brain.config
    train = [p for pairs, _ in formats.load_talk(c.data.talk_files) for p in pairs]
    held = talk.held_out_records(c)

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)

    sim_HxN = unit(brain.concepts([h["prompt"] for h in held])) @ \
        unit(brain.concepts([p["prompt"] for p in train])).T
    responses = np.array([p["response"] for p in train], dtype=object)
    source = np.array([int(np.flatnonzero(responses == h["reference"])[0]) for h in held])
    rows = np.arange(len(held))
    nearest_right = responses[sim_HxN.argmax(1)] == np.array([h["reference"] for h in held], dtype=object)
    rank = (sim_HxN > sim_HxN[rows, source][:, None]).sum(1)
    print(f"| held-out paraphrases | {len(held)} |\n|---|---|\n"
          f"| nearest training prompt has the reference response | {nearest_right.mean():.1%} |\n"
          f"| mean cosine to the nearest training prompt | {sim_HxN.max(1).mean():.3f} |\n"
          f"| mean cosine to the paraphrased prompt | {sim_HxN[rows, source].mean():.3f} |\n"
          f"| median rank of the paraphrased prompt (0 = nearest) | {int(np.median(rank))} of {len(train)} |")


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
