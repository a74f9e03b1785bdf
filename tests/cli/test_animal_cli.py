"""The animal experiment loop through files only (issue 13): new → plan → a script answers as the simulated animal
would → record → … reaches the in-process result for the same seed; every bad response file is one error line,
exit 2, and leaves the session log as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from learnscope.animal.config import load_animal_config
from learnscope.animal.log import LOG, read_log
from learnscope.animal.loop import response_rng, run_in_process
from learnscope.animal.simulated import TrialBudget
from learnscope.bundled import resolve_config_path
from safety_helpers import EXIT_BAD_INPUT, assert_error, assert_ok, assert_result_failed, invoke, tree


def _answer(sheet: Path, out: Path, cfg) -> None:
    """What a lab's animal would answer: the config's simulated animal, fed the sheet's stimuli only."""
    df = pd.read_csv(sheet)
    coords = [c for c in df.columns if c.startswith("x")]
    train, probe = df[df.block == "train"], df[df.block == "probe"]
    session = int(df.session.iloc[0])
    repeats = int(probe.presentations.iloc[0])
    r = cfg.make_animal().run_session(train[coords].to_numpy(), train.label.to_numpy(), probe[coords].to_numpy(),
                                      repeats=repeats, rng=response_rng(cfg.seed, session))
    m = len(probe)
    pd.DataFrame({"session": session, "item": np.repeat(np.arange(m), repeats),
                  "repeat": np.tile(np.arange(repeats), m), "response": r.reshape(-1)}).to_csv(out, index=False)


def _run_through_files(tmp_path: Path, config: str) -> Path:
    exp = tmp_path / "exp"
    assert_ok(invoke(["animal", "new", config, "--out", exp]))
    cfg = load_animal_config(config)
    for k in range(50):
        sheet = tmp_path / f"session_{k:03d}.csv"
        out = invoke(["animal", "plan", exp, "--out", sheet])
        assert_ok(out)
        if "no session to plan" in out.stdout:
            return exp
        _answer(sheet, tmp_path / f"responses_{k:03d}.csv", cfg)
        assert_ok(invoke(["animal", "record", exp, tmp_path / f"responses_{k:03d}.csv"]))
    raise AssertionError("the loop did not finish in 50 sessions")


@pytest.mark.parametrize("config", ["animal_kernel_graded", "animal_kernel_binary"])
def test_the_file_loop_reaches_the_in_process_result(tmp_path, config):
    exp = _run_through_files(tmp_path, config)
    cfg = load_animal_config(config)
    route = cfg.make_route()
    direct = run_in_process(route, cfg.make_animal(), TrialBudget(cfg.budget), seed=cfg.seed)
    via_files = read_log(exp / LOG)
    assert len(via_files) == len(direct) >= 3
    for a, b in zip(via_files, direct, strict=True):
        np.testing.assert_array_equal(a.responses, b.responses)
        np.testing.assert_array_equal(a.plan.probe_x, b.plan.probe_x)
    f_files = route.estimate(via_files).f1(route.references)
    f_direct = route.estimate(direct).f1(route.references)
    np.testing.assert_allclose(f_files, f_direct, rtol=0, atol=1e-12)
    status = invoke(["animal", "status", exp])
    assert (exp / "report.html").is_file() and (exp / "status.json").is_file()
    assert "trials used" in status.stdout


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """An experiment with two recorded sessions and the sheet of the third."""
    root = tmp_path_factory.mktemp("animal")
    exp = root / "exp"
    cfg_path = resolve_config_path("animal_kernel_binary", "animal")
    assert_ok(invoke(["animal", "new", cfg_path, "--out", exp]))
    cfg = load_animal_config(cfg_path)
    for k in range(3):
        assert_ok(invoke(["animal", "plan", exp, "--out", root / f"s{k}.csv"]))
        if k < 2:
            _answer(root / f"s{k}.csv", root / f"r{k}.csv", cfg)
            assert_ok(invoke(["animal", "record", exp, root / f"r{k}.csv"]))
    _answer(root / "s2.csv", root / "good.csv", cfg)
    return root, exp


def _bad(good: pd.DataFrame, case: str) -> str:
    df = good.copy()
    if case == "missing column":
        return df.drop(columns="repeat").to_csv(index=False)
    if case == "unknown column":
        return df.assign(rt=1.0).to_csv(index=False)
    if case == "duplicated row":
        return pd.concat([df, df.iloc[:1]]).to_csv(index=False)
    if case == "missing row":
        return df.iloc[1:].to_csv(index=False)
    if case == "already recorded":
        return df.assign(session=1).to_csv(index=False)
    if case == "future session":
        return df.assign(session=7).to_csv(index=False)
    if case == "two sessions":
        return pd.concat([df.iloc[:3].assign(session=1), df.iloc[3:]]).to_csv(index=False)
    if case == "NaN response":
        df["response"] = df["response"].astype(float)
        df.loc[3, "response"] = np.nan
        return df.to_csv(index=False)
    if case == "text response":
        return df.assign(response=df.response.astype(object).where(df.index != 2, "go")).to_csv(index=False)
    if case == "not a choice":
        return df.assign(response=df.response.astype(float).where(df.index != 4, 0.5)).to_csv(index=False)
    if case == "probe outside the plan":
        return df.assign(item=df.item.where(df.index != 0, 999)).to_csv(index=False)
    if case == "empty":
        return ""
    raise ValueError(case)


CASES = ["missing column", "unknown column", "duplicated row", "missing row", "already recorded", "future session",
         "two sessions", "NaN response", "text response", "not a choice", "probe outside the plan", "empty"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_response_file_is_one_error_and_changes_nothing(planned, tmp_path, case):
    root, exp = planned
    bad = tmp_path / "bad.csv"
    bad.write_text(_bad(pd.read_csv(root / "good.csv"), case))
    before = tree(exp)
    assert_error(invoke(["animal", "record", exp, bad]), EXIT_BAD_INPUT)
    assert tree(exp) == before


def test_binary_garbage_is_not_a_response_file(planned, tmp_path):
    _, exp = planned
    bad = tmp_path / "bad.csv"
    bad.write_bytes(bytes(range(256)) * 4)
    before = tree(exp)
    assert_error(invoke(["animal", "record", exp, bad]), EXIT_BAD_INPUT)
    assert tree(exp) == before


def test_the_good_file_records_after_the_bad_ones(planned, tmp_path):
    root, exp = planned
    work = tmp_path / "exp"
    shutil.copytree(exp, work)
    assert_ok(invoke(["animal", "record", work, root / "good.csv"]))
    assert len(read_log(work / LOG)) == 3
    assert_error(invoke(["animal", "record", work, root / "good.csv"]), EXIT_BAD_INPUT, "already recorded")


def test_plan_never_overwrites_a_file_it_did_not_write(planned, tmp_path):
    _, exp = planned
    mine = tmp_path / "notes.csv"
    mine.write_text("my,own\n1,2\n")
    assert_error(invoke(["animal", "plan", exp, "--out", mine]), EXIT_BAD_INPUT)
    assert_error(invoke(["animal", "plan", exp, "--out", mine, "--force"]), EXIT_BAD_INPUT)
    assert mine.read_text() == "my,own\n1,2\n"


def test_a_folder_that_is_not_an_experiment(tmp_path):
    assert_error(invoke(["animal", "status", tmp_path]), EXIT_BAD_INPUT, "not an animal experiment")


def test_simulating_a_near_interpolating_animal_fails_its_checks(tmp_path):
    cfg = Path(resolve_config_path("animal_kernel_graded", "animal")).read_text().replace("lam = 0.1", "lam = 0.001")
    path = tmp_path / "interp.toml"
    path.write_text(cfg)
    out = invoke(["animal", "simulate", path, "--out", tmp_path / "exp", "--no-progress", "--no-truth"])
    assert_result_failed(out, "noise amplification")
    assert "f1: not converged" in out.stdout


def test_simulate_compares_with_algorithm1_on_the_hidden_learner(tmp_path):
    """The white-box f1 (a short Algorithm 1 run on the hidden kernel) is saved, and the route's agreement with it
    in status.json equals the agreement recomputed from the saved arrays."""
    import json

    from learnscope.animal.log import load_experiment
    from learnscope.animal.status import experiment_status
    from learnscope.animal.whitebox import truth_agreement

    cfg = Path(resolve_config_path("animal_kernel_graded", "animal")).read_text()
    cfg += '\n[algorithm1]\nsearch = { steps = 60, learners_per_step = 4 }\nmeta = { hidden = 32 }\n'
    path = tmp_path / "quick.toml"
    path.write_text(cfg)
    exp = tmp_path / "exp"
    assert_ok(invoke(["animal", "simulate", path, "--out", exp, "--no-progress"]))
    status = json.loads((exp / "status.json").read_text())
    saved = np.load(exp / "truth.npz")
    cfg_, log = load_experiment(exp)
    st = experiment_status(cfg_, log)
    again = truth_agreement(st.estimate, st.route, {"values": saved["values"],
                                                     "rotation_invariant": bool(saved["rotation_invariant"])})
    assert status["agreement_with_white_box_f1"]["iterated"] == pytest.approx(again["iterated"], abs=1e-12)
    assert bool(saved["rotation_invariant"])


def test_a_sheet_path_that_cannot_be_written_and_a_folder_of_responses_are_bad_input(planned, tmp_path):
    _, exp = planned
    (tmp_path / "afile").write_text("x")
    before = tree(exp)
    for out in (tmp_path / "nodir" / "s.csv", tmp_path / "afile" / "s.csv", tmp_path):
        assert_error(invoke(["animal", "plan", exp, "--out", out]), EXIT_BAD_INPUT)
    assert_error(invoke(["animal", "record", exp, tmp_path]), EXIT_BAD_INPUT, "is a folder")
    assert tree(exp) == before
