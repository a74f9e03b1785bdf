"""Config parsing: unknown keys name the nearest valid one, overrides apply, every bundled config validates."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from learnscope.bias.config import apply_overrides, load_config, parse_config, parse_override
from learnscope.bias.experiment import build_components
from learnscope.bundled import bundled_configs
from learnscope.errors import ConfigError, UnknownNameError

BASE = {
    "run": {"kind": "easiest", "seeds": [0]},
    "domain": {"name": "sphere", "dim": 3},
    "learner": {"name": "ridge"},
}


def test_minimal_config_gets_library_defaults():
    cfg = parse_config(BASE)
    assert cfg.target == {"name": "uniform"}
    assert cfg.search.distance == "w2"
    assert cfg.function_settings() == [cfg.search]


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({**BASE, "serch": {}}, "did you mean 'search'"),
        ({**BASE, "search": {"stesp": 10}}, "did you mean 'steps'"),
        ({**BASE, "meta": {"hiden": 10}}, "did you mean 'hidden'"),
        ({**BASE, "run": {"kind": "easyest"}}, "did you mean 'easiest'"),
        ({**BASE, "analysis": {"n_evl": 10}}, "did you mean 'n_eval'"),
    ],
)
def test_unknown_keys_name_the_nearest_valid_key(raw, fragment):
    with pytest.raises(UnknownNameError, match=fragment):
        parse_config(raw)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({**BASE, "search": {"steps": 0}}, "search.steps must be a positive integer"),
        ({**BASE, "search": {"n_train": -3}}, "search.n_train must be a positive integer"),
        ({**BASE, "search": {"lr": -1.0}}, "search.lr must be a positive number"),
        ({**BASE, "run": {"seeds": []}}, "run.seeds"),
        ({**BASE, "run": {"seeds": [1, 1]}}, "duplicates"),
        ({**BASE, "run": {"kind": "contrast"}}, "needs a \\[learner_b\\]"),
        ({**BASE, "learner_b": {"name": "ridge"}}, "only used by run.kind = 'contrast'"),
        ({**BASE, "run": {"kind": "series"}}, "\\[\\[series\\]\\]"),
        ({"run": {}, "learner": {"name": "ridge"}}, "needs a \\[domain\\]"),
    ],
)
def test_bad_values_raise_one_line_config_errors(raw, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_config(raw)
    assert "\n" not in str(info.value)


UNROLLED = {**BASE, "learner": {"name": "trained", "steps": 20}}


def test_search_meta_gradient_goes_into_the_unrolled_learners_table():
    cfg = parse_config({**UNROLLED, "search": {"meta_gradient": "checkpointed", "segment": 5}})
    assert cfg.learner == {"name": "trained", "steps": 20, "meta_gradient": "checkpointed", "segment": 5}
    learner = build_components(cfg).learner
    assert (learner.meta_gradient, learner.segment) == ("checkpointed", 5)
    # written only in [learner], it is taken into [search] (the resolved config says the same in both places)
    cfg = parse_config({**UNROLLED, "learner": UNROLLED["learner"] | {"meta_gradient": "truncated", "truncate": 3}})
    assert (cfg.search.meta_gradient, cfg.search.truncate) == ("truncated", 3)
    # es runs no autograd through the learner: its table is left as written
    cfg = parse_config({**UNROLLED, "search": {"meta_gradient": "es", "es_pairs": 3}})
    assert cfg.learner == UNROLLED["learner"] and (cfg.search.es_pairs, cfg.search.es_sigma) == (3, 0.05)
    # both learners of a contrast get it; a closed-form learner B is left alone
    cfg = parse_config({**UNROLLED, "run": {"kind": "contrast"}, "learner_b": {"name": "kernel_ridge"},
                        "search": {"meta_gradient": "implicit"}})
    assert cfg.learner["meta_gradient"] == "implicit" and cfg.learner_b == {"name": "kernel_ridge"}


@pytest.mark.parametrize("raw, error, fragment", [
    ({**BASE, "learner": {"name": "kernel_ridge"}, "search": {"meta_gradient": "checkpointed"}}, ConfigError,
     "search.meta_gradient = 'checkpointed' needs an unrolled learner .*; kernel_ridge has a closed form"),
    ({**BASE, "learner": {"name": "small_cnn"}, "search": {"meta_gradient": "truncated", "truncate": 2}}, ConfigError,
     "small_cnn offers meta_gradient = 'full' only"),
    ({**BASE, "run": {"kind": "series"}, "series": [{}, {"meta_gradient": "implicit"}]}, ConfigError,
     "'implicit' needs an unrolled learner"),
    ({**UNROLLED, "learner": UNROLLED["learner"] | {"meta_gradient": "full"}, "search": {"meta_gradient": "implicit"}},
     ConfigError, "\\[learner\\] meta_gradient = 'full' contradicts search.meta_gradient = 'implicit'"),
    ({**UNROLLED, "search": {"meta_gradient": "chekpointed"}}, UnknownNameError, "did you mean 'checkpointed'"),
    ({**UNROLLED, "search": {"meta_gradient": "es", "es_sigma": -1.0}}, ConfigError,
     "search.es_sigma must be a positive number"),
    ({**BASE, "learner": {"name": "traind"}, "search": {"meta_gradient": "implicit"}}, UnknownNameError,
     "did you mean 'trained'"),
])
def test_meta_gradient_misconfigurations_are_one_line_errors(raw, error, fragment):
    with pytest.raises(error, match=fragment) as err:
        parse_config(raw)
    assert "\n" not in str(err.value)


def test_a_resolved_config_with_an_estimator_parses_to_the_same_experiment():
    for search in ({"meta_gradient": "checkpointed"}, {"meta_gradient": "truncated", "truncate": 4},
                   {"meta_gradient": "es", "es_pairs": 2}, {}):
        cfg = parse_config({**UNROLLED, "search": search})
        comp = build_components(cfg)
        again = parse_config(cfg.to_dict(learners=comp.learner_specs()))
        assert again.search == cfg.search
        assert build_components(again).learner.describe() == comp.learner.describe()


def test_series_tables_override_search_per_function():
    raw = {**BASE, "run": {"kind": "series"}, "search": {"steps": 7, "lr": 0.5}, "series": [{}, {"steps": 3}]}
    cfg = parse_config(raw)
    assert [s.steps for s in cfg.series] == [7, 3]
    assert [s.lr for s in cfg.series] == [0.5, 0.5]


def test_overrides_parse_toml_literals_and_index_series_from_one():
    assert parse_override("search.steps=50") == (["search", "steps"], 50)
    assert parse_override("search.optimiser=adam") == (["search", "optimiser"], "adam")
    assert parse_override("run.seeds=[1, 2]") == (["run", "seeds"], [1, 2])
    raw = {**BASE, "series": [{"steps": 1}, {"steps": 2}]}
    out = apply_overrides(raw, ["series.2.steps=9", "learner.lam=0.5"])
    assert out["series"][1]["steps"] == 9 and out["learner"]["lam"] == 0.5
    assert raw["series"][1]["steps"] == 2  # the input is not modified
    with pytest.raises(ConfigError, match="index"):
        apply_overrides(raw, ["series.3.steps=1"])
    with pytest.raises(UnknownNameError, match="did you mean 'search'"):
        apply_overrides(raw, ["serch.steps=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(raw, ["search.steps"])


@pytest.mark.parametrize("path", bundled_configs("bias"), ids=lambda p: p.stem)
def test_every_bundled_config_validates_and_builds(path: Path):
    cfg = load_config(path)
    build_components(cfg)
    assert cfg.title, "bundled configs carry a title for the report"
    assert tomllib.loads(path.read_text())["run"]["seeds"] == cfg.seeds


def test_seed_option_replaces_config_seeds_and_names_resolve():
    cfg = load_config("fig2_ridge_disc", seed=3)
    assert cfg.seeds == [3]
    with pytest.raises(UnknownNameError, match="did you mean 'fig2_ridge_disc'"):
        load_config("fig2_ridge_dsc")


# ------------------------------------------------------------------------------------------ series checkpoints
SERIES = BASE | {
    "run": {"kind": "series", "seeds": [0, 1]},
    "meta": {"hidden": 12},
    "search": {"steps": 3, "n_train": 6, "n_test": 12, "n_reference": 200},
    "series": [{}, {}, {}],
    "analysis": {"n_eval": 300, "gen_draws": 4, "max_degree": 2},
}


def _series_run(checkpoints: Path):
    from learnscope.bias.experiment import run_experiment

    return run_experiment(parse_config(SERIES), progress=False, checkpoint_dir=checkpoints)


def test_checkpoints_are_written_whole_and_resumed_exactly(tmp_path):
    first = _series_run(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["function_1.npz", "function_2.npz", "function_3.npz"]  # no temporary file left behind
    again = _series_run(tmp_path)
    assert all(f.extra.get("resumed") for f in again.functions)
    for a, b in zip(first.metrics["functions"], again.metrics["functions"], strict=True):
        assert a["per_seed"] == b["per_seed"]
    assert first.metrics["verdict"] == again.metrics["verdict"]


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_damaged_checkpoint_is_one_line_error_and_keeps_the_others(tmp_path, damage):
    from learnscope.errors import LearnscopeError

    _series_run(tmp_path)
    bad = tmp_path / "function_2.npz"
    data = bad.read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"not a zip file" * 50}[damage])
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != bad.name}
    with pytest.raises(LearnscopeError) as err:
        _series_run(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "function_2.npz" in msg and "delete it and rerun" in msg
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != bad.name} == kept
    # the remedy works: function 1 resumes, 2 is trained again — bit-for-bit as before, so function 3, trained
    # against it, resumes too — and the result is a clean run's
    bad.unlink()
    resumed = _series_run(tmp_path)
    assert [f.extra.get("resumed", False) for f in resumed.functions] == [True, False, True]
    (tmp_path / "clean").mkdir()
    clean = _series_run(tmp_path / "clean")
    for a, b in zip(resumed.metrics["functions"], clean.metrics["functions"], strict=True):
        assert a["per_seed"] == b["per_seed"]


def test_a_checkpoint_that_does_not_fit_the_experiment_is_refused(tmp_path):
    import numpy as np

    from learnscope.errors import LearnscopeError

    _series_run(tmp_path)
    path = tmp_path / "function_1.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z}
    arrays["history_loss"] = arrays["history_loss"][:2]  # a history of 2 of the 3 steps
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(LearnscopeError, match="function_1.npz is damaged .*3 steps of 2 seeds"):
        _series_run(tmp_path)


def test_a_later_function_is_not_resumed_on_top_of_other_earlier_functions(tmp_path):
    import numpy as np

    _series_run(tmp_path)
    path = tmp_path / "function_2.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z}
    arrays["state_param0"] = arrays["state_param0"] * 1.5  # a valid function 2, but not the one f3 was trained on
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    run = _series_run(tmp_path)
    assert [f.extra.get("resumed", False) for f in run.functions] == [True, True, False]
