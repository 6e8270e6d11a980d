"""Several seeds as one program: parameters stacked on a leading seed axis, sharded across devices.

Every seed's train state is the same pytree with an extra leading axis of size ``len(seeds)``; one
``jax.vmap`` of the single-seed step advances them all, and with several devices the seed axis is
split across them (each device runs whole seeds, so no communication is needed).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seed"


def seed_mesh(num_seeds: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over as many devices as evenly divide the seeds (all of them when they divide)."""
    devices = list(devices if devices is not None else jax.devices())
    num_devices = math.gcd(num_seeds, len(devices))
    return Mesh(np.array(devices[:num_devices]), (SEED_AXIS,))


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Shards an array's leading (seed) axis across the mesh."""
    return NamedSharding(mesh, PartitionSpec(SEED_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_seeds(tree, mesh: Mesh):
    """Place every leaf of a seed-stacked pytree with its leading axis split across ``mesh``."""
    return jax.device_put(tree, seed_sharding(mesh))


def seed_keys(seeds: Sequence[int], purpose: int) -> jax.Array:
    """One PRNG key per seed for a purpose (0: init, 1: data order, ...), stacked ``[S]``."""
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), purpose))(np.asarray(seeds, np.uint32))


def unstack(tree, index: int):
    """The pytree of seed number ``index`` (position in the stack, not the seed value)."""
    return jax.tree.map(lambda leaf: leaf[index], tree)
