"""Orbax checkpoints of the stacked multi-seed train state, one per epoch.

Orbax writes a step into a temporary directory and renames it once complete, so a run killed while
saving leaves no half-written step that looks finished. A finished step can still be damaged later
(a truncated file after a full disk or a copy that stopped): restoring then falls back to the
newest step that reads, and says so.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib

import jax
import orbax.checkpoint as ocp

logger = logging.getLogger(__name__)


# Train-state fields that checkpoints of earlier versions lack (restored from the template when empty).
FIELDS_ADDED_SINCE_RELEASE = ("model_state",)


class NoUsableCheckpointError(RuntimeError):
    """Every checkpoint in the directory failed to restore."""


def make_manager(directory, *, max_to_keep: int = 2, this_process_only: bool = False) -> ocp.CheckpointManager:
    """A manager over ``directory`` (relative paths are resolved against the current directory).

    Every process of a multi-host run saves and restores through it together, unless
    ``this_process_only``: then this process reads on its own (process 0's robustness report).
    """
    multiprocessing = ocp.options.MultiprocessingOptions()
    if this_process_only and jax.process_count() > 1:
        multiprocessing = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                             active_processes={jax.process_index()})
    directory = pathlib.Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)  # here: Orbax's create=True refuses active_processes
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=False,
                                           multiprocessing_options=multiprocessing)
    return ocp.CheckpointManager(directory, options=options, item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, epoch: int, state) -> None:
    manager.save(epoch, args=ocp.args.StandardSave(state))


def _is_layout_mismatch(error: Exception) -> bool:
    return "tree structures do not match" in str(error)


def _restore_newest(manager: ocp.CheckpointManager, restore_step):
    """``(step, restored)`` of the newest step that ``restore_step(step)`` reads, newest first;
    ``(0, None)`` if there is no step. A step that is damaged is moved aside (and said so); a step
    written in another layout is an error, not damage."""
    steps = sorted(manager.all_steps(), reverse=True)
    failures, damaged = [], []
    for step in steps:
        try:
            restored = restore_step(step)
        except Exception as error:  # noqa: BLE001 - any unreadable step: try the one before
            if _is_layout_mismatch(error):
                raise ValueError(f"The checkpoint of epoch {step} in {manager.directory} holds a train state of "
                                 f"another layout than this run's (another strategy or model?): {error}") from error
            failures.append(f"step {step}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            damaged.append(step)
            logger.warning("Checkpoint of epoch %d in %s is unreadable (%s); falling back to an earlier one.",
                           step, manager.directory, failures[-1])
            continue
        if damaged:
            aside = _move_aside(manager, damaged)
            logger.warning("Restored the checkpoint of epoch %d instead; the damaged ones are kept in %s.", step, aside)
        return step, restored
    if failures:
        raise NoUsableCheckpointError(
            f"No checkpoint in {manager.directory} could be restored:\n  " + "\n  ".join(failures)
            + "\nMove the damaged checkpoints away to start from scratch, or pass a new --workdir.")
    return 0, None


def _move_aside(manager: ocp.CheckpointManager, steps) -> pathlib.Path:
    """Move damaged steps out of the managed directory, so a resumed run can write those epochs again."""
    directory = pathlib.Path(manager.directory)
    aside = directory.parent / f"{directory.name}_damaged"
    aside.mkdir(exist_ok=True)
    for step in steps:
        try:
            (directory / str(step)).rename(aside / str(step))
        except FileNotFoundError:  # another process of a multi-host run moved it first
            pass
    manager.reload()
    return aside


def restore_latest(manager: ocp.CheckpointManager, template):
    """``(epoch, state)`` of the newest readable checkpoint, or ``(0, template)`` when there is none.

    ``template`` (a train state) fixes the tree structure, shapes and shardings of the restored
    arrays. Checkpoints written before a field was added to the train state (``model_state``, empty
    for models without batch norm) restore with that field taken from the template.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)

    def restore_step(step):
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except ValueError as error:
            added = [name for name in FIELDS_ADDED_SINCE_RELEASE if not jax.tree.leaves(getattr(template, name, None))]
            if not (_is_layout_mismatch(error) and added):
                raise
            older = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(template) if f.name not in added}
            restored = manager.restore(step, args=ocp.args.StandardRestore(older))
            return template.replace(**restored)

    epoch, state = _restore_newest(manager, restore_step)
    return (epoch, state) if epoch else (0, template)


def restore_latest_variables(manager: ocp.CheckpointManager):
    """``(epoch, params, model_state)`` of the newest readable checkpoint, whatever else it held.

    Evaluation needs only the model; reading it without a template also reads checkpoints of train
    states with other fields (other strategies, older versions without ``model_state``). The arrays
    come to this process's first device, whatever devices saved them (another machine, several
    processes of a multi-host run).
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def restore_step(step):
        target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
                              manager.item_metadata(step))
        return manager.restore(step, args=ocp.args.StandardRestore(target))

    epoch, state = _restore_newest(manager, restore_step)
    return (epoch, state["params"], state.get("model_state") or {}) if epoch else (0, None, {})
