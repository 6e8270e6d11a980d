"""Multi-seed training: ``train_state`` -> ``train_step`` (one seed, pure; every seed as one jitted
program) -> ``train`` (the whole run: data, per-epoch ``evaluator``, ``metrics``, ``checkpoints``
in the ``workdir``); ``multiseed`` stacks and shards seeds; ``optimizers`` builds optax optimizers."""
