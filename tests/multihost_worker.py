"""One process of a multi-host training run for tests/training/test_distributed.py.

``python tests/multihost_worker.py '{"data_dir": ..., "workdir": ..., "seeds": [...], "epochs": 2,
"axes": "{...}", "stop_after": 1}'`` (with the JAX_* variables of its process) trains ``tiny_config``
(with ``config.sweep.axes`` if given) into the workdir; ``stop_after``: exits with status 3 once that
epoch's checkpoint is written (a run stopped there).
"""
import json
import sys

from gfa_jax.training import distributed, train
from tiny_configs import tiny_config

STOPPED = 3


def main(arguments: dict) -> None:
    distributed.initialize_from_environment()
    config = tiny_config(arguments["data_dir"], seeds=tuple(arguments["seeds"]), epochs=arguments["epochs"])
    config.sweep.axes = arguments.get("axes", config.sweep.axes)

    def stop(epoch, states):
        if epoch == arguments.get("stop_after"):
            raise SystemExit(STOPPED)

    train.train_and_evaluate(config, arguments["workdir"], epoch_callback=stop)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
