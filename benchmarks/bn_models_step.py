"""Time per train step of the batch-norm CIFAR models, JAX against PyTorch; prints JSON.

    .venv/bin/python benchmarks/bn_models_step.py --models resnet18,vgg16_bn --batch 128 --steps 3

One step: forward in training mode (batch statistics, running averages updated), cross-entropy,
backward, SGD (lr 0.1, momentum 0.9, weight decay 1e-4: the Tables VIII-IX settings) on a random
batch of 32x32x3 images. JAX: ``gfa_jax.models.get_model(name)``, the step jitted once with the
state donated; compile time and steady-state time reported separately. PyTorch: the same
architectures written here (kuangliu/pytorch-cifar's ResNet18 and VGG('VGG16'), torchvision-free),
eager, NCHW, ``torch.get_num_threads()`` threads; its first step is reported as ``first_step_seconds``.
Both count their trainable parameters (``torch_parameters`` also for WRN-28-10, not timed), a
cross-check of the reference counts. The machine's load (``os.getloadavg``) is recorded before and
after: the step times are only comparable at similar load.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info, matmul_peak_flops, time_jitted  # noqa: E402
from gfa_jax.models import get_model  # noqa: E402

LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)


# ----------------------------------------------------------------------------- JAX


def jax_case(name: str, batch: int, steps: int) -> dict:
    model = get_model(name, num_classes=NUM_CLASSES)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(-1, 1, (batch, *IMAGE_SHAPE)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, NUM_CLASSES, batch).astype(np.int32))
    variables = model.init(jax.random.key(0), x[:1])
    tx = optax.chain(optax.add_decayed_weights(WEIGHT_DECAY), optax.sgd(LEARNING_RATE, momentum=MOMENTUM))
    state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))

    def step(state, x, y):
        params, batch_stats, opt_state = state

        def loss_fn(params):
            logits, updated = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                          mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updated["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    result = time_jitted(jax.jit(step, donate_argnums=(0,)), (state, x, y), steps=steps, carry_first=True)
    parameters = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
    return {"impl": "jax", "model": name, "batch": batch, "parameters": int(parameters), **result}


# ----------------------------------------------------------------------------- PyTorch


def torch_models():
    """kuangliu/pytorch-cifar's ResNet18 and VGG16 (with BN), xternalz's WideResNet, without torchvision."""
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, in_planes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != planes:
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            out = nn.functional.relu(self.bn1(self.conv1(x)))
            return nn.functional.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet18(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            blocks, in_planes = [], 64
            for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                for s in (stride, 1):
                    blocks.append(BasicBlock(in_planes, planes, s))
                    in_planes = planes
            self.blocks = nn.Sequential(*blocks)
            self.linear = nn.Linear(512, num_classes)

        def forward(self, x):
            out = self.blocks(nn.functional.relu(self.bn1(self.conv1(x))))
            return self.linear(nn.functional.adaptive_avg_pool2d(out, 1).flatten(1))

    class VGG16BN(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            layers, in_channels = [], 3
            for entry in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
                if entry == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(in_channels, entry, 3, padding=1), nn.BatchNorm2d(entry), nn.ReLU(inplace=True)]
                    in_channels = entry
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(512, num_classes)

        def forward(self, x):
            return self.classifier(self.features(x).flatten(1))

    class WideBlock(nn.Module):
        def __init__(self, in_planes, out_planes, stride):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(in_planes), nn.BatchNorm2d(out_planes)
            self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
            self.shortcut = None
            if in_planes != out_planes or stride != 1:
                self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)

        def forward(self, x):
            h = nn.functional.relu(self.bn1(x))
            out = self.conv2(nn.functional.relu(self.bn2(self.conv1(h))))
            return out + (x if self.shortcut is None else self.shortcut(h))

    class WideResNet(nn.Module):
        def __init__(self, num_classes, depth=28, widen=10):
            super().__init__()
            per_group = (depth - 4) // 6
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            blocks, in_planes = [], 16
            for width, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(per_group):
                    blocks.append(WideBlock(in_planes, width * widen, stride if i == 0 else 1))
                    in_planes = width * widen
            self.blocks = nn.Sequential(*blocks)
            self.bn = nn.BatchNorm2d(in_planes)
            self.fc = nn.Linear(in_planes, num_classes)

        def forward(self, x):
            out = nn.functional.relu(self.bn(self.blocks(self.conv1(x))))
            return self.fc(nn.functional.adaptive_avg_pool2d(out, 1).flatten(1))

    return {"resnet18": ResNet18, "vgg16_bn": VGG16BN, "wrn_28_10": WideResNet}


def torch_parameters(name: str, num_classes: int = NUM_CLASSES) -> int:
    model = torch_models()[name](num_classes)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def torch_case(name: str, batch: int, steps: int) -> dict:
    import torch

    torch.manual_seed(0)
    model = torch_models()[name](NUM_CLASSES).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    y = torch.randint(0, NUM_CLASSES, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"impl": "torch", "model": name, "batch": batch, "parameters": torch_parameters(name),
            "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "first_step_seconds": first, "steady_seconds_median": float(np.median(times)),
            "steady_seconds_min": float(np.min(times)), "steps_timed": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,vgg16_bn")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]

    load_before = os.getloadavg()
    peak = matmul_peak_flops()
    cases = []
    for name in names:
        cases.append(jax_case(name, args.batch, args.steps))
        if not args.no_torch:
            cases.append(torch_case(name, args.batch, args.steps))
    for case in cases:  # XLA's FLOP count of the JAX step is the numerator for both frameworks
        flops = next((c["xla_flops"] for c in cases if c["impl"] == "jax" and c["model"] == case["model"]), None)
        if flops:
            case["efficiency_vs_matmul_peak"] = flops / case["steady_seconds_median"] / peak
    ratios = {}
    reference_counts = {}
    if not args.no_torch:
        for name in names:
            by_impl = {c["impl"]: c["steady_seconds_median"] for c in cases if c["model"] == name}
            ratios[f"{name}_jax_over_torch"] = by_impl["jax"] / by_impl["torch"]
        reference_counts = {f"{name}/{classes}": torch_parameters(name, classes)
                            for name, classes in (("resnet18", 10), ("vgg16_bn", 10), ("wrn_28_10", 10), ("wrn_28_10", 100))}
    print(json.dumps({"benchmark": "bn_models_step", "machine": machine_info(), "matmul_peak_flops": peak,
                      "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
                      "cases": cases, "ratios": ratios, "torch_reference_parameter_counts": reference_counts},
                     indent=2))


if __name__ == "__main__":
    main()
