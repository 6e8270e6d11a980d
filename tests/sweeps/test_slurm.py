"""The launcher against a real single-node SLURM cluster on localhost (launch/local_slurm.sh).

Skipped, saying why, only where the SLURM packages are missing and cannot be installed (not root,
no apt-get, or the install failed). The sbatch scripts and squeue snapshots are printed (``-s``).
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

from gfa_jax.sweeps import executors, job, ledger

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "launch" / "local_slurm.sh"
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def slurm_cluster():
    missing = shutil.which("slurmctld") is None or shutil.which("sinfo") is None
    if missing and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        pytest.skip("SLURM packages are missing and cannot be installed here (needs root and apt-get).")
    if os.geteuid() != 0:
        pytest.skip("the local cluster runs as SlurmUser=root: needs root.")
    out = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    print(out.stdout, out.stderr)
    if out.returncode != 0:
        if shutil.which("slurmctld") is None:
            pytest.skip(f"SLURM packages could not be installed: {out.stdout[-500:]} {out.stderr[-500:]}")
        pytest.fail(f"launch/local_slurm.sh start failed:\n{out.stdout}\n{out.stderr}")
    started_here = "already running" not in out.stdout
    yield
    if started_here:
        print(subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True).stdout)


def launch(*args, check=True) -> str:
    command = [sys.executable, "-m", "gfa_jax.launch", *map(str, args)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    print(f"$ python -m gfa_jax.launch {' '.join(map(str, args))}\n{out.stdout}")
    if check:
        assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return out.stdout


def squeue() -> str:
    text = subprocess.run(["squeue", "-r", "-o", "%.8i %.9j %.10T %.6M %R"], capture_output=True, text=True).stdout
    print(f"$ squeue\n{text}", end="")
    return text


def print_sbatch(sweep_dir: pathlib.Path, job_id: str) -> None:
    script = sweep_dir / "submitit" / f"{job_id.split('_')[0]}_submission.sh"
    lines = [line for line in script.read_text().splitlines() if line.startswith(("#SBATCH", "export", "srun"))]
    print(f"$ cat {script.name}\n" + "\n".join(lines))


def write_sweep(path: pathlib.Path, runs: list) -> pathlib.Path:
    path.write_text(f"CONFIG_DIR = {str(CONFIGS)!r}\n\ndef get_sweep(arg=None):\n    return {runs!r}\n")
    return path


def tiny(data_dir, **overrides) -> dict:
    return {"data.source": "idx", "data.data_dir": str(data_dir), "eval.train_samples": 32, **overrides}


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    squeue()
    raise AssertionError(f"Timed out after {timeout_s} s waiting for {what}.")


def job_state(job_id: str) -> str | None:
    return executors.live_slurm_jobs().get(job_id)


def single_run(sweep_dir: pathlib.Path) -> tuple[pathlib.Path, dict]:
    workdir = pathlib.Path(ledger.read_manifest(sweep_dir)["runs"][0]["workdir"])
    return workdir, ledger.latest_submissions(sweep_dir)[workdir.name]


def test_sweep_of_two_configs_by_two_seeds_finishes_and_is_collected(slurm_cluster, tiny_fashion_mnist, tmp_path):
    # The robustness report without its audit: the jobs need a report to collect, not the audit (which
    # test_readme.py's training runs and test_robustness.py run).
    common = tiny(tiny_fashion_mnist, num_epochs=1, batch_size=32, **{
        "robustness.attacks": ("fgsm",), "robustness.num_samples": 16, "robustness.eps_linf": (0.0, 0.1),
        "robustness.figures": False, "robustness.protocol": "all", "robustness.audit": False})
    runs = [{"config": f"fmnist_mlp_{s}.py", "overrides": {**common, "seeds": (seed,)}}
            for s in ("standard", "first") for seed in (0, 1)]
    sweep, sweep_dir = write_sweep(tmp_path / "fmnist_2x2.py", runs), tmp_path / "sweep"
    out = launch(sweep, "--executor=slurm", f"--sweep_dir={sweep_dir}", "--job_env=JAX_PLATFORMS=cpu",
                 "--slurm.time=20", "--slurm.array_parallelism=2")
    assert "4 runs: 0 done, 0 live, 4 start, 0 resume" in out
    job_ids = re.findall(r"as slurm job (\d+_\d)", out)
    assert len(job_ids) == 4 and len({j.split("_")[0] for j in job_ids}) == 1  # one job array
    print_sbatch(sweep_dir, job_ids[0])
    assert job_ids[0] in squeue() or (sweep_dir / "runs").exists()
    assert "4 runs: 4 done, 0 running, 0 pending, 0 failed" in launch(sweep, "--executor=slurm",
                                                                       f"--sweep_dir={sweep_dir}", "--wait")
    assert "4 runs: 4 done" in launch("status", sweep_dir)
    launch("collect", sweep_dir)
    summary = (sweep_dir / "collect" / "summary.csv").read_text().splitlines()
    assert len(summary) == 5 and {line.split(",")[0] for line in summary[1:]} == \
        {r["name"] for r in ledger.read_manifest(sweep_dir)["runs"]}
    assert len((sweep_dir / "collect" / "robustness.csv").read_text().splitlines()) == 1 + 4 * 2
    print((sweep_dir / "collect" / "summary.md").read_text())
    again = launch(sweep, "--executor=slurm", f"--sweep_dir={sweep_dir}", "--job_env=JAX_PLATFORMS=cpu")
    assert "4 runs: 4 done, 0 live, 0 start, 0 resume" in again and "submitted" not in again


def long_run(tmp_path, tiny_fashion_mnist, name: str) -> tuple[pathlib.Path, pathlib.Path]:
    overrides = tiny(tiny_fashion_mnist, num_epochs=12, batch_size=32, seeds=(0,), **{"robustness.enabled": False})
    return write_sweep(tmp_path / f"{name}.py", [{"config": "fmnist_mlp_standard.py", "overrides": overrides}]), \
        tmp_path / name


def resumed_from(log: pathlib.Path) -> list[int]:
    return [int(m) for m in re.findall(r"Starting from epoch (\d+) of 12", log.read_text())]


def assert_finished_every_epoch_once(workdir: pathlib.Path) -> None:
    summary = json.loads((workdir / "summary.json").read_text())
    tests = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "test"]
    assert summary["epochs"] == 12 and tests == list(range(1, 13))


def test_cancelled_job_resumes_from_its_checkpoint_when_launched_again(slurm_cluster, tiny_fashion_mnist, tmp_path):
    sweep, sweep_dir = long_run(tmp_path, tiny_fashion_mnist, "cancel")
    args = (sweep, "--executor=slurm", f"--sweep_dir={sweep_dir}", "--job_env=JAX_PLATFORMS=cpu", "--slurm.time=20")
    launch(*args)
    workdir, first = single_run(sweep_dir)
    print_sbatch(sweep_dir, first["job_id"])
    wait_until(lambda: job.checkpoint_epochs(workdir), 180, "the first checkpoint")
    # Freeze the job so that it cannot finish between the check and the cancel.
    subprocess.run(["scontrol", "suspend", first["job_id"]], check=True)
    squeue()
    assert not (workdir / "summary.json").exists()
    print(f"$ scancel {first['job_id']}  (checkpoints: {job.checkpoint_epochs(workdir)})")
    subprocess.run(["scancel", first["job_id"]], check=True)
    wait_until(lambda: job_state(first["job_id"]) in (None, "CANCELLED"), 60, "the cancel")
    squeue()
    status = launch("status", sweep_dir)
    assert "failed" in status and f"log: {first['stderr']}" in status
    out = launch(*args, "--wait")
    assert re.search(r"1 runs: 0 done, 0 live, 0 start, 1 resume\nresume .* from epoch \d+ of 12", out)
    _, second = single_run(sweep_dir)
    assert second["job_id"] != first["job_id"]
    starts = resumed_from(pathlib.Path(second["stderr"]))
    print(f"first job started at epoch {resumed_from(pathlib.Path(first['stderr']))}, the relaunched one at {starts}")
    assert len(starts) == 1 and 1 <= starts[0] < 12
    assert "1 runs: 1 done" in out
    assert_finished_every_epoch_once(workdir)


@pytest.mark.slow  # ~1 min: SLURM holds a requeued job back; `make test-all` runs it
def test_preempted_job_requeues_itself_and_resumes(slurm_cluster, tiny_fashion_mnist, tmp_path):
    sweep, sweep_dir = long_run(tmp_path, tiny_fashion_mnist, "preempt")
    launch(sweep, "--executor=slurm", f"--sweep_dir={sweep_dir}", "--job_env=JAX_PLATFORMS=cpu", "--slurm.time=60")
    workdir, submission = single_run(sweep_dir)
    job_id = submission["job_id"]
    wait_until(lambda: job.checkpoint_epochs(workdir), 180, "the first checkpoint")
    # What SLURM sends before preempting (or at the time limit): --signal=USR2@90 in the sbatch script.
    print(f"$ scancel --signal=USR2 {job_id}  (checkpoints: {job.checkpoint_epochs(workdir)})")
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_until(lambda: job_state(job_id) == "PENDING", 60, "the requeue")
    squeue()
    # SLURM holds a requeued job back for a while (Reason=BeginTime); let it start now.
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)
    wait_until(lambda: (workdir / "summary.json").exists() and job_state(job_id) in (None, "COMPLETED"), 300,
               "the requeued job to finish", poll_s=1.0)
    squeue()
    log = pathlib.Path(submission["stdout"]).read_text() + pathlib.Path(submission["stderr"]).read_text()
    starts = resumed_from(pathlib.Path(submission["stderr"]))
    print(f"one job id ({job_id}), started at epochs {starts}")
    assert "Requeued job" in log and len(starts) == 2 and starts[0] == 0 and 1 <= starts[1] < 12
    assert "1 runs: 1 done" in launch("status", sweep_dir)
    assert_finished_every_epoch_once(workdir)


def test_multi_task_job_sees_its_tasks(slurm_cluster, tmp_path):
    executor = executors.make_executor("slurm", tmp_path / "submitit", slurm={"ntasks": 2, "time": 5},
                                       job_env={"JAX_PLATFORMS": "cpu"}, job_name="multitask")
    submitted = executor.submit(job.task_environment)
    print_sbatch(tmp_path, str(submitted.job_id))
    wait_until(lambda: all(submitted.task(i).paths.result_pickle.exists() for i in range(2)), 120, "both tasks")
    tasks = submitted.results()
    print(f"tasks: {tasks}")
    assert sorted(t["rank"] for t in tasks) == [0, 1] and {t["num_tasks"] for t in tasks} == {2}
    assert {t["job_id"] for t in tasks} == {str(submitted.job_id)}


def test_two_task_job_trains_one_run_as_two_jax_processes(slurm_cluster, tiny_fashion_mnist, tmp_path):
    overrides = tiny(tiny_fashion_mnist, num_epochs=1, batch_size=32, seeds=(0, 1), **{"robustness.enabled": False})
    sweep = write_sweep(tmp_path / "two_tasks.py", [{"config": "fmnist_mlp_standard.py", "overrides": overrides}])
    sweep_dir = tmp_path / "two_tasks"
    args = (sweep, "--executor=slurm", f"--sweep_dir={sweep_dir}", "--job_env=JAX_PLATFORMS=cpu", "--slurm.ntasks=2",
            "--job_env=XLA_FLAGS=--xla_force_host_platform_device_count=2", "--slurm.time=20")
    launch(*args)
    workdir, submission = single_run(sweep_dir)
    print_sbatch(sweep_dir, submission["job_id"])
    squeue()
    assert "1 runs: 1 done, 0 running, 0 pending, 0 failed" in launch(*args, "--wait")
    logs = sorted((sweep_dir / "submitit").glob(f"{submission['job_id']}_*_log.err"))
    print("\n".join(f"{log.name}: {line}" for log in logs for line in log.read_text().splitlines()
                    if "JAX distributed:" in line))
    assert len(logs) == 2
    for rank, log in enumerate(logs):  # one JAX program over both tasks, two CPU devices each
        assert f"JAX distributed: process {rank} of 2, 2 local of 4 devices" in log.read_text()
    # Orbax wrote the checkpoint from both processes; process 0 alone wrote the metrics, once.
    assert {p.name for p in (workdir / "checkpoints" / "1").rglob("ocdbt.process_*")} == {"ocdbt.process_0",
                                                                                        "ocdbt.process_1"}
    keys = [(r["epoch"], r["seed"], r["split"]) for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())]
    assert len(keys) == len(set(keys)) == 2 * 3 and {seed for _, seed, _ in keys} == {0, 1}
    assert json.loads((workdir / "summary.json").read_text())["seeds"] == [0, 1]
