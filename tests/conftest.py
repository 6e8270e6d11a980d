"""Test setup: several CPU devices so sharding is exercised, and small shared fixtures."""
import os

# Must happen before jax is imported anywhere: four host devices for the sharding tests.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
