"""Jittable, vmappable adversarial attacks: ``from gfa_jax import attacks``.

Every module in this package defines one attack and registers it (see :mod:`gfa_jax.attacks.base`
for the calling convention). Importing the package imports them all, so ``attacks.REGISTRY`` lists
every attack and ``attacks.pgd`` etc. are the functions themselves.
"""
import importlib
import pkgutil

from gfa_jax.attacks.base import (  # noqa: F401
    DEFAULT_BOUNDS,
    LOSSES,
    REGISTRY,
    AttackSpec,
    MinNormResult,
    get_attack,
    get_loss,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

for _spec in REGISTRY.values():
    globals()[_spec.name] = _spec.fn  # the function, not its module of the same name

__all__ = sorted(REGISTRY) + ["REGISTRY", "AttackSpec", "MinNormResult", "get_attack", "get_loss", "register"]
