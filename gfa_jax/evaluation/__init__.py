"""Evaluation of trained models: robustness reports, their audit, figures and tables."""
