"""allocator.keep_freed_memory: applied once on glibc Linux unless the user tunes malloc or opts out."""
from __future__ import annotations

import os
import sys

import pytest

from gfa_jax import allocator


@pytest.mark.parametrize("environ", [
    {allocator.ENV_SWITCH: "0"},
    {"MALLOC_ARENA_MAX": "4"},
    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
])
def test_user_settings_or_the_switch_leave_malloc_alone(environ, monkeypatch):
    monkeypatch.setattr(allocator, "_applied", False)
    assert not allocator.keep_freed_memory(environ)
    assert not allocator.is_applied()


@pytest.mark.skipif(not sys.platform.startswith("linux") or allocator.user_has_own_settings()
                    or os.environ.get(allocator.ENV_SWITCH) == "0", reason="glibc's mallopt, not switched off")
def test_applied_by_the_package_import_on_linux():
    # tests/ import gfa_jax before any computation; CI sets no MALLOC_* variable.
    assert allocator.is_applied()
    assert allocator.keep_freed_memory({})  # idempotent
