"""The papers' defences, each a training objective (:mod:`gfa_jax.defenses.objective`):

- ``gfa``: Gradient-Feature Alignment, the DeepDefense regulariser (FIRST / DEEP);
- ``adversarial_training``: Madry et al.'s PGD adversarial training (ADV);
- ``gaie``: gradient alignment with image edges (GAIE);
- ``layerwise``: layer-wise adversarial training (perturbed layer outputs);
- ``compose``: the configured combination of them as one objective.

DENOISE is a model (``gfa_jax.models.denoise``), not an objective.
"""
