"""The robustness audit: silent on sound models, and flags each constructed masked defence with the
indicator that names its failure, while its worst case falls far below the plain PGD number.

Every model here is one setting of ``masked_models.defended_apply`` (the undefended and PGD-trained
models are its all-off setting), so each attack compiles once for the whole file.
"""
import dataclasses
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from masked_models import defended
from tiny_models import BOUNDS, init_mlp, mlp_apply, trained_mlp

from gfa_jax import attacks
from gfa_jax import audit as audit_module
from gfa_jax.evaluation import audit as library
from gfa_jax.evaluation import audit_runs
from gfa_jax.losses import cross_entropy

EPS = 0.2
N = 64
# The quick budget, with the unbounded-eps APGD as long as the other: one APGD program serves both
# radii (compilation, not running, is what costs on a model this small).
BUDGET = dataclasses.replace(library.BUDGETS["quick"], unbounded_apgd_iter=library.BUDGETS["quick"].apgd_iter)


@pytest.fixture(scope="module")
def data():
    params, x, y = trained_mlp()
    return params, x[:N], y[:N]


def run_audit(logits_fn, data, **kwargs):
    _, x, y = data
    kwargs = {"eps": EPS, "budget": BUDGET, "training_loss": cross_entropy, **kwargs}
    return library.audit(logits_fn, x, y, jax.random.key(0), bounds=BOUNDS, **kwargs)


@pytest.fixture(scope="module")
def undefended_report(data):
    return run_audit(defended(data[0]), data)


@pytest.fixture(scope="module")
def pgd_trained_params():
    """The tiny MLP trained with PGD-3 adversarial examples at eps 0.2 (Madry et al. 2018)."""
    _, x, y = trained_mlp()
    params = init_mlp(jax.random.key(1))
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    def loss(p, x_adv):
        return optax.softmax_cross_entropy_with_integer_labels(mlp_apply(p, x_adv), y).mean()

    @jax.jit
    def step(p, s, key):
        x_adv = attacks.pgd(lambda z: mlp_apply(p, z), x, y, key, eps=EPS, steps=3, bounds=BOUNDS)
        grads = jax.grad(loss)(p, jax.lax.stop_gradient(x_adv))
        updates, s = tx.update(grads, s)
        return optax.apply_updates(p, updates), s

    for i in range(300):
        params, opt_state = step(params, opt_state, jax.random.key(i))
    return params


def test_no_flag_on_an_undefended_model(undefended_report):
    report = undefended_report
    assert report.flags == (), {n: report.indicators[n]["evidence"] for n in report.flags}
    assert report.verdict == "trustworthy"
    # eps is in the interesting range: some samples fall, some survive
    assert 0.1 < report.robust_accuracy < 0.9
    assert report.robust_accuracy <= min(report.attack_accuracy.values())
    assert report.per_sample.shape == (N,) and report.per_sample.mean() == report.robust_accuracy
    assert {"fgsm", "fgsm_train_loss", "pgd10", "apgd_ce", "apgd_dlr", "apgd_train_loss", "square"} <= set(
        report.attack_accuracy)
    assert all(v <= library.UNBOUNDED_ACCURACY for v in report.unbounded_accuracy.values())
    for name, ind in report.indicators.items():
        assert set(ind) == {"value", "threshold", "flagged", "evidence", "kind"}
        assert ind["kind"] == ("attack" if name in ("not_converged", "loss_not_increasing") else "masking"), name
    saved = json.loads(json.dumps(report.to_dict()))
    assert library.AuditReport.from_dict(saved).to_dict() == saved


def test_no_flag_on_a_pgd_trained_model(data, pgd_trained_params, undefended_report):
    report = run_audit(defended(pgd_trained_params), data, surrogate_logits_fn=defended(data[0]))
    assert report.flags == (), {n: report.indicators[n]["evidence"] for n in report.flags}
    assert "transfer_apgd_ce" in report.attack_accuracy
    assert report.robust_accuracy > undefended_report.robust_accuracy + 0.2  # the training worked


MASKED = {
    "input quantisation": ({"quantise": 1.0}, "zero_gradients/ce"),
    "stop_gradient preprocessing": ({"negate_straight_through": 1.0}, "gradient_fd_mismatch"),
    "saturated softmax": ({"temperature": 1000.0}, "zero_gradients/ce"),
    "randomised input transform": ({"noise": 0.3}, "randomness"),
    "gradient scaled to ~0 by a custom VJP": ({"grad_scale": 1e-30}, "zero_gradients/ce"),
}


@pytest.mark.parametrize("case", sorted(MASKED))
def test_masked_defence_is_flagged_by_the_right_indicator(case, data):
    settings, expected = MASKED[case]
    report = run_audit(defended(data[0], **settings), data, surrogate_logits_fn=defended(data[0]))
    assert expected in report.flags, report.indicators[expected]
    assert expected in report.masking_flags
    assert report.verdict.startswith("gradient masking suspected: ")
    # the audit's worst case is far below what plain PGD reports
    assert report.robust_accuracy < report.attack_accuracy["pgd10"] - 0.3, report.attack_accuracy
    assert library.explain(report)


def test_flag_names_the_failure_not_every_failure(data):
    # A sign-flipped gradient is wrong, not zero; a saturated CE leaves the scale-free DLR intact.
    flipped = run_audit(defended(data[0], negate_straight_through=1.0), data)
    assert not any(name.startswith("zero_gradients") for name in flipped.flags)
    saturated = run_audit(defended(data[0], temperature=1000.0), data)
    assert "zero_gradients/dlr" not in saturated.flags
    assert saturated.attack_accuracy["apgd_dlr"] < saturated.attack_accuracy["apgd_ce"]


def test_a_gradient_of_the_wrong_size_is_flagged_even_where_sign_attacks_still_work(data, undefended_report):
    report = run_audit(defended(data[0], grad_scale=1e-3), data)
    assert report.flags == ("gradient_fd_mismatch",)
    assert report.robust_accuracy == pytest.approx(undefended_report.robust_accuracy, abs=0.05)


def _report(flagged: dict[str, str]) -> library.AuditReport:
    indicators = {name: library.indicator(1.0, 0.5, True, "evidence", kind=kind) for name, kind in flagged.items()}
    indicators["randomness"] = library.indicator(0.0, 1e-4, False, "evidence")
    return library.AuditReport(tuple(flagged), indicators, 0.2, np.ones(4, bool), 1.0, {"pgd10": 0.5}, {},
                               {"pgd10": ["too high"]}, {"eps": 0.3, "budget": "quick"})


def test_verdict_tells_gradient_masking_from_weak_attacks():
    assert _report({}).verdict == "trustworthy" and _report({}).masking_flags == ()
    weak = _report({"not_converged": "attack", "loss_not_increasing": "attack"})
    assert weak.flags == ("not_converged", "loss_not_increasing") and weak.masking_flags == ()
    assert weak.verdict == "weak attacks: use the audited number (not_converged, loss_not_increasing)"
    assert "Weak attacks" in library.explain(weak)[-1] and "report the audited worst case" in library.explain(weak)[-1]
    masked = _report({"zero_gradients/ce": "masking", "not_converged": "attack"})
    assert masked.masking_flags == ("zero_gradients/ce",) and masked.attack_flags == ("not_converged",)
    assert masked.verdict == "gradient masking suspected: zero_gradients/ce; weak attacks: not_converged"
    assert "Gradient masking suspected" in library.explain(masked)[-1]
    assert [library.indicator_kind(n) for n in ("not_converged", "budget_failure", "randomness")] == [
        "attack", "attack", "masking"]
    with pytest.raises(ValueError, match="kind"):
        library.indicator(0.0, 1.0, False, "", kind="other")


def test_minimum_norm_failures_are_budget_failures():
    success = np.array([True] * 7 + [False] * 3)
    norm = np.where(success, np.linspace(0.1, 0.7, 10), np.inf)
    result = attacks.MinNormResult(x_adv=np.zeros((10, 2)), success=success, norm=norm)
    assert library.minimum_norm_outcomes(result, eps=0.3) == {
        "failed": 3, "success_within_eps": 3, "success_beyond_eps": 4}
    flagged = library.minimum_norm_indicator(result, attack="cw_l2")
    assert flagged["flagged"] and flagged["value"] == pytest.approx(0.3) and flagged["kind"] == "attack"
    assert not library.minimum_norm_indicator(attacks.MinNormResult(result.x_adv, np.ones(10, bool), norm))["flagged"]


def test_public_module_and_command_line():
    assert audit_module.audit is library.audit and audit_module.AuditReport is library.AuditReport
    assert audit_module.audit_runs is audit_runs.audit_runs
    root = pathlib.Path(library.__file__).resolve().parents[2]  # this checkout, not an installed copy
    completed = subprocess.run([sys.executable, "-m", "gfa_jax.audit", "--help"], capture_output=True, text=True,
                               cwd=root)
    assert completed.returncode == 0, completed.stderr
    assert "--surrogate" in completed.stdout and "--budget" in completed.stdout


@pytest.mark.slow
def test_command_line_audits_every_seed_of_every_run(tiny_fashion_mnist, tmp_path):
    from tiny_configs import tiny_config

    from gfa_jax.training import train

    workdirs = []
    for strategy in ("standard", "deep"):
        train.train_and_evaluate(tiny_config(tiny_fashion_mnist, seeds=(0, 1), strategy=strategy, epochs=2),
                                 str(tmp_path / strategy))
        workdirs.append(str(tmp_path / strategy))
    result = audit_module.audit_runs(workdirs[1:], str(tmp_path / "audit"), surrogate=workdirs[0], eps=0.3,
                                     num_samples=16)
    assert set(result["runs"]["deep"]["seeds"]) == {"0", "1"}
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["settings"]["num_samples"] == result["settings"]["num_samples"] > 0
    text = (tmp_path / "audit" / "audit.md").read_text()
    assert "## deep" in text and "audited worst case" in text and "transfer_beats_white_box" in text
    assert "| not_converged | attack |" in text


@pytest.mark.slow
def test_l2_threat_model(data):
    l2_eps = EPS * 6  # the L2 norm of an L-inf step of EPS on 36 pixels
    sound = run_audit(defended(data[0]), data, norm="l2", eps=l2_eps)
    assert sound.flags == (), {n: sound.indicators[n]["evidence"] for n in sound.flags}
    assert 0.1 < sound.robust_accuracy < 0.9
    assert sound.settings["unbounded_eps"] == pytest.approx(6.0)  # half the width times sqrt(36)
    masked = run_audit(defended(data[0], quantise=1.0), data, norm="l2", eps=l2_eps,
                       surrogate_logits_fn=defended(data[0]))
    assert "zero_gradients/ce" in masked.flags
    assert masked.robust_accuracy < masked.attack_accuracy["pgd10"] - 0.3
