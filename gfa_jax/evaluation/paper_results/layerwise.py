"""The layer-wise adversarial training paper's reported accuracies (Tables I-IX), as data.

``PAPER_ACCURACY[(model, strategy)]`` maps our attack names to the paper's top-1 accuracy under that
attack at eps 0.1 ([0, 1] images), ``"Clean"`` to its clean accuracy. Keys are ours: ``model`` is
``config.model.name`` and ``strategy`` the placement of ``configs/*_layerwise.py`` (``_fixed``
appended for Table I's constant eps), so a robustness report can print each row beside the paper's
(:func:`gfa_jax.evaluation.report.worst_case_table`). Columns: FGSM, IFGSM (``bim``), PGD, EoT
(``eotpgd``) and C&W (``cw_linf``, our bounded reading of it). Numbers as printed, typos included
(Table IX's C&W 0.9075 for Conv-all is surely 0.0975, but we do not guess).
"""
from __future__ import annotations

COLUMNS = ("Clean", "fgsm", "bim", "pgd", "eotpgd", "cw_linf")

_ROWS = {
    # Table II (4FC, one layer; FC Layer-k perturbs Dense fc{k-1}), III (two layers), IV (all layers).
    ("mnist_4fc", "standard"): (0.9429, 0.1415, 0.1106, 0.0819, 0.0375, 0.0256),
    ("mnist_4fc", "adv_input"): (0.9505, 0.2151, 0.1749, 0.1313, 0.0787, 0.0513),
    ("mnist_4fc", "layer2"): (0.9256, 0.3056, 0.2761, 0.2411, 0.1369, 0.12),
    ("mnist_4fc", "layer3"): (0.9263, 0.3552, 0.323, 0.2748, 0.1729, 0.1426),
    ("mnist_4fc", "layer4"): (0.9693, 0.5215, 0.4678, 0.4055, 0.3359, 0.267),
    ("mnist_4fc", "layers2_3"): (0.9297, 0.4078, 0.3722, 0.3236, 0.2066, 0.1736),
    ("mnist_4fc", "layers3_4"): (0.927, 0.6415, 0.6161, 0.5709, 0.6243, 0.5835),
    ("mnist_4fc", "all_w"): (0.9055, 0.6492, 0.6416, 0.5435, 0.6255, 0.5609),
    ("mnist_4fc", "all_o"): (0.9125, 0.6297, 0.6003, 0.5237, 0.5987, 0.5443),
    # Table I: constant eps (the "-r" rows are layer2 and layers2_3 above).
    ("mnist_4fc", "layer2_fixed"): (0.9247, 0.1922, 0.1649, 0.1334, 0.0709, 0.0532),
    ("mnist_4fc", "layers2_3_fixed"): (0.9016, 0.2995, 0.2601, 0.2208, 0.1729, 0.1297),
    # Tables V (one conv layer), VI (several) and VII (with / without adversarial inputs).
    ("mnist_3conv2fc", "standard"): (0.9794, 0.3177, 0.2652, 0.2192, 0.1854, 0.1156),
    ("mnist_3conv2fc", "adv_input"): (0.9792, 0.4961, 0.3179, 0.2492, 0.2296, 0.1399),
    ("mnist_3conv2fc", "conv2"): (0.9775, 0.4758, 0.4178, 0.354, 0.2594, 0.1908),
    ("mnist_3conv2fc", "conv3"): (0.9808, 0.4367, 0.3891, 0.3349, 0.2808, 0.1782),
    ("mnist_3conv2fc", "conv2_3"): (0.98, 0.5583, 0.5013, 0.4277, 0.3864, 0.2452),
    ("mnist_3conv2fc", "conv2_3_fc1"): (0.9828, 0.6866, 0.6398, 0.5806, 0.481, 0.3766),
    ("mnist_3conv2fc", "all_o"): (0.9833, 0.8096, 0.7477, 0.658, 0.6718, 0.5097),
    ("mnist_3conv2fc", "conv_w"): (0.9799, 0.7568, 0.6325, 0.4892, 0.5436, 0.3237),
    ("mnist_3conv2fc", "all_w"): (0.9823, 0.7283, 0.6873, 0.6297, 0.5706, 0.4637),
    # Table VIII (VGG16, CIFAR-10) and IX (WRN-28-10, CIFAR-100).
    ("vgg16_bn", "standard"): (0.8655, 0.213, 0.175, 0.097, 0.113, 0.083),
    ("vgg16_bn", "adv_input"): (0.6127, 0.2503, 0.2092, 0.118, 0.149, 0.1013),
    ("vgg16_bn", "conv_all"): (0.8515, 0.3847, 0.253, 0.1381, 0.203, 0.1221),
    ("vgg16_bn", "all_o"): (0.8236, 0.403, 0.2811, 0.202, 0.268, 0.1934),
    ("vgg16_bn", "all_w"): (0.8476, 0.4339, 0.332, 0.309, 0.251, 0.218),
    ("wrn_28_10", "standard"): (0.7615, 0.1984, 0.151, 0.082, 0.1043, 0.067),
    ("wrn_28_10", "adv_input"): (0.5236, 0.2006, 0.1809, 0.093, 0.1223, 0.0732),
    ("wrn_28_10", "conv_all"): (0.7115, 0.3049, 0.2301, 0.1107, 0.1469, 0.9075),
    ("wrn_28_10", "all_o"): (0.7235, 0.3886, 0.2803, 0.1901, 0.2076, 0.1301),
    ("wrn_28_10", "all_w"): (0.7523, 0.4039, 0.3201, 0.2343, 0.2081, 0.1678),
}

PAPER_ACCURACY: dict[tuple[str, str], dict[str, float]] = {
    key: dict(zip(COLUMNS, values)) for key, values in _ROWS.items()}


def paper_accuracy(model: str, strategy: str) -> dict[str, float] | None:
    """The paper's row for our ``model`` trained with ``strategy``, or None where it reports none."""
    return PAPER_ACCURACY.get((model, strategy))
