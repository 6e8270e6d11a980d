"""The papers' reported numbers, as data: ``deepdefense`` (GFA, Tables 1 and 5) and ``layerwise``
(accuracy under attack, Tables I-IX of the layer-wise adversarial training paper)."""
