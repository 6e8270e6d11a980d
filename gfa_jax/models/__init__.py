"""Models by name: ``get_model(name, **kwargs)``; every model exposes ``layer_names`` in order."""
from __future__ import annotations

import flax.linen as nn

from gfa_jax.models.cnn import PaperCNN
from gfa_jax.models.mlp import PaperMLP

MODELS: dict[str, type[nn.Module]] = {
    "paper_cnn": PaperCNN,
    "paper_mlp": PaperMLP,
}


def get_model(name: str, **kwargs) -> nn.Module:
    try:
        model_cls = MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None
    return model_cls(**kwargs)


__all__ = ["MODELS", "PaperCNN", "PaperMLP", "get_model"]
