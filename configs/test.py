"""Test tier: seconds on CPU; what CI trains and checks."""

from gestalt_jax import config


def get_config():
    c = config.base()  # the base holds the test tier's sizes
    # The talk metrics at the end of brain SFT reply to 16 training and 16 held-out prompts, with
    # 2 sampled candidates each for the ranked ones: enough to exercise every metric, and a test
    # tier run spends its time training rather than generating.
    c.gen.update(talk_eval_max=16, candidates=2)
    return c
