"""gestalt_jax: a concept-bottleneck brain (encoder, decoder, planner, policy) in JAX/Flax."""

__version__ = "0.1.0"
