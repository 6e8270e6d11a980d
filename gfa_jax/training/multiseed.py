"""Several seeds as one program: parameters stacked on a leading seed axis, sharded across devices.

Every seed's train state is the same pytree with an extra leading axis of size ``len(seeds)``; one
``jax.vmap`` of the single-seed step advances them all, and with several devices the seed axis is
split across them (each device runs whole seeds, so no communication is needed).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seed"


def seed_mesh(num_seeds: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over as many devices as evenly divide the seeds (all of them when they divide).

    Default: this process's devices (in a multi-host run, training spreads the seeds over every
    process with :func:`gfa_jax.training.distributed.member_mesh`; evaluation stays in process 0).
    """
    devices = list(devices if devices is not None else jax.local_devices())
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


def seeds_per_vmap(requested: int, mesh: Mesh, params) -> int | None:
    """How many seeds one vmapped call advances at a time; None means all of them at once.

    ``requested`` > 0 is taken as given. 0 chooses all seeds, except for a convolutional model
    (``params`` has 4-D kernels) on a single CPU device: there XLA lowers vmapped convolutions to
    grouped convolutions, which ran 2.6x slower than the seeds one after another (paper CNN, DEEP
    step, batch 256, 5 seeds, 2-core CPU), while vmapped matmuls (the MLP) ran faster than a loop.
    """
    if requested > 0:
        return requested
    single_cpu = mesh.devices.size == 1 and mesh.devices.flat[0].platform == "cpu"
    convolutional = any(leaf.ndim == 4 for leaf in jax.tree.leaves(params))
    return 1 if single_cpu and convolutional else None


def map_seeds(fn, seed_args, chunk: int | None):
    """``fn(*args)`` for every seed: ``seed_args`` is a tuple of pytrees stacked on a leading seed axis.

    ``chunk=None`` vmaps over all seeds; otherwise the seeds go ``chunk`` at a time (vmapped within a
    chunk) through the same program, one compiled program either way.
    """
    if chunk is None:
        return jax.vmap(fn)(*seed_args)
    num_seeds = jax.tree.leaves(seed_args)[0].shape[0]
    # Unrolled at trace time: XLA sees independent per-chunk subgraphs (a lax.map loop ran 5x slower).
    results = [jax.vmap(fn)(*jax.tree.map(lambda leaf: leaf[start:start + chunk], seed_args))
               for start in range(0, num_seeds, chunk)]
    return jax.tree.map(lambda *parts: jnp.concatenate(parts), *results)


def unstack(tree, index: int):
    """The pytree of seed number ``index`` (position in the stack, not the seed value)."""
    return jax.tree.map(lambda leaf: leaf[index], tree)
