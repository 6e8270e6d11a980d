"""Multi-host JAX on one machine: the environment that starts it, the member mesh over several
processes' devices, placing and fetching arrays, and real runs of two local processes with two CPU
devices each (Gloo collectives) that must train like one process with four devices."""
import json
import os
import pathlib
import socket
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from gfa_jax.training import checkpoints, distributed, multiseed, train
from tiny_configs import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
FOUR_SEEDS = (0, 1, 2, 3)
SWEEP_AXES = '{"gfa.beta_scale": [0.5, 2.0]}'


# --- the environment -------------------------------------------------------------------------

SRUN_TASK = {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1",
             "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": "node1"}


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    # an sbatch script of a two-task job is one process: only the srun step's tasks are several
    ({"SLURM_JOB_ID": "42", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"}, None),
    ({**SRUN_TASK, "SLURM_STEP_NUM_TASKS": "1"}, None),
    (SRUN_TASK, {}),  # JAX reads the rest from SLURM's variables
    ({"JAX_COORDINATOR_ADDRESS": "host0:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"},
     {"coordinator_address": "host0:1234", "num_processes": 2, "process_id": 1}),
    ({"JAX_COORDINATOR_ADDRESS": "host0:1234", "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}, None),
    ({**SRUN_TASK, "JAX_COORDINATOR_ADDRESS": "host0:1234"},
     {"coordinator_address": "host0:1234", "num_processes": None, "process_id": None}),
])
def test_distributed_arguments_follow_the_environment(environ, expected):
    assert distributed.distributed_arguments(environ) == expected


def test_a_single_process_environment_starts_nothing():
    assert distributed.initialize_from_environment({}) is False
    assert not jax.distributed.is_initialized() and distributed.is_writer()


# --- the member mesh ---------------------------------------------------------------------------

def fake_devices(processes: int, per_process: int) -> list:
    return [types.SimpleNamespace(id=p * 100 + d, process_index=p) for p in range(processes) for d in range(per_process)]


def ids(grid) -> list:
    return np.vectorize(lambda device: device.id)(grid).tolist()


@pytest.mark.parametrize("members, expected", [(4, [0, 1, 2, 3]), (6, [0, 1]), (5, [0])])
def test_one_process_keeps_the_gcd_rule(members, expected):
    assert ids(distributed.mesh_devices(members, fake_devices(1, 4))) == expected


@pytest.mark.parametrize("members, expected", [
    (4, [0, 1, 100, 101]),
    (2, [0, 100]),  # gcd(2, 4 devices) = 2 would take both devices of process 0 and none of process 1
    (6, [0, 100]),
    (8, [0, 1, 100, 101]),
    (3, [[0], [100]]),  # not divisible by the processes: each holds every member
])
def test_every_process_gets_an_equal_share_of_the_members(members, expected):
    assert ids(distributed.mesh_devices(members, fake_devices(2, 2))) == expected


def test_the_member_mesh_of_one_process_is_the_seed_mesh():
    for members in (1, 2, 3, 4, 6):
        mesh = distributed.member_mesh(members)
        assert mesh.axis_names == (multiseed.SEED_AXIS,)
        assert list(mesh.devices.flat) == list(multiseed.seed_mesh(members).devices.flat)


# --- placing and fetching arrays ---------------------------------------------------------------

def test_members_are_placed_split_and_fetched_whole():
    mesh = distributed.member_mesh(4)
    tree = {"w": np.arange(24.0).reshape(4, 6), "keys": multiseed.seed_keys(FOUR_SEEDS, purpose=1)}
    placed = distributed.put_members(tree, mesh)
    assert placed["w"].addressable_shards[0].data.shape == (1, 6) and len(placed["w"].sharding.device_set) == 4
    assert placed["keys"].sharding.spec == placed["w"].sharding.spec
    np.testing.assert_array_equal(jax.random.key_data(placed["keys"]), jax.random.key_data(tree["keys"]))
    fetched = distributed.fetch({"w": placed["w"], "sum": placed["w"].sum(1)})
    assert isinstance(fetched["w"], np.ndarray)
    np.testing.assert_array_equal(fetched["w"], tree["w"])
    np.testing.assert_array_equal(fetched["sum"], tree["w"].sum(1))
    replicated = distributed.put_replicated(np.arange(5), mesh)
    assert replicated.is_fully_replicated and len(replicated.sharding.device_set) == 4


def test_on_writer_of_one_process_just_calls():
    assert distributed.on_writer(lambda a, b=0: a + b, 2, b=3) == 5


# --- two real processes ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def run_processes(tmp_path: pathlib.Path, command: list, name: str, *, processes: int = 2,
                  timeout: int = 600) -> list[types.SimpleNamespace]:
    """``command`` as ``processes`` local JAX processes of one run, two CPU devices each."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    running = []
    for rank in range(processes):
        env = {**base, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
               "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": str(processes),
               "JAX_PROCESS_ID": str(rank), "PYTHONPATH": str(REPO)}
        out, err = tmp_path / f"{name}.{rank}.out", tmp_path / f"{name}.{rank}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            running.append((subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr), out, err))
    try:
        codes = [process.wait(timeout=timeout) for process, _, _ in running]
    finally:
        for process, _, _ in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [types.SimpleNamespace(returncode=code, stdout=out.read_text(), stderr=err.read_text())
            for code, (_, out, err) in zip(codes, running)]


def assert_succeeded(results) -> None:
    for rank, result in enumerate(results):
        assert result.returncode == 0, f"process {rank}:\n{result.stdout}\n{result.stderr[-4000:]}"


def restored_params(workdir: pathlib.Path):
    epoch, params, _ = checkpoints.restore_latest_variables(checkpoints.make_manager(workdir / "checkpoints"))
    return epoch, jax.tree.map(np.asarray, params)


def max_abs_difference(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


def metric_lines(workdir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def line_key(line: dict) -> tuple:
    """Which epoch, member (seed and swept setting) and split a metrics line is of."""
    return line["epoch"], line["seed"], line["split"], tuple(sorted((k, v) for k, v in line.items() if k.startswith("hyper/")))


def assert_same_metrics(two: pathlib.Path, one: pathlib.Path) -> None:
    """Written once (no line twice), every member's, with the one-process run's values."""
    lines, reference = metric_lines(two), metric_lines(one)
    keys = [line_key(r) for r in lines]
    assert len(set(keys)) == len(keys) and sorted(keys) == sorted(line_key(r) for r in reference)
    by_key = {line_key(r): r for r in reference}
    for line in lines:
        expected = by_key[line_key(line)]
        for name in ("accuracy", "mse", "loss"):
            if name in line:
                assert line[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), (name, line)


def write_config_file(tmp_path: pathlib.Path, data_dir, **kwargs) -> pathlib.Path:
    path = tmp_path / "tiny_config.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nfrom tiny_configs import tiny_config\n\n\n"
                    f"def get_config():\n    return tiny_config({str(data_dir)!r}, **{kwargs!r})\n")
    return path


def test_two_processes_of_two_devices_train_four_seeds_like_one_process(tiny_fashion_mnist, tmp_path):
    config_file = write_config_file(tmp_path, tiny_fashion_mnist, seeds=FOUR_SEEDS, epochs=1)
    results = run_processes(tmp_path, [sys.executable, "-m", "gfa_jax.main", f"--config={config_file}",
                                       f"--workdir={tmp_path / 'two'}"], "main")
    assert_succeeded(results)
    train.train_and_evaluate(tiny_config(tiny_fashion_mnist, seeds=FOUR_SEEDS, epochs=1), str(tmp_path / "one"))

    (epoch, two), (_, one) = restored_params(tmp_path / "two"), restored_params(tmp_path / "one")
    difference = max_abs_difference(two, one)
    print(f"two processes x two devices vs one process x four devices, 4 seeds, 1 epoch: "
          f"max |param difference| = {difference:.3g}")
    assert epoch == 1 and difference <= 1e-6
    assert_same_metrics(tmp_path / "two", tmp_path / "one")
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["seeds"] == list(FOUR_SEEDS)
    # Process 0 alone prints: the summary line, the epoch line, the progress bar.
    first, second = (result.stdout + result.stderr for result in results)
    assert "4 seeds; test accuracy" in first and "epoch 1: test accuracy" in first and "step/s" in first
    assert "test accuracy" not in second and "step/s" not in second
    assert "JAX distributed: process 1 of 2, 2 local of 4 devices" in second


def worker(tmp_path, data_dir, workdir, name, **arguments) -> list[types.SimpleNamespace]:
    arguments = {"data_dir": str(data_dir), "workdir": str(workdir), "seeds": list(FOUR_SEEDS), **arguments}
    return run_processes(tmp_path, [sys.executable, str(TESTS / "multihost_worker.py"), json.dumps(arguments)], name)


@pytest.mark.slow  # two two-process runs, ~1.5 min on 2 cores
def test_two_processes_stopped_after_epoch_1_resume_to_the_uninterrupted_parameters(tiny_fashion_mnist, tmp_path):
    # Four members: two seeds under two settings of an in-program sweep.
    workdir, run = tmp_path / "two", {"seeds": [0, 1], "axes": SWEEP_AXES, "epochs": 2}
    stopped = worker(tmp_path, tiny_fashion_mnist, workdir, "first", stop_after=1, **run)
    assert [result.returncode for result in stopped] == [3, 3], stopped[0].stderr[-3000:]
    assert (workdir / "checkpoints" / "1").is_dir() and not (workdir / "checkpoints" / "2").exists()
    resumed = worker(tmp_path, tiny_fashion_mnist, workdir, "again", **run)
    assert_succeeded(resumed)
    config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), epochs=2)
    config.sweep.axes = SWEEP_AXES
    train.train_and_evaluate(config, str(tmp_path / "one"))

    (epoch, two), (_, one) = restored_params(workdir), restored_params(tmp_path / "one")
    difference = max_abs_difference(two, one)
    print(f"two processes stopped after epoch 1 and resumed vs one process uninterrupted, 2 seeds x 2 settings, "
          f"2 epochs: max |param difference| = {difference:.3g}")
    assert epoch == 2 and difference <= 1e-6
    assert_same_metrics(workdir, tmp_path / "one")
    assert "Resuming test from the checkpoint of epoch 1" in resumed[0].stdout + resumed[0].stderr
    assert "Resuming" not in resumed[1].stdout + resumed[1].stderr


@pytest.mark.slow  # ~1 min: training, then process 0's robustness report while process 1 waits
def test_three_seeds_on_two_processes_and_the_report_of_process_0(tiny_fashion_mnist, tmp_path):
    config_file = write_config_file(tmp_path, tiny_fashion_mnist, seeds=(0, 1, 2), epochs=1)
    robustness = ["--config.robustness.enabled=True", "--config.robustness.attacks=fgsm,",
                  "--config.robustness.num_samples=16", "--config.robustness.eps_linf=0.0,0.1",
                  "--config.robustness.figures=False", "--config.robustness.protocol=all",
                  "--config.robustness.audit=False"]
    results = run_processes(tmp_path, [sys.executable, "-m", "gfa_jax.main", f"--config={config_file}",
                                       f"--workdir={tmp_path / 'two'}", *robustness], "main")
    assert_succeeded(results)
    train.train_and_evaluate(tiny_config(tiny_fashion_mnist, seeds=(0, 1, 2), epochs=1), str(tmp_path / "one"))

    # 3 seeds do not split over 2 processes: each trains all three, the result is the same.
    assert "every process trains all of them" in results[1].stderr
    difference = max_abs_difference(restored_params(tmp_path / "two")[1], restored_params(tmp_path / "one")[1])
    print(f"3 seeds on two processes (replicated) vs one process: max |param difference| = {difference:.3g}")
    assert difference <= 1e-6
    assert_same_metrics(tmp_path / "two", tmp_path / "one")
    table = (tmp_path / "two" / "robustness" / "table.md").read_text()
    rows = [json.loads(line) for line in (tmp_path / "two" / "robustness" / "results.jsonl").read_text().splitlines()]
    assert sorted({r["seed"] for r in rows}) == [0, 1, 2] and len(rows) == 3 * 2  # once per seed and eps
    assert table in results[0].stdout and "| fgsm |" not in results[1].stdout
