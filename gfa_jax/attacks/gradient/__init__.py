"""Gradient attacks: one ascent (FGSM family) or many (BIM, PGD, APGD, ...) on a loss of the logits."""
