"""The JAX batch-norm models compute what the PyTorch reference architectures compute; prints JSON.

    .venv/bin/python benchmarks/bn_models_torch_equivalence.py      # needs torch

For each model, the PyTorch reference of ``benchmarks/bn_models_step.py`` gets random batch-norm
affine parameters and running statistics; its weights are copied into the JAX model (layers matched
in call order, kernels OIHW -> HWIO), and the logits of both on the same batch are compared in
inference mode (running statistics) and training mode (batch statistics). A check, not a benchmark.
"""
from __future__ import annotations

import json
import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.bn_models_step import torch_models  # noqa: E402
from gfa_jax.models import get_model  # noqa: E402

# (our model name and kwargs, reference name and kwargs): full ResNet-18 / VGG16-BN, small WRNs.
CASES = (
    (("resnet18", {}), ("resnet18", {})),
    (("vgg16_bn", {}), ("vgg16_bn", {})),
    (("wrn_10_1", {}), ("wrn_28_10", {"depth": 10, "widen": 1})),
    (("wrn_10_1", {"depth": 16, "widen": 2}), ("wrn_28_10", {"depth": 16, "widen": 2})),
)


def torch_call_order(model, x):
    import torch

    seen = []
    kinds = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(m)) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def flax_call_order(model, variables, x):
    seen = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, (nn.Conv, nn.BatchNorm, nn.Dense)):
            seen.append(context.module.name)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        model.apply(variables, x)
    return seen


def copy_weights(reference, names, params, batch_stats):
    import torch

    for module, name in zip(reference, names):
        if isinstance(module, torch.nn.BatchNorm2d):
            params[name] = {"scale": module.weight.detach().numpy().copy(), "bias": module.bias.detach().numpy().copy()}
            batch_stats[name] = {"mean": module.running_mean.numpy().copy(), "var": module.running_var.numpy().copy()}
            continue
        kernel = module.weight.detach().numpy()
        kernel = kernel.transpose(2, 3, 1, 0) if isinstance(module, torch.nn.Conv2d) else kernel.T
        if set(params[name]) != ({"kernel", "bias"} if module.bias is not None else {"kernel"}):
            raise ValueError(f"{name}: bias differs from the reference")
        params[name] = {"kernel": kernel.copy()} | ({"bias": module.bias.detach().numpy().copy()}
                                                    if module.bias is not None else {})


def compare(ours, reference_spec, batch: int = 4) -> dict:
    import torch

    torch.manual_seed(0)
    (name, kwargs), (reference_name, reference_kwargs) = ours, reference_spec
    reference = torch_models()[reference_name](10, **reference_kwargs).eval()
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in ((module.weight.data, 0.5, 1.5), (module.bias.data, -0.2, 0.2),
                                      (module.running_mean, -0.2, 0.2), (module.running_var, 0.5, 1.5)):
                tensor.uniform_(low, high)
    model = get_model(name, num_classes=10, **kwargs)
    x_torch = torch.rand(batch, 3, 32, 32) * 2 - 1
    x = jnp.asarray(x_torch.numpy().transpose(0, 2, 3, 1))
    initial = model.init(jax.random.key(0), x)
    params = jax.tree.map(np.array, initial["params"])
    batch_stats = jax.tree.map(np.array, initial["batch_stats"])
    names = flax_call_order(model, {"params": params, "batch_stats": batch_stats}, x)
    modules = torch_call_order(reference, x_torch)
    if len(names) != len(modules):
        raise ValueError(f"{name}: {len(names)} layers, the reference {len(modules)}")
    copy_weights(modules, names, params, batch_stats)
    variables = {"params": params, "batch_stats": batch_stats}
    with torch.no_grad():
        reference_eval = reference(x_torch).numpy()
        reference.train()
        reference_train = reference(x_torch).numpy()
    ours_eval = np.asarray(model.apply(variables, x))
    ours_train = np.asarray(model.apply(variables, x, train=True, mutable=["batch_stats"])[0])
    return {"model": name, "kwargs": kwargs, "reference": reference_name, "reference_kwargs": reference_kwargs,
            "layers_matched": len(names), "logit_scale": float(np.abs(reference_eval).max()),
            "max_abs_diff_inference": float(np.abs(ours_eval - reference_eval).max()),
            "max_abs_diff_training": float(np.abs(ours_train - reference_train).max())}


def main() -> None:
    print(json.dumps({"check": "bn_models_torch_equivalence", "cases": [compare(*case) for case in CASES]}, indent=2))


if __name__ == "__main__":
    main()
