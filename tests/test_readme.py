"""The README's commands, run as a new user runs them: in a fresh current directory, relative paths.

Each command is checked to appear in README.md verbatim (so the README and this test cannot drift
apart), then run in a subprocess from a new temporary directory with small-size overrides appended:
train (one epoch, then the run's own robustness report), ``gfa_jax.evaluate`` over two runs,
``gfa_jax.gfa_table``, the installed ``gfa-jax`` script, and the README's attack example.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

TRAIN = "python -m gfa_jax.main --config configs/fmnist_mlp_first.py --workdir runs/fmnist_mlp_first"
EVALUATE = ("python -m gfa_jax.evaluate --config configs/fmnist_mlp_standard.py "
            "--workdirs runs/fmnist_mlp_standard,runs/fmnist_mlp_first --outdir runs/fmnist_report")
GFA_TABLE = "python -m gfa_jax.gfa_table runs/fmnist_mlp_standard runs/fmnist_mlp_first"
SMALL_RUN = ["--config.data.source=idx", "--config.data.data_dir=data", "--config.num_epochs=1", "--config.seeds=(0,)",
             "--config.eval.train_samples=64", "--config.robustness.attacks=fgsm,pgd", "--config.robustness.num_samples=16",
             "--config.robustness.figures=False", "--config.robustness.protocol=all"]
SMALL_REPORT = ["--robustness.attacks=fgsm", "--robustness.num_samples=16", "--robustness.figures=False",
                "--robustness.protocol=all"]


def readme_command(command: str) -> list[str]:
    """``command`` as argv, after checking the README shows it (continuation lines joined)."""
    flat = re.sub(r"\s*\\\n\s*", " ", README)
    assert command in flat, f"README.md no longer shows `{command}`: update it or this test."
    argv = command.split()
    return [sys.executable] + argv[1:] if argv[0] == "python" else argv


def run(argv: list[str], cwd: pathlib.Path, *, config_dir: pathlib.Path) -> str:
    """Run ``argv`` in ``cwd`` with ``configs/...`` arguments pointing at the repository's configs through
    a relative path (``../../repo/configs``): nothing may depend on the current directory."""
    relative_configs = os.path.relpath(config_dir, cwd)
    argv = [a.replace("configs/", f"{relative_configs}/", 1) if a.startswith("configs/") else a for a in argv]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(argv)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory, tiny_fashion_mnist) -> pathlib.Path:
    """A new user's directory: the data beside it, nothing else (not the repository)."""
    directory = tmp_path_factory.mktemp("user")
    shutil.copytree(tiny_fashion_mnist, directory / "data")
    return directory


TRAIN_OUTPUT: dict[str, str] = {}


@pytest.fixture(scope="module")
def trained(user_dir) -> pathlib.Path:
    for name in ("fmnist_mlp_standard", "fmnist_mlp_first"):
        command = TRAIN.replace("fmnist_mlp_first", name)
        argv = readme_command(TRAIN)[:1] + command.split()[1:] + SMALL_RUN
        TRAIN_OUTPUT[name] = run(argv, user_dir, config_dir=REPO / "configs")
        assert "epoch 1: test accuracy" in TRAIN_OUTPUT[name]
    return user_dir


def test_train_writes_its_run_and_robustness_report_under_relative_workdir(trained):
    for name in ("fmnist_mlp_standard", "fmnist_mlp_first"):
        workdir = trained / "runs" / name
        assert (workdir / "summary.json").exists() and (workdir / "checkpoints" / "1").is_dir()
        assert (workdir / "robustness" / "table.md").exists()


def test_console_is_quiet(trained):
    output = TRAIN_OUTPUT["fmnist_mlp_first"]
    noisy = [line for line in output.splitlines() if re.match(r"^[IW]\d{4} ", line)]  # absl INFO / WARNING lines
    assert not noisy, f"absl/Orbax log lines reached the console:\n" + "\n".join(noisy[:10])


def test_evaluate_two_runs_then_gfa_table(trained):
    run(readme_command(EVALUATE) + SMALL_REPORT, trained, config_dir=REPO / "configs")
    table = (trained / "runs" / "fmnist_report" / "table.md").read_text()
    assert "standard" in table and "first" in table
    output = run(readme_command(GFA_TABLE), trained, config_dir=REPO / "configs")
    assert "| first | test |" in output


def test_installed_script_loads_a_config_from_anywhere(trained):
    script = pathlib.Path(sys.executable).parent / "gfa-jax"
    if not script.exists():
        pytest.skip(f"no installed gfa-jax script beside {sys.executable} (package not installed in this venv)")
    argv = [str(script), "--config", str(REPO / "configs" / "fmnist_mlp_deep.py"), "--workdir", "runs/deep"] + SMALL_RUN
    argv = [a for a in argv if not a.startswith("--config.robustness.")] + ["--config.robustness.enabled=False"]
    run(argv, trained, config_dir=REPO / "configs")
    assert (trained / "runs" / "deep" / "summary.json").exists()


def test_help_exits_zero(tmp_path):
    for module in ("gfa_jax.main", "gfa_jax.evaluate", "gfa_jax.gfa_table"):
        output = run([sys.executable, "-m", module, "--help"], tmp_path, config_dir=REPO / "configs")
        assert "python -m" in output


def test_readme_attack_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    example = next((b for b in blocks if "bounds=(0.0, 1.0)" in b), None)
    assert example, "README.md lost its example of attacking one's own model on [0, 1] inputs."
    namespace: dict = {}
    exec(compile(example, "README.md example", "exec"), namespace)  # noqa: S102 - our own README
