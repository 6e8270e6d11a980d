"""Ensembles of attacks with a per-sample worst case (AutoAttack)."""
