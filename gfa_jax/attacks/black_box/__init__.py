"""Score-based black-box attacks: only the logits, no gradient (Square)."""
