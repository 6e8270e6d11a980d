"""Minimum-norm attacks: the smallest perturbation that changes the decision (DeepFool, C&W, EAD, JSMA, FAB)."""
