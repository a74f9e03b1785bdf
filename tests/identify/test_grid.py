"""Grid configs: architectures as names or hidden-size lists, whole-grid checks before any work, stable ids."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib

import pytest
from typer.testing import CliRunner

from learnscope.bundled import BUNDLED_DIR, bundled_configs
from learnscope.circuits import MLP, ConvNet
from learnscope.cli import app
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.grid import (
    check_architecture,
    check_feasible,
    circuit_for,
    expand,
    hidden_sizes,
    is_convolutional,
    load_grid,
    parse_grid,
)
from learnscope.identify.simulation import checkpoint_steps, circuit_for_architecture, train_and_record

runner = CliRunner()


def _raw(**grid_edit) -> dict:
    grid = {"tasks": ["digits"], "architectures": ["mlp_1x8"], "rules": ["sgdm"], "batch_sizes": [64], "seeds": [0]}
    return {"grid": grid | grid_edit, "training": {"epochs": 1, "checkpoints": 3, "n_train": 256, "n_probe": 16}}


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == "", "nothing (no header) is printed before the error"
    return lines[0]


# --------------------------------------------------------------------------------------------------------------
# architectures


def test_hidden_size_lists_name_the_mlp_and_equal_sizes_keep_the_lxw_name_and_id():
    assert check_architecture([160, 80]) == "mlp_160-80"
    assert hidden_sizes("mlp_160-80") == [160, 80] and hidden_sizes("mlp_3x64") == [64, 64, 64]
    assert hidden_sizes("cnn") is None
    grid = parse_grid(_raw(architectures=[[16, 8], [8, 8]]))
    assert grid["grid"]["architectures"] == ["mlp_16-8", "mlp_2x8"]
    by_name = expand(parse_grid(_raw(architectures=["mlp_2x8"])))[0]
    by_list = next(j for j in expand(grid) if j["architecture"] == "mlp_2x8")
    assert by_list["network_id"] == by_name["network_id"], "[8, 8] is the same network as mlp_2x8"
    with pytest.raises(ConfigError, match="duplicates"):
        parse_grid(_raw(architectures=[[8, 8], "mlp_2x8"]))


def test_a_hidden_size_list_trains_an_mlp_with_exactly_those_layers():
    spec = next(j for j in expand(parse_grid(_raw(architectures=[[16, 8]]))))
    row, obs = train_and_record(spec)
    assert row["status"] == "ok", row["reason"]
    assert len(row["angle_curves"]) == 3  # 64 -> 16 -> 8 -> 10: three weight layers
    assert sorted(obs.layer_index.unique()) == [0, 1, 2]
    from learnscope.datasets import load_task

    circuit = circuit_for_architecture("mlp_16-8", load_task("digits", n_train=256, n_probe=16))
    assert isinstance(circuit, MLP) and circuit.sizes == (64, 16, 8, 10)
    images = load_task("digits", n_train=256, n_probe=16, image=True)
    assert isinstance(circuit_for_architecture("cnn", images), ConvNet)


@pytest.mark.parametrize("entry, fragment", [
    ("mlp2x32", "did you mean 'mlp_2x32'"),
    ("MLP_3x64", "did you mean 'mlp_3x64'"),
    ("cn", "did you mean 'cnn'"),
    ("cnn_dep", "did you mean 'cnn_deep'"),
    ("resnet", "any 'mlp_<L>x<W>'"),
    (3, "a list of hidden sizes"),
])
def test_an_unknown_architecture_says_any_mlp_lxw_or_a_size_list_works(entry, fragment):
    with pytest.raises(UnknownNameError) as err:
        parse_grid(_raw(architectures=[entry]))
    message = str(err.value)
    assert fragment in message and "\n" not in message
    assert "any 'mlp_<L>x<W>'" in message and "[160, 80]" in message
    assert "mlp_4x128" not in message, "no fixed list of five names"


@pytest.mark.parametrize("entry", [[], [0, 8], [8, 2.5], [True], "mlp_3x0", "mlp_8-0"])
def test_impossible_hidden_sizes_are_config_errors(entry):
    with pytest.raises(ConfigError, match="hidden|width"):
        parse_grid(_raw(architectures=[entry]))


def test_toml_list_of_lists_is_accepted_by_load_grid(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[grid]\ntasks = ["digits"]\narchitectures = [[160, 80], "mlp_2x64"]\nrules = ["sgdm"]\n'
                   "batch_sizes = [64]\nseeds = [0]\n")
    assert load_grid(cfg)["grid"]["architectures"] == ["mlp_160-80", "mlp_2x64"]


@pytest.mark.parametrize("in_shape, pooled", [((1, 8, 8), (1, 1)), ((1, 28, 28), (3, 3)), ((1, 1, 40), (1, 5))])
def test_cnn_deep_is_a_knetc4_like_convnet_with_five_observed_layers(in_shape, pooled):
    assert check_architecture("cnn_deep") == "cnn_deep" and hidden_sizes("cnn_deep") is None
    assert is_convolutional("cnn") and is_convolutional("cnn_deep")
    assert not any(is_convolutional(a) for a in ("mlp_3x64", "mlp_160-80", "mlp_2x1024"))
    net = circuit_for("cnn_deep", in_shape, 10)
    assert isinstance(net, ConvNet) and len(net.channels) == 3
    # identify-spec §3.3, knetc4: conv1 early, conv2 middle, the rest deep; three pools: 8 -> 4 -> 2 -> 1, 28 -> 3
    assert [(la.name, la.group) for la in net.layers] == [
        ("conv1", "early"), ("conv2", "middle"), ("conv3", "deep"), ("fc4", "deep"), ("fc5", "deep")]
    assert net.layers[3].weight_shape[0] == net.channels[2] * pooled[0] * pooled[1]
    assert net.layers[4].weight_shape[1] == 10
    cnn = circuit_for("cnn", in_shape, 10)  # the 4-layer net is unchanged
    assert cnn.channels == (16, 32) and [la.name for la in cnn.layers] == ["conv1", "conv2", "fc3", "fc4"]


def test_cnn_deep_trains_on_digit_images_and_records_its_five_layers():
    spec = next(j for j in expand(parse_grid(_raw(architectures=["cnn_deep"], rules=["fa"]))))
    row, obs = train_and_record(spec)
    assert row["status"] == "ok", row["reason"]
    assert len(row["angle_curves"]) == 5 and sorted(obs.layer_index.unique()) == [0, 1, 2, 3, 4]
    layers = obs.drop_duplicates("layer_index").sort_values("layer_index")
    assert layers.layer.tolist() == ["conv1", "conv2", "conv3", "fc4", "fc5"]
    assert layers.group.tolist() == ["early", "middle", "deep", "deep", "deep"]


@pytest.mark.parametrize("entry, name, sizes", [
    ("mlp_2x512", "mlp_2x512", (64, 512, 512, 10)),
    ("mlp_2x1024", "mlp_2x1024", (64, 1024, 1024, 10)),
    ([1024, 512], "mlp_1024-512", (64, 1024, 512, 10)),
])
def test_wide_mlps_parse_and_build_with_those_widths(entry, name, sizes):
    grid = parse_grid(_raw(architectures=[entry]))
    assert grid["grid"]["architectures"] == [name]
    assert circuit_for(name, (64,), 10).sizes == sizes


# --------------------------------------------------------------------------------------------------------------
# training length against checkpoints (issue item 4)


def test_fewer_steps_than_checkpoints_is_refused_for_the_worst_batch_size():
    # 400 samples at batch 32: ceil(400/32) = 13 steps per epoch; at batch 64: 7. 21 checkpoints need 20 steps.
    raw = _raw(batch_sizes=[32, 64])
    raw["training"] = {"epochs": 1, "checkpoints": 21, "n_train": 400, "n_probe": 16}
    with pytest.raises(ConfigError) as err:
        parse_grid(raw)
    msg = str(err.value)
    assert "at batch size 64" in msg and "7 optimisation steps" in msg and "batch size(s) 32" in msg
    assert f"training.epochs to {math.ceil(20 / 7)}" in msg and "training.checkpoints to 8" in msg
    raw["training"]["epochs"] = 3  # 3 · 7 = 21 >= 20 at batch 64, 39 at batch 32
    parse_grid(raw)


@pytest.mark.parametrize("checkpoints, ok", [(21, True), (22, False)])
def test_the_step_check_matches_the_runtime_checkpoint_rule_at_the_boundary(checkpoints, ok):
    raw = _raw(batch_sizes=[32])
    raw["training"] = {"epochs": 1, "checkpoints": checkpoints, "n_train": 640, "n_probe": 16}  # 20 steps
    runtime_ok = True
    try:
        checkpoint_steps(20, checkpoints)
    except ConfigError:
        runtime_ok = False
    assert runtime_ok is ok
    if ok:
        parse_grid(raw)
    else:
        with pytest.raises(ConfigError, match="20 optimisation steps"):
            parse_grid(raw)


def test_a_batch_larger_than_the_training_set_counts_one_step_per_epoch():
    raw = _raw(batch_sizes=[4096])
    raw["training"] = {"epochs": 2, "checkpoints": 3, "n_train": 256, "n_probe": 16}
    parse_grid(raw)  # min(4096, 256) = 256: one step per epoch, 2 steps, 3 checkpoints
    raw["training"]["checkpoints"] = 4
    with pytest.raises(ConfigError, match="2 optimisation steps"):
        parse_grid(raw)


# --------------------------------------------------------------------------------------------------------------
# feasibility of every (task, architecture, rule) before any work (issue item 11)


@pytest.mark.parametrize("edit, fragment", [
    ({"tasks": ["teacher_classification"], "architectures": ["cnn"]}, "image layout"),
    ({"tasks": ["digits", "teacher_classification"], "architectures": ["mlp_1x8", "cnn"]}, "teacher_classification"),
    ({"architectures": ["cnn"], "rules": ["dfa"]}, "direct_feedback_alignment"),
    ({"tasks": ["teacher_classification"], "architectures": ["cnn_deep"]}, "architecture 'cnn_deep' needs a task"),
    ({"architectures": ["cnn_deep"], "rules": ["dfa"]}, "direct_feedback_alignment"),
])
def test_impossible_pairs_are_rejected_by_check_feasible(edit, fragment):
    grid = parse_grid(_raw(**edit))  # names and values are fine; only the combination is impossible
    with pytest.raises(ConfigError) as err:
        check_feasible(grid)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_n_train_larger_than_a_dataset_is_rejected_up_front():
    raw = _raw()
    raw["training"]["n_train"] = 5000  # digits has 1400 training examples
    with pytest.raises(ConfigError, match="task 'digits'.*1400"):
        check_feasible(parse_grid(raw))


def test_a_feasible_grid_passes_including_cnn_on_an_image_task():
    check_feasible(parse_grid(_raw(architectures=["cnn", "mlp_1x8"], rules=["sgdm", "fa"])))
    check_feasible(parse_grid(_raw(architectures=["cnn_deep", "mlp_1x8"], rules=["sgdm", "adam", "fa", "ia"])))


def test_cli_rejects_an_infeasible_grid_before_the_header_and_creates_nothing(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[grid]\ntasks = ["teacher_classification"]\narchitectures = ["cnn"]\nrules = ["sgdm"]\n'
                   "batch_sizes = [64]\nseeds = [0]\n[training]\nepochs = 1\ncheckpoints = 3\nn_train = 256\n"
                   "n_probe = 16\n")
    line = _one_line_error(runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(tmp_path / "s")]))
    assert "image layout" in line
    assert not (tmp_path / "s").exists()


def test_cli_rejects_too_short_training_in_one_line(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[grid]\ntasks = ["digits"]\narchitectures = ["mlp_1x8"]\nrules = ["sgdm"]\nbatch_sizes = [32]\n'
                   "seeds = [0]\n[training]\nepochs = 1\ncheckpoints = 21\nn_train = 400\n")
    line = _one_line_error(runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(tmp_path / "s")]))
    assert "13 optimisation steps" in line and "21 checkpoints" in line
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------------------------------------------
# activity measurement conditions (issue 15): recorded unit and probe counts checked before any work


def _with_conditions(*conditions: dict, **grid_edit) -> dict:
    return {**_raw(**grid_edit), "conditions": [{"name": "clean"}, *conditions]}


def test_more_units_than_a_hidden_layer_is_one_line_error_at_parse_time():
    with pytest.raises(ConfigError) as err:
        parse_grid(_with_conditions({"name": "u", "units": 100}, architectures=["mlp_2x256", "mlp_1x64"]))
    msg = str(err.value)
    assert "\n" not in msg and "units = 100" in msg and "64 units" in msg and "'mlp_1x64'" in msg
    assert "small_layers" in msg
    parse_grid(_with_conditions({"name": "u", "units": 100, "small_layers": "all"}, architectures=["mlp_1x64"]))


def test_check_feasible_checks_the_readout_and_input_units_too():
    grid = parse_grid(_with_conditions({"name": "u", "units": 8}))  # mlp_1x8: hidden width 8, readout 10 units
    check_feasible(grid)
    grid = parse_grid(_with_conditions({"name": "u", "units": 12}, architectures=["mlp_1x16"]))
    with pytest.raises(ConfigError) as err:  # the readout of digits has 10 units
        check_feasible(grid)
    assert "10 output units" in str(err.value) and "'fc2'" in str(err.value) and "\n" not in str(err.value)
    # activity-only conditions record output units only; "all" records every unit of smaller layers
    check_feasible(parse_grid(_with_conditions({"name": "u", "units": 10, "matched": False},
                                               architectures=["mlp_1x16"])))
    check_feasible(parse_grid(_with_conditions({"name": "u", "units": 12, "small_layers": "all"},
                                               architectures=["mlp_1x16"])))


def test_more_probes_than_the_probe_set_and_bad_activity_keys_are_refused():
    with pytest.raises(ConfigError, match=r"probes = 32 .* 16 stimuli"):
        parse_grid(_with_conditions({"name": "p", "probes": 32}))
    with pytest.raises(UnknownNameError, match="did you mean 'activity_model'"):
        parse_grid(_with_conditions({"name": "p", "activity_modle": "poisson"}))
    with pytest.raises(ConfigError, match="applies to activity_model 'poisson' / 'calcium'"):
        parse_grid(_with_conditions({"name": "p", "window": 0.2}))


def test_condition_tables_of_grids_without_activity_keys_are_unchanged():
    """Stores on disk compare their recorded grid with the parsed one: the tables of the original keys are those
    of earlier releases (all seven keys, nothing added), so existing stores keep resuming."""
    conds = load_grid("identify_tier1")["conditions"]
    keys = ["name", "frac", "sigma", "noise_mode", "seed", "gradavg_mode", "weight_norm_mode"]
    assert [list(c) for c in conds] == [keys] * 7
    activity = {c["name"]: c for c in load_grid("identify_tier1_activity")["conditions"]}
    assert activity["poisson"]["activity_model"] == "poisson" and "observables" not in activity["poisson"]
    assert activity["unmatched_100"]["matched"] is False


def test_cli_rejects_too_many_units_in_one_line_and_creates_nothing(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[grid]\ntasks = ["digits"]\narchitectures = ["mlp_1x16"]\nrules = ["sgdm"]\n'
                   "batch_sizes = [64]\nseeds = [0]\n[training]\nepochs = 1\ncheckpoints = 3\nn_train = 256\n"
                   'n_probe = 16\n[[conditions]]\nname = "clean"\n[[conditions]]\nname = "u"\nunits = 100\n'
                   "matched = false\n")
    line = _one_line_error(runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(tmp_path / "s")]))
    assert "units = 100" in line and "16 units" in line
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------------------------------------------
# config names and the ids of existing grids


def test_an_unknown_grid_name_lists_the_identify_configs_not_the_bias_ones(tmp_path):
    identify = [p.stem for p in bundled_configs("identify")]
    bias = [p.stem for p in bundled_configs("bias")]
    assert identify and bias
    line = _one_line_error(runner.invoke(app, ["identify", "simulate", "identify_tier9", "--out",
                                               str(tmp_path / "s")]))
    assert all(name in line for name in identify) and not any(name in line for name in bias)
    assert "did you mean 'identify_tier" in line
    line = _one_line_error(runner.invoke(app, ["identify", "simulate", bias[0], "--out", str(tmp_path / "s")]))
    assert "identify_tier0" in line and bias[0] in line and bias[1] not in line
    line = _one_line_error(runner.invoke(app, ["identify", "simulate", "nodir/grid.toml", "--out",
                                               str(tmp_path / "s")]))
    assert "'nodir/grid.toml' does not exist" in line and "identify_tier0" in line and bias[0] not in line


def test_configs_lists_each_identify_config_with_its_description():
    result = runner.invoke(app, ["identify", "configs"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [p.stem for p in bundled_configs("identify")]
    by_name = {ln.split()[0]: ln for ln in lines}
    first_comment = (BUNDLED_DIR / "identify_tier0.toml").read_text().splitlines()[0].lstrip("# ")
    assert first_comment in by_name["identify_tier0"]


@pytest.mark.parametrize("name", ["identify_tier0", "identify_tier1", "identify_tier1_activity"])
def test_network_ids_of_the_bundled_grids_follow_the_stored_formula(name):
    """Stores on disk are resumed by id: the id stays sha256 of the sorted JSON of what determines training,
    with the architecture name exactly as written in the config. Derived here from the TOML alone."""
    raw = tomllib.loads((BUNDLED_DIR / f"{name}.toml").read_text())
    g, training = raw["grid"], raw["training"]
    expected = []
    for task, arch, rule, bs, mult, seed in itertools.product(g["tasks"], g["architectures"], g["rules"],
                                                              g["batch_sizes"], g["learning_rates"], g["seeds"]):
        params = dict(raw["rules"][rule])
        lr = params.pop("lr")
        blob = {"task": task, "architecture": arch, "rule": rule, "batch_size": bs, "lr": lr * mult, "seed": seed,
                "rule_params": params, "training": training}
        expected.append(hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16])
    assert [j["network_id"] for j in expand(load_grid(name))] == expected
