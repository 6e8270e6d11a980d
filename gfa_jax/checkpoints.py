"""Orbax checkpoints of the stacked multi-seed train state, one per epoch."""
from __future__ import annotations

import jax
import orbax.checkpoint as ocp


def make_manager(directory, *, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """A manager that writes atomically (Orbax commits a step only once it is complete)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, epoch: int, state) -> None:
    manager.save(epoch, args=ocp.args.StandardSave(state))


def restore_latest(manager: ocp.CheckpointManager, template):
    """``(epoch, state)`` of the newest complete checkpoint, or ``(0, template)`` when there is none.

    ``template`` fixes the tree structure, shapes and shardings of the restored arrays.
    """
    epoch = manager.latest_step()
    if epoch is None:
        return 0, template
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return epoch, manager.restore(epoch, args=ocp.args.StandardRestore(abstract))


def restore_latest_params(manager: ocp.CheckpointManager):
    """``(epoch, params)`` of the newest checkpoint, whatever else the train state held.

    Evaluation needs only the parameters; reading them without a template also reads checkpoints
    of train states with other fields (other strategies, older versions).
    """
    epoch = manager.latest_step()
    if epoch is None:
        return 0, None
    return epoch, manager.restore(epoch, args=ocp.args.StandardRestore())["params"]
