"""Test tier: seconds on CPU; what CI trains and checks."""

from gestalt_jax import config


def get_config():
    return config.base()  # the base holds the test tier's sizes
