"""gfa-jax: layer-wise Gradient-Feature Alignment and fast jit-compiled adversarial attacks in JAX."""
__version__ = "0.1.0"
