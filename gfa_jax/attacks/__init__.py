"""Jittable, vmappable adversarial attacks: ``from gfa_jax import attacks``.

Each attack is a pure function in its own module, grouped by family:

- ``gradient/``: FGSM, FFGSM, BIM, PGD (L-inf, L2), MI-/NI-/DI-FGSM, EOT-PGD, PI-FGSM(++), Jitter,
  C&W at a fixed eps, APGD and APGD-T;
- ``minimum_norm/``: DeepFool, C&W-L2, EAD, JSMA, FAB;
- ``black_box/``: Square;
- ``ensemble/``: AutoAttack.

Importing this package registers them all (see :mod:`gfa_jax.attacks.base` for the calling
convention), so ``attacks.REGISTRY`` lists every attack by name and ``attacks.pgd`` is the PGD
function; its module is ``gfa_jax.attacks.gradient.pgd``. Every attack takes ``bounds`` (the
input box of *your* model) as a required keyword.
"""
import importlib
import pkgutil

from gfa_jax.attacks.base import (  # noqa: F401
    LOSSES,
    REGISTRY,
    AttackSpec,
    MinNormResult,
    get_attack,
    get_loss,
    parse_attack_names,
    register,
)

FAMILIES = ("gradient", "minimum_norm", "black_box", "ensemble")

for _family in FAMILIES:
    _package = importlib.import_module(f"{__name__}.{_family}")
    for _module in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{_module.name}")

for _spec in REGISTRY.values():
    globals()[_spec.name] = _spec.fn

__all__ = sorted(REGISTRY) + ["REGISTRY", "AttackSpec", "MinNormResult", "get_attack", "get_loss",
                              "parse_attack_names", "register"]
