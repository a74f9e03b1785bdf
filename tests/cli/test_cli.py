"""The CLI: one-line errors with exit status 2, whole run directories, resumable series."""

from __future__ import annotations

import base64
import html
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from learnscope.bias.config import parse_config
from learnscope.bias.experiment import build_components, run_experiment
from learnscope.bias.search import estimate_search_memory
from learnscope.cli import app
from learnscope.errors import ConfigError, NonFiniteError
from learnscope.learners.memory import format_bytes
from learnscope.learners.registry import make_learner
from safety_helpers import HEALTHY, assert_error, assert_ok, assert_same_tree, invoke, tree

TINY = """
[run]
kind = "{kind}"
seeds = [0, 1]
title = "tiny"

[domain]
name = "disc"

[learner]
name = "ridge"

[meta]
hidden = 16

[search]
steps = 4
n_train = 6
n_test = 12
learners_per_step = 2

[analysis]
n_eval = 400
gen_draws = 10
"""

runner = CliRunner()


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda t: t.replace("steps = 4", "stesp = 4"), "did you mean 'steps'"),
        (lambda t: t.replace('name = "ridge"', 'name = "ridg"'), "did you mean 'ridge'"),
        (lambda t: t.replace('name = "disc"', 'name = "dsic"'), "did you mean 'disc'"),
        (lambda t: t.replace("steps = 4", "steps = -4"), "search.steps must be a positive integer"),
        (lambda t: t.replace("hidden = 16", "hidden = 0"), "meta.hidden must be a positive integer"),
        (lambda t: t.replace("[search]", "[search\n"), "not valid TOML"),
        (lambda t: t + "\n[learner_b]\nname = 'ridge'\n", "only used by run.kind = 'contrast'"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path, edit, fragment):
    cfg = _write(tmp_path, edit(TINY.format(kind="easiest")))
    out = tmp_path / "run"
    result = runner.invoke(app, ["bias", "run", str(cfg), "--out", str(out), "--no-progress"])
    assert fragment in _one_line_error(result)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"], "no staging directory is left behind"


def test_bad_set_override_and_missing_config_exit_2(tmp_path):
    cfg = _write(tmp_path, TINY.format(kind="easiest"))
    r = runner.invoke(app, ["bias", "run", str(cfg), "--out", str(tmp_path / "o"), "--set", "serch.steps=2"])
    assert "did you mean 'search'" in _one_line_error(r)
    r = runner.invoke(app, ["bias", "run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")])
    assert "does not exist" in _one_line_error(r)


def test_existing_output_needs_force(tmp_path):
    cfg = _write(tmp_path, TINY.format(kind="easiest"))
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = runner.invoke(app, ["bias", "run", str(cfg), "--out", str(out), "--no-progress"])
    assert "--force" in _one_line_error(r)
    assert (out / "keep.txt").read_text() == "mine"


def test_run_writes_a_consistent_run_directory(tmp_path):
    # a search that passes its result checks (HEALTHY, measured in safety_helpers), so the run exits 0
    text = TINY.format(kind="easiest").replace("steps = 4", f"steps = {HEALTHY['steps']}")
    cfg_path = _write(tmp_path, text)
    out = tmp_path / "run"
    lr = HEALTHY["lr"]
    r = runner.invoke(
        app, ["bias", "run", str(cfg_path), "--out", str(out), "--no-progress", "--set", f"search.lr={lr}"]
    )
    assert r.exit_code == 0, r.output
    assert "warning:" not in r.output and "error:" not in r.output
    assert f"report: {out / 'report.html'}" in r.stdout
    for name in ("config.toml", "metrics.json", "arrays.npz", "report.html", "losses.png", "functions.png"):
        assert (out / name).is_file(), name
    resolved = tomllib.loads((out / "config.toml").read_text())
    assert resolved["search"]["lr"] == lr  # the override is recorded
    assert resolved["learner"] == {"name": "ridge", "lam": 0.001, "bias": False}  # defaults are resolved
    again = parse_config(resolved)  # the resolved config is itself a valid config of the same experiment
    assert again.search == parse_config(
        tomllib.loads(text.replace("learners_per_step = 2", f"learners_per_step = 2\nlr = {lr}"))
    ).search
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert metrics["verdict"]["status"] == "ok" and metrics["verdict"]["warnings"] == []
    arrays = np.load(out / "arrays.npz")
    values, history = arrays["f1_values"], arrays["f1_history_loss"]
    assert values.shape == (2, 400) and history.shape == (HEALTHY["steps"], 2)
    for i, m in enumerate(metrics["functions"][0]["per_seed"]):
        assert m["label_std"] == pytest.approx(values[i].astype(float).std(), rel=1e-5)
        # final_loss summarises the end of the saved history: the mean of its last few losses, not of all of them
        tails = [history[-k:, i].mean() for k in range(1, len(history))]
        assert any(m["final_loss"] == pytest.approx(t, rel=1e-6) for t in tails), m["final_loss"]
    # the report is one self-contained file: every figure of the run directory embedded, the resolved config listed
    page = (out / "report.html").read_text()
    for png in out.glob("*.png"):
        assert base64.b64encode(png.read_bytes()).decode("ascii") in page, png.name
    listed = [ln for ln in (out / "config.toml").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(html.escape(ln) in page for ln in listed)


def test_series_checkpoints_resume_to_identical_functions(tmp_path):
    raw = tomllib.loads(TINY.format(kind="series") + "\n[[series]]\n\n[[series]]\nsteps = 3\n")
    cfg = parse_config(raw)
    first = run_experiment(cfg, progress=False, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("function_*.npz")) == ["function_1.npz", "function_2.npz"]
    (tmp_path / "function_2.npz").unlink()  # as if interrupted during the second function
    resumed = run_experiment(cfg, progress=False, checkpoint_dir=tmp_path)
    assert resumed.metrics["functions"][0]["resumed"] and not resumed.metrics["functions"][1]["resumed"]
    np.testing.assert_array_equal(first.arrays["f1_values"], resumed.arrays["f1_values"])
    np.testing.assert_allclose(first.arrays["f2_values"], resumed.arrays["f2_values"], rtol=1e-6, atol=1e-7)
    other = parse_config(raw | {"search": raw["search"] | {"lr": 0.5}})
    changed = run_experiment(other, progress=False, checkpoint_dir=tmp_path)
    assert not changed.metrics["functions"][0]["resumed"], "a checkpoint of a different config is not reused"


def test_easiest_command_without_config(tmp_path):
    out = tmp_path / "e"
    r = runner.invoke(
        app,
        [
            "bias",
            "easiest",
            "--learner",
            "ridge",
            "--domain",
            "disc",
            "--steps",
            "3",
            "--out",
            str(out),
            "--set",
            "analysis.n_eval=300",
            "--set",
            "analysis.gen_draws=5",
        ],
    )
    assert r.exit_code == 0, r.output
    resolved = tomllib.loads((out / "config.toml").read_text())
    assert resolved["domain"] == {"name": "disc"} and resolved["search"]["steps"] == 3
    r = runner.invoke(app, ["bias", "easiest", "--learner", "kernel", "--out", str(tmp_path / "x")])
    assert "did you mean" in _one_line_error(r)


def test_components_validate_before_any_work():
    raw = tomllib.loads(TINY.format(kind="easiest"))
    raw["learner"]["lam"] = -1.0
    with pytest.raises(ConfigError, match="lam"):
        build_components(parse_config(raw))


def test_failure_during_the_run_leaves_no_directory(tmp_path, monkeypatch):
    # A learner that fails at its third call, in the middle of the search: one error line, exit 2, and neither
    # the run directory nor its staging directory is left (a diverged search is not a failure: it is written with
    # its verdict and exits 3, tests/test_verdicts.py).
    cfg = _write(tmp_path, TINY.format(kind="easiest"))
    out = tmp_path / "run"
    ridge = type(make_learner({"name": "ridge"}))
    real, calls, present = ridge.fit_predict, [], []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            present.extend(p.name for p in tmp_path.iterdir())
            raise NonFiniteError("injected failure of the learner")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ridge, "fit_predict", failing)
    r = runner.invoke(app, ["bias", "run", str(cfg), "--out", str(out), "--no-progress"])
    assert "injected failure" in _one_line_error(r)
    assert len(present) > 1, "the failure came while the run was staged"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_compared_learners_are_judged_on_the_found_function(tmp_path):
    from learnscope.bias import measures
    from learnscope.learners import Ridge

    raw = tomllib.loads(TINY.format(kind="easiest"))
    # "same_ridge" is the run's own learner: on the same tasks it must score exactly the learner's own error
    raw["analysis"]["compare"] = [{"name": "ridge", "lam": 10.0, "label": "heavy_ridge"},
                                  {"name": "ridge", "label": "same_ridge"}]
    result = run_experiment(parse_config(raw), progress=False)
    cfg = result.config
    for i, m in enumerate(result.metrics["functions"][0]["per_seed"]):
        assert m["compare"]["same_ridge"] == m["gen_mse"]
        # the other learner is judged on those same tasks: the learner's error and its own are the two halves of one
        # paired comparison, with the tasks of the seed's evaluation
        paired = measures.paired_generalisation_difference(
            result.components.learner, Ridge(lam=10.0), result.functions[0].function.for_seed(i),
            result.components.domain, cfg.search.n_train, cfg.search.n_test, draws=cfg.analysis.gen_draws,
            seed=m["seed"])
        assert m["gen_mse"] == pytest.approx(paired["mse_a"], rel=1e-9)
        assert m["compare"]["heavy_ridge"] == pytest.approx(paired["mse_b"], rel=1e-9)
        assert m["compare"]["heavy_ridge"] != pytest.approx(m["gen_mse"], rel=1e-3)  # a different learner
    raw["analysis"]["compare"] = [{"name": "ridge"}, {"name": "ridge"}]
    with pytest.raises(ConfigError, match="two learners labelled 'ridge'"):
        build_components(parse_config(raw))
    raw["analysis"]["compare"] = [{"name": "rigde"}]
    with pytest.raises(ConfigError, match="did you mean 'ridge'"):
        build_components(parse_config(raw))


# ------------------------------------------------------------------------------------------ memory and theory
UNROLLED_TINY = TINY.format(kind="easiest").replace('name = "disc"', 'name = "sphere"\ndim = 3').replace(
    'name = "ridge"', 'name = "trained"\nsteps = 20\nlr = 0.025').replace("learners_per_step = 2", "")


def test_max_memory_refuses_a_run_that_will_not_fit_in_one_line_and_writes_nothing(tmp_path):
    cfg_path = _write(tmp_path, UNROLLED_TINY)
    cfg = parse_config(tomllib.loads(UNROLLED_TINY))
    comp = build_components(cfg)
    estimate = estimate_search_memory(comp.learner, cfg.search, 2, 3)
    before = tree(tmp_path)
    out = invoke(["bias", "run", cfg_path, "--out", tmp_path / "run", "--no-progress", "--max-memory", "1KiB"])
    line = assert_error(out, 2, "limit is 1 KiB", 'meta_gradient = "checkpointed"')
    assert format_bytes(int(estimate)) in line
    assert_same_tree(before, tree(tmp_path), "a refused run")
    # the estimate is printed before the run: the estimator, the inner steps and what is multiplied
    assert (f"estimated peak memory of the meta-gradient: {format_bytes(int(estimate))} (full, 20 inner steps, "
            "2 seeds × 1 learner per step)") in out.stdout
    # checkpointed needs less (the learner is built with it): the printed estimate follows the setting
    out = invoke(["bias", "run", cfg_path, "--out", tmp_path / "run", "--no-progress", "--max-memory", "1KiB",
                  "--set", "search.meta_gradient=checkpointed"])
    cheaper = estimate_search_memory(comp.learner, parse_config(
        tomllib.loads(UNROLLED_TINY.replace("[search]", '[search]\nmeta_gradient = "checkpointed"'))).search, 2, 3)
    assert int(cheaper) < int(estimate)
    assert f"{format_bytes(int(cheaper))} (checkpointed, 20 inner steps" in out.stdout
    assert_error(out, 2, "limit is 1 KiB")
    # a limit that is not a size, and the bias easiest command refuses alike
    assert_error(invoke(["bias", "run", cfg_path, "--out", tmp_path / "run", "--max-memory", "lots"]), 2,
                 "memory size")
    assert_error(invoke(["bias", "easiest", "--learner", "trained", "--steps", "2", "--out", tmp_path / "e",
                         "--max-memory", "1KiB"]), 2, "limit is 1 KiB")
    assert_same_tree(before, tree(tmp_path), "refused runs")


def test_a_closed_form_learner_prints_no_estimate_and_is_not_refused(tmp_path):
    # ridge's meta-gradient is a closed form of a few KiB: no estimate line, and the limit does not apply — the
    # command gets past the memory check to the next one (an existing --out without --force)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    r = runner.invoke(app, ["bias", "run", str(_write(tmp_path, TINY.format(kind="easiest"))), "--out",
                            str(tmp_path / "run"), "--no-progress", "--max-memory", "1KiB"])
    assert "--force" in _one_line_error(r)
    assert "estimated peak memory" not in r.output
    # the same run through an unrolled learner is refused by the memory check first
    r = runner.invoke(app, ["bias", "run", str(_write(tmp_path, UNROLLED_TINY)), "--out", str(tmp_path / "run"),
                            "--no-progress", "--max-memory", "1KiB"])
    assert "limit is 1 KiB" in _one_line_error(r) and "estimated peak memory" in r.stdout


def test_bias_theory_prints_the_predicted_ranking_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = invoke(["bias", "theory", "fig3_series_kernel_exact"])
    assert_ok(text)
    lines = text.stdout.splitlines()
    rank1 = next(ln for ln in lines if ln.split()[:1] == ["1"])
    assert rank1.split()[1:3] == ["degree", "1"] and rank1.split()[4] == "3"  # degree 1, multiplicity 3
    out = invoke(["bias", "theory", "fig3_series_kernel_exact", "--json"])
    assert_ok(out)
    summary = json.loads(out.stdout, parse_constant=pytest.fail)
    learner, n = summary["learner"], summary["n"]
    assert n == 6 and learner["ridge"] == 0.001  # the config's search.n_train and the learner's lam
    rows = {r["label"]: r for r in learner["eigenspaces"]}
    top = learner["eigenspaces"][0]
    # bias-spec §1.6, the config's comment: λ₁ = 1/12 (three first-order harmonics), then λ₂ = 3/256 (five);
    # the arc-cosine kernel of order 1 on S² has no odd degree ≥ 3
    assert (top["label"], top["multiplicity"]) == ("degree 1", 3) and top["eigenvalue"] == pytest.approx(1 / 12)
    assert learner["eigenspaces"][1]["multiplicity"] == 5
    assert learner["eigenspaces"][1]["eigenvalue"] == pytest.approx(3 / 256)
    assert rows["degree 3"]["eigenvalue"] == pytest.approx(0, abs=1e-12)
    kappa = learner["kappa"]
    for r in learner["eigenspaces"]:  # L = λ/(λ + κ)
        assert r["learnability"] == pytest.approx(r["eigenvalue"] / (r["eigenvalue"] + kappa), rel=1e-9, abs=1e-15)
    # κ solves Σ m λ/(λ + κ) + δ/κ = n, whose left side falls with κ: more points → smaller κ, a larger ridge →
    # larger κ, and every learnability moves the other way
    more = json.loads(invoke(["bias", "theory", "fig3_series_kernel_exact", "--json", "--n", "20"]).stdout)
    heavier = json.loads(invoke(["bias", "theory", "fig3_series_kernel_exact", "--json", "--ridge", "0.1"]).stdout)
    assert more["n"] == 20 and more["learner"]["kappa"] < kappa < heavier["learner"]["kappa"]
    assert more["learner"]["eigenspaces"][0]["learnability"] > top["learnability"]
    assert heavier["learner"]["ridge"] == 0.1 and heavier["learner"]["eigenspaces"][0]["learnability"] < \
        top["learnability"]
    assert list(tmp_path.iterdir()) == [], "bias theory writes nothing"
    # a learner without a kernel (a trained MLP): one error line, exit 2
    assert_error(invoke(["bias", "theory", "fig8_backprop_mlp"]), 2, "ridge")
    assert_error(invoke(["bias", "theory", "fig8_backprop_mlp", "--ridge", "0.001"]), 2, "has no kernel")
    assert list(tmp_path.iterdir()) == []
