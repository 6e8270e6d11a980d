"""Keep freed memory in the process: XLA:CPU's per-call buffers then cost no page faults.

Why (issue 15, ``results/benchmarks/README.md``): every call of a compiled XLA:CPU program
allocates its temporary buffers and frees them when it returns. glibc's malloc serves large blocks
with ``mmap`` and gives them back with ``munmap``, so the next call touches fresh pages and the
kernel zeroes each one on its first write. A ``perf record`` of the paper CNN's input gradient at
batch 256 (one FGSM step) spent 26 % of its samples in the kernel (``exc_page_fault``,
``clear_page_erms``, memcg charging); with the settings below 2 %, and the call took 0.12 s
instead of 0.20 s. PyTorch pays the same cost through the same malloc (its FGSM: 0.157 s ->
0.111 s), so benchmarks that time both in one process give both the same allocator.

The settings: no ``mmap`` for large blocks (``M_MMAP_MAX = 0``), no trimming of the heap's top
(``M_TRIM_THRESHOLD`` at its maximum) and one arena for every thread (``M_ARENA_MAX = 1``: thread
arenas' heaps are capped at 64 MB and trimmed on their own, which brought the faults back). The
cost: the process keeps its peak heap until it exits instead of returning freed memory. They must be
set before JAX starts its CPU threads, which is why importing ``gfa_jax`` applies them.

``GFA_JAX_KEEP_FREED_MEMORY=0`` leaves malloc as it is; so does any ``MALLOC_*`` or
``GLIBC_TUNABLES`` setting of your own, and any platform without glibc's ``mallopt``.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys

ENV_SWITCH = "GFA_JAX_KEEP_FREED_MEMORY"

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_ARENA_MAX, 1))

_log = logging.getLogger(__name__)
_applied = False


def user_has_own_settings(environ=os.environ) -> bool:
    """Whether the environment already tunes malloc (its values win over ours)."""
    return any(name.startswith("MALLOC_") for name in environ) or "malloc" in environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory(environ=os.environ) -> bool:
    """Apply the settings of this module's docstring to glibc's malloc; True when they are in force.

    Call it before the first JAX computation (the package import does). Idempotent.
    """
    global _applied
    if _applied:
        return True
    if environ.get(ENV_SWITCH, "1") == "0" or user_has_own_settings(environ) or not sys.platform.startswith("linux"):
        return False
    try:
        process = ctypes.CDLL(None)  # the symbols already loaded: the C library's among them
        mallopt, _ = process.mallopt, process.gnu_get_libc_version  # glibc only (musl has neither)
    except (OSError, AttributeError):
        return False
    _applied = all(mallopt(param, value) == 1 for param, value in _SETTINGS)
    _log.debug("glibc malloc keeps freed memory: %s", _applied)
    return _applied


def is_applied() -> bool:
    """Whether :func:`keep_freed_memory` is in force in this process (benchmarks record it)."""
    return _applied
