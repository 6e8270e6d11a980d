"""No module of the package holds a jax.Array at module level.

A module first imported inside a trace (a lazy import in a jitted loss) would create such a constant
as a tracer of that trace, and every later trace would fail with UnexpectedTracerError; NumPy
constants are safe (this happened to GAIE's Sobel kernels).
"""
import importlib
import pkgutil

import jax
import pytest

import gfa_jax

MODULES = sorted(m.name for m in pkgutil.walk_packages(gfa_jax.__path__, "gfa_jax.") if m.name != "gfa_jax.main"
                 and m.name != "gfa_jax.evaluate")


@pytest.mark.parametrize("name", MODULES)
def test_module_has_no_jax_array_constants(name):
    module = importlib.import_module(name)
    arrays = [attr for attr, value in vars(module).items() if isinstance(value, jax.Array)]
    assert not arrays, f"{name} holds jax arrays {arrays} at module level; use NumPy constants."
