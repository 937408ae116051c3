"""Every test process, and every `gestalt` subprocess a test starts (through the tiers' default
config.compile_cache), shares one persistent XLA compilation cache: a step the suite already
compiled loads from it."""

from pathlib import Path

import jax

from gestalt_jax import config as config_lib

jax.config.update("jax_compilation_cache_dir", str(Path(config_lib.base().compile_cache).expanduser()))


def pytest_collection_modifyitems(items):
    """The tests marked long start first: the two workers (pytest-xdist) then share out the short
    ones at the end instead of one waiting on a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
