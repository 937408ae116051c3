"""Every test process, and every `gestalt` subprocess a test starts (through the tiers' default
config.compile_cache), shares one persistent XLA compilation cache: a step the suite already
compiled loads from it."""

from pathlib import Path

import jax

from gestalt_jax import config as config_lib

jax.config.update("jax_compilation_cache_dir", str(Path(config_lib.base().compile_cache).expanduser()))
