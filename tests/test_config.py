"""The config: every key known, every name checked, every config file loads from any directory."""
import json
import pathlib
import subprocess
import sys

import pytest
from tiny_configs import load_config_module

from gfa_jax import attacks
from gfa_jax import config as gfa_config
from gfa_jax.evaluation.audit import BUDGETS

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO / "configs").glob("*.py"))
# Config files that take an argument (the table row), with one argument each to load them with.
CONFIG_ARGS = {"mnist_4fc_layerwise": "layer2", "mnist_3conv2fc_layerwise": "conv2,fixed",
               "cifar_vgg16_layerwise": "all_w,cpu", "cifar100_wrn_layerwise": "conv_all,cpu",
               "mnist_4fc_standard": "cpu"}


def load_config_file(path: pathlib.Path, arg: str | None = None):
    module = load_config_module(path.stem)
    return module.get_config(arg) if arg is not None else module.get_config()


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_config_file_is_valid_and_self_contained(path, tmp_path, monkeypatch):
    assert "from configs" not in path.read_text() and "import configs" not in path.read_text(), (
        f"{path.name} imports the configs folder: shared pieces belong in gfa_jax.paper_configs.")
    monkeypatch.chdir(tmp_path)
    gfa_config.validate(load_config_file(path))
    if path.stem in CONFIG_ARGS:
        gfa_config.validate(load_config_file(path, CONFIG_ARGS[path.stem]))


def test_validate_names_unknown_keys_and_bad_beta():
    config = gfa_config.base_config()
    config.unlock()
    config.optimizer.lr = 0.1
    config.gfa.beta = (1.0,)
    with pytest.raises(ValueError, match="optimizer.lr.*learning_rate"):
        gfa_config.validate(config)
    config = gfa_config.base_config()
    config.gfa.beta = (1.0,)
    with pytest.raises(ValueError, match="one weight per layer"):
        gfa_config.validate(config)


@pytest.mark.parametrize("field, value, message", [
    ("task_loss", "hinge", r"task_loss 'hinge' is not one of \['ce', 'mse'\]"),
    ("model.name", "resnet9000", r"model.name 'resnet9000' is not one of"),
    ("data.name", "imagenet", r"data.name 'imagenet' is not one of"),
    ("robustness.attacks", ("pgd", "pgdd"), r"unknown attack 'pgdd'; registered: apgd"),
    ("robustness.attack_options.pgd.loss", "hinge", r"attack_options.pgd.loss 'hinge' is not one of"),
    ("robustness.eps_linf", (0.0, -0.1), r"robustness.eps_linf must be finite and >= 0, got \[-0.1\]"),
    ("robustness.table_eps_l2", float("nan"), r"robustness.table_eps_l2 must be finite and >= 0"),
    ("adversarial.eps", -1.0, r"adversarial.eps must be finite and >= 0"),
    ("layerwise.eps", float("nan"), r"layerwise.eps must be finite and >= 0"),
    ("robustness.protocol", "some", r"robustness.protocol 'some' is not 'common_correct' or 'all'"),
    ("robustness.audit_budget", "fast", r"robustness.audit_budget 'fast' is not one of \['quick', 'standard', 'thorough'\]"),
    ("robustness.audit_eps_linf", -0.3, r"robustness.audit_eps_linf must be finite and >= 0"),
    ("seeds", (1, 1), r"seeds \(1, 1\) repeat a seed"),
    ("batch_size", 0, r"batch_size must be >= 1"),
])
def test_validate_names_the_bad_value_and_what_is_allowed(field, value, message):
    config = gfa_config.base_config()
    *parents, leaf = field.split(".")
    section = config
    for parent in parents:
        section = section[parent]
    section[leaf] = value
    with pytest.raises(ValueError, match=message):
        gfa_config.validate(config)


def test_audit_budget_names_are_the_audits():
    assert gfa_config.AUDIT_BUDGETS == tuple(BUDGETS)
    config = gfa_config.base_config()
    assert config.robustness.audit and config.robustness.audit_budget == "quick"
    assert config.robustness.audit_eps_linf is None


@pytest.mark.parametrize(
    "strategy, model, expected",
    [
        ("standard", "paper_cnn", (0, 0, 0, 0, 0)),
        ("first", "paper_cnn", (2, 0, 0, 0, 0)),
        ("deep", "paper_cnn", (2, 2, 2, 0, 0)),
        ("deep", "paper_mlp", (2, 2, 0)),
    ],
)
def test_strategy_beta(strategy, model, expected):
    assert gfa_config.strategy_beta(strategy, model, 2.0) == tuple(float(e) for e in expected)


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match=r"Unknown strategy 'deeper'; choose one of \('standard', 'first', 'deep'\)"):
        gfa_config.strategy_beta("deeper", "paper_mlp", 0.1)


def test_every_attack_has_an_options_section_with_its_defaults():
    options = gfa_config.base_config().robustness.attack_options
    assert sorted(options) == sorted(attacks.REGISTRY)
    assert options.pgd.steps == 10 and options.square.n_queries == 5000
    assert "eps" not in options.pgd and "bounds" not in options.pgd
    config = gfa_config.base_config()
    config.robustness.attack_options.pgd.alpha = 0.01  # a None default takes a value
    assert gfa_config.attack_kwargs(config.robustness, "pgd")["alpha"] == 0.01
    assert "alpha" not in gfa_config.attack_kwargs(gfa_config.base_config().robustness, "pgd")


def test_a_config_json_written_before_attack_options_upgrades():
    legacy = json.loads(gfa_config.base_config().to_json_best_effort())
    del legacy["robustness"]["attack_options"], legacy["optimizer"]["decay_epochs"]
    legacy["robustness"]["attack_kwargs"] = json.dumps({"square": {"n_queries": 100}})
    upgraded = gfa_config.upgrade_legacy(legacy)
    assert upgraded["robustness"]["attack_options"]["square"]["n_queries"] == 100
    assert "attack_kwargs" not in upgraded["robustness"] and upgraded["optimizer"]["decay_epochs"] == [100, 150]


def test_cli_rejects_an_unknown_override(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gfa_jax.main", "--config", str(REPO / "configs" / "quickstart.py"),
         "--config.optimizer.lr=0.1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "lr" in result.stderr and ("not found" in result.stderr.lower() or "unknown" in result.stderr.lower())


def test_cli_names_a_missing_config_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gfa_jax.main", "--config", "configs/no_such.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "no_such.py" in result.stderr
