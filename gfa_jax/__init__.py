"""gfa-jax: layer-wise Gradient-Feature Alignment and fast jit-compiled adversarial attacks in JAX."""
from gfa_jax import allocator

__version__ = "0.1.0"

# Before JAX starts its CPU threads: see gfa_jax/allocator.py (XLA:CPU calls 1.3-1.6x faster).
allocator.keep_freed_memory()
