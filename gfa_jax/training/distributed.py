"""Several processes as one run (multi-host JAX): started from the environment, one mesh over every
process's devices, host data placed on it, global arrays read back, one process writing.

Every process runs the same program on the same host data: each loads the dataset and derives the
same per-member keys, and :func:`put_members` / :func:`put_replicated` keep, of those global arrays,
the shards on the process's own devices (no data crosses processes). Orbax checkpoints are written
and read by all processes together; process 0 alone (:func:`is_writer`) writes metrics, summaries,
reports and the console lines. With a single process every function here is the plain JAX one.

Started by :func:`initialize_from_environment` when the environment names several processes:

- ``JAX_COORDINATOR_ADDRESS=host:port`` (of process 0) with ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID`` (``JAX_LOCAL_DEVICE_IDS`` optional, read by JAX), or
- a SLURM job step of several tasks (``srun``, ``SLURM_STEP_NUM_TASKS`` > 1): JAX takes the
  coordinator (the step's first node, a port derived from the job id; ``JAX_COORDINATOR_PORT``
  overrides it), the task count and the rank from SLURM's variables.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from typing import Callable, Mapping, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gfa_jax.training import multiseed

logger = logging.getLogger(__name__)

PROCESS_AXIS = "process"
# How long the other processes wait for process 0's work of :func:`on_writer` (a robustness report
# can take hours); past it they fail instead of waiting for ever.
WRITER_WAIT_S = 7 * 24 * 3600

_barriers = itertools.count()


def distributed_arguments(environ: Mapping[str, str]) -> dict | None:
    """The arguments of ``jax.distributed.initialize`` that ``environ`` asks for; None for one process.

    A value JAX can find itself (from SLURM or Open MPI) is left out (None).
    """
    address = environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        num_processes = environ.get("JAX_NUM_PROCESSES")
        if num_processes is not None and int(num_processes) == 1:
            return None
        process_id = environ.get("JAX_PROCESS_ID")
        return {"coordinator_address": address,
                "num_processes": None if num_processes is None else int(num_processes),
                "process_id": None if process_id is None else int(process_id)}
    # SLURM_NTASKS alone is not enough: a batch script sees its job's task count, but runs as one process.
    if int(environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in environ:
        return {}
    return None


def initialize_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Start multi-host JAX when the environment names several processes; whether it runs (or ran).

    Call it before anything else touches JAX. A second call does nothing. On CPU the processes talk
    through Gloo (JAX's CPU collectives), unless ``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` chose another.
    """
    if jax.distributed.is_initialized():
        return True
    arguments = distributed_arguments(os.environ if environ is None else environ)
    if arguments is None:
        return False
    if not jax.config.jax_cpu_collectives_implementation:  # read only by the CPU backend
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**arguments)
    logger.info("JAX distributed: process %d of %d, %d local of %d devices", jax.process_index(),
                jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def is_writer() -> bool:
    """Whether this process writes the run's files and console lines (process 0)."""
    return jax.process_index() == 0


def mesh_devices(num_members: int, devices: Sequence) -> np.ndarray:
    """The devices of the member mesh: ``[D]``, or ``[P, D]`` (processes x devices) when the members
    cannot be spread evenly over the processes.

    One process: the first ``gcd(members, devices)`` devices, so every device runs as many whole
    members. Several: the same number ``k`` of devices from each process, ``k = gcd(members / P,
    local devices)``, so every process holds its share of the members. When ``P`` does not divide
    the members, every process trains all of them on ``gcd(members, local devices)`` of its devices
    (the members replicated across processes: the same result, none of the speed-up).
    """
    by_process: dict[int, list] = {}
    for device in devices:
        by_process.setdefault(device.process_index, []).append(device)
    groups = [by_process[p] for p in sorted(by_process)]
    local = min(len(group) for group in groups)
    if num_members % len(groups) == 0:
        per_process = math.gcd(num_members // len(groups), local)
        return np.array([device for group in groups for device in group[:per_process]])
    per_process = math.gcd(num_members, local)
    return np.array([group[:per_process] for group in groups])


def member_mesh(num_members: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The mesh that splits the member axis (:data:`multiseed.SEED_AXIS`) across every process's
    devices (see :func:`mesh_devices`); with one process, :func:`multiseed.seed_mesh`'s."""
    grid = mesh_devices(num_members, list(devices if devices is not None else jax.devices()))
    if grid.ndim == 2:
        logger.warning("%d members do not split evenly over %d processes: every process trains all of them.",
                       num_members, grid.shape[0])
        return Mesh(grid, (PROCESS_AXIS, multiseed.SEED_AXIS))
    return Mesh(grid, (multiseed.SEED_AXIS,))


def _put(leaf, sharding: NamedSharding):
    """``device_put`` of a host value (the same on every process) onto a sharding that may span
    processes; PRNG keys go as their raw data (``device_put`` refuses keys onto other processes)."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_put(jax.random.key_data(leaf), sharding), impl=jax.random.key_impl(leaf))
    return jax.device_put(leaf, sharding)


def put_members(tree, mesh: Mesh):
    """Every leaf of a member-stacked pytree with its leading axis split across ``mesh``; each
    process passes the same values and keeps the shards of its own devices."""
    sharding = NamedSharding(mesh, PartitionSpec(multiseed.SEED_AXIS))
    return jax.tree.map(lambda leaf: _put(leaf, sharding), tree)


def put_replicated(tree, mesh: Mesh):
    """Every leaf whole on every device of ``mesh`` (each process copies its own host value)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda leaf: _put(leaf, sharding), tree)


def _identity(tree):
    return tree


def fetch(tree):
    """``jax.device_get`` that also reads arrays spread over several processes (every process gets
    the whole value). Every process must call it at the same point (it gathers across them)."""
    leaves, treedef = jax.tree.flatten(tree)
    spread = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array)
              and not leaf.is_fully_addressable and not leaf.is_fully_replicated]
    named = [i for i in spread if isinstance(leaves[i].sharding, NamedSharding)]
    if named:  # one program gathers them all
        shardings = [NamedSharding(leaves[i].sharding.mesh, PartitionSpec()) for i in named]
        gathered = jax.jit(_identity, out_shardings=shardings)([leaves[i] for i in named])
        for i, value in zip(named, gathered):
            leaves[i] = value
    for i in set(spread) - set(named):
        leaves[i] = multihost_utils.process_allgather(leaves[i], tiled=True)
    leaves = [np.asarray(leaf.addressable_data(0)) if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
              else leaf for leaf in leaves]
    return jax.device_get(jax.tree.unflatten(treedef, leaves))


def on_writer(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` in process 0 alone, on its own devices; the other processes wait
    until it has finished (or failed) and get None. For work that is not split across processes
    (the robustness report): the others stay connected meanwhile, since a process that leaves a
    JAX distributed run early makes the others fail."""
    if jax.process_count() == 1:
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs) if is_writer() else None
    finally:
        ocp.multihost.sync_global_processes(f"gfa_jax_on_writer_{next(_barriers)}", timeout=WRITER_WAIT_S,
                                            processes=set(range(jax.process_count())))
