"""Figures that need the models themselves (seed 0 of each run), not only the result rows:

- ``adversarial_examples.png``: inputs, their DeepFool adversarials and the noise, per strategy, with
  the noise's MSE (Figures 1 and 7 of DeepDefense);
- ``loss_landscape.png``: each model's loss on ``x + a*d1 + b*d2``, d1 and d2 the APGD perturbations
  found against the first and the last run (Figure 2);
- ``feature_maps.png``: the first convolution's output for one input, per strategy (Figure 3; CNNs).
"""
from __future__ import annotations

import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax import attacks, data
from gfa_jax.training import multiseed
from gfa_jax.defenses.gfa import mse_onehot
from gfa_jax.evaluation.plotting import pyplot, save_figure


def _logits_fn(run):
    return run.logits_fn(0)


def _show(ax, image: np.ndarray) -> None:
    image = np.clip((image + 1.0) / 2.0, 0.0, 1.0)
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def adversarial_examples(runs: Sequence, x: jax.Array, y: jax.Array, path: pathlib.Path, *, count: int = 4) -> None:
    """A row per strategy: for ``count`` inputs, the DeepFool adversarial and its noise (rescaled)."""
    plt = pyplot()
    x, y = x[:count], y[:count]
    fig, axes = plt.subplots(len(runs), 2 * count, figsize=(2 * count * 1.3, len(runs) * 1.5), squeeze=False)
    for row, run in enumerate(runs):
        result = attacks.get_attack("deepfool").fn(_logits_fn(run), x, y, jax.random.key(0), bounds=data.MODEL_INPUT_BOUNDS)
        for i in range(count):
            noise = np.asarray(result.x_adv[i] - x[i])
            mse = float(np.mean(noise**2))
            _show(axes[row, 2 * i], np.asarray(result.x_adv[i]))
            scale = np.abs(noise).max() or 1.0
            _show(axes[row, 2 * i + 1], noise / scale)
            axes[row, 2 * i + 1].set_title(f"MSE {mse:.2g}" if result.success[i] else "failed", fontsize=7)
        axes[row, 0].set_ylabel(run.label, fontsize=8)
    fig.suptitle("DeepFool adversarials (left) and their noise, rescaled (right)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def loss_landscape(runs: Sequence, x: jax.Array, y: jax.Array, path: pathlib.Path, *, eps: float,
                   resolution: int = 21) -> None:
    """Mean MSE of each model over ``x + a*d1 + b*d2``, ``a, b`` in ``[-1, 1]``, as contour plots."""
    plt = pyplot()
    apgd = attacks.get_attack("apgd").fn
    directions = [apgd(_logits_fn(run), x, y, jax.random.key(1), eps=eps, bounds=data.MODEL_INPUT_BOUNDS) - x for run in (runs[0], runs[-1])]
    grid = jnp.linspace(-1.0, 1.0, resolution)
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.0), squeeze=False)
    for ax, run in zip(axes[0], runs):
        logits_fn = _logits_fn(run)

        def loss_at(a, b):
            return jnp.mean(mse_onehot(logits_fn(x + a * directions[0] + b * directions[1]), y))

        surface = jax.jit(jax.vmap(jax.vmap(loss_at, (None, 0)), (0, None)))(grid, grid)
        contour = ax.contourf(np.asarray(grid), np.asarray(grid), np.asarray(surface).T, levels=20)
        fig.colorbar(contour, ax=ax)
        ax.set_title(run.label)
        ax.set_xlabel(f"APGD direction vs {runs[0].label}")
        ax.set_ylabel(f"APGD direction vs {runs[-1].label}")
    fig.tight_layout()
    save_figure(fig, path)


def feature_maps(runs: Sequence, x: jax.Array, path: pathlib.Path, *, channels: int = 6) -> bool:
    """The first convolution's activations for one input, per strategy; False for models without one."""
    plt = pyplot()
    first_layers = [run.model.layer_names[0] for run in runs]
    if not all(name.startswith("conv") for name in first_layers):
        return False
    fig, axes = plt.subplots(len(runs), channels + 1, figsize=((channels + 1) * 1.3, len(runs) * 1.4), squeeze=False)
    for row, (run, layer) in enumerate(zip(runs, first_layers)):
        params = multiseed.unstack(run.params, 0)
        kernel, bias = params[layer]["kernel"], params[layer]["bias"]
        activations = jax.nn.relu(
            jax.lax.conv_general_dilated(x[:1], kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            + bias
        )[0]
        _show(axes[row, 0], np.asarray(x[0]))
        axes[row, 0].set_ylabel(run.label, fontsize=8)
        for c in range(channels):
            axes[row, c + 1].imshow(np.asarray(activations[..., c]), cmap="viridis")
            axes[row, c + 1].set_xticks([])
            axes[row, c + 1].set_yticks([])
    fig.suptitle(f"{first_layers[0]} feature maps (first {channels} channels)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def write_figures(runs: Sequence, x: jax.Array, y: jax.Array, outdir: pathlib.Path, *, eps: float) -> None:
    figures = pathlib.Path(outdir) / "figures"
    adversarial_examples(runs, x, y, figures / "adversarial_examples.png")
    loss_landscape(runs, x[:64], y[:64], figures / "loss_landscape.png", eps=eps)
    feature_maps(runs, x, figures / "feature_maps.png")
