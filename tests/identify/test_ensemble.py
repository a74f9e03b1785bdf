"""Ensemble simulation: E networks trained as one batched run equal the same networks trained one at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.errors import ConfigError
from learnscope.identify.ensemble import EnsembleTraining, ensemble_key, group_specs, member_lr_update
from learnscope.identify.grid import expand, parse_grid
from learnscope.identify.simulation import Diverged, setup_training, training_checkpoints
from learnscope.plasticity.optimisers import Optimiser
from learnscope.plasticity.rules import make_rule

RULES4 = ["sgdm", "adam", "fa", "ia"]


def _grid(architectures, rules, *, tasks=("digits",), seeds=(0, 1, 2), learning_rates=(1.0,), batch_sizes=(32,),
          n_train=96, epochs=2, lr_spread=3.0, conditions=None, rule_tables=None):
    return parse_grid({
        "grid": {"tasks": list(tasks), "architectures": list(architectures), "rules": list(rules),
                 "batch_sizes": list(batch_sizes), "learning_rates": list(learning_rates), "seeds": list(seeds)},
        "training": {"epochs": epochs, "checkpoints": 4, "n_train": n_train, "n_probe": 16, "lr_spread": lr_spread},
        "rules": rule_tables or {"sgdm": {"lr": 0.05}, "fa": {"lr": 0.05},
                                 "ia": {"lr": 0.05, "ia_alpha": 0.006, "ia_beta": 0.003, "ia_normalise": "weight"}},
        "conditions": conditions or [{"name": "clean"}],
    })


def _solo(spec):
    """[(step, params, feedback)] of one network trained alone, or the Diverged it raised."""
    run = setup_training(spec)
    out = []
    try:
        for pt in training_checkpoints(run):
            out.append((pt.step, [p.clone() for p in pt.params], run.rule.feedback(pt.state)))
    except Diverged as err:
        return out, err
    return out, None


def _ensemble(specs):
    runs = [setup_training(s) for s in specs]
    got = {m: [] for m in range(len(runs))}
    diverged, finished = {}, []
    for ev in EnsembleTraining(runs):
        for m, pt in ev.points.items():
            got[m].append((pt.step, [p.clone() for p in pt.params], runs[m].rule.feedback(pt.state)))
        diverged.update(ev.diverged)
        finished += ev.finished
    return got, diverged, finished


def _loss(spec, params):
    run = setup_training(spec)
    with torch.no_grad():
        return float(run.loss_fn(run.circuit.forward(params, run.task.x_train), run.task.y_train))


def _assert_same(solo, ens, rtol=1e-5, atol=1e-6):
    assert [s for s, _, _ in solo] == [s for s, _, _ in ens]
    for (_, p1, fb1), (_, p2, fb2) in zip(solo, ens, strict=True):
        for a, b in zip(p1, p2, strict=True):
            torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
        for a, b in zip(fb1 or [], fb2 or [], strict=True):
            if a is not None:
                torch.testing.assert_close(b, a, rtol=rtol, atol=atol)


@pytest.mark.parametrize("rule", RULES4)
def test_mlp_ensemble_equals_each_network_trained_alone(rule):
    specs = expand(_grid(["mlp_2x16"], [rule]))
    assert len({s["lr"] for s in specs}) == 3  # lr_spread gives every member its own learning rate
    (group,) = group_specs(specs, 8)
    ens, diverged, finished = _ensemble(group)
    assert not diverged and sorted(finished) == [0, 1, 2]
    for m, spec in enumerate(group):
        solo, err = _solo(spec)
        assert err is None
        assert len(solo) == 4
        _assert_same(solo, ens[m])
        # the loss curve (what the network row records) follows from the parameters
        np.testing.assert_allclose([_loss(spec, p) for _, p, _ in ens[m]], [_loss(spec, p) for _, p, _ in solo],
                                   rtol=1e-5)
    # the members really differ (their own seeds, data orders and learning rates)
    assert not torch.allclose(ens[0][-1][1][0], ens[1][-1][1][0])


@pytest.mark.parametrize("rule", RULES4)
def test_cnn_ensemble_equals_each_network_trained_alone(rule):
    specs = expand(_grid(["cnn"], [rule], seeds=(0, 1), n_train=64, epochs=1, batch_sizes=(16,)))
    (group,) = group_specs(specs, 8)
    ens, diverged, _ = _ensemble(group)
    assert not diverged
    for m, spec in enumerate(group):
        solo, err = _solo(spec)
        assert err is None
        _assert_same(solo, ens[m], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("task", "rule"), [("digits:contrastive", "sgdm"), ("digits:contrastive", "fa"),
                                          ("digits:autoencoding", "adam"), ("teacher_regression", "ia")])
def test_other_objectives_ensemble_equals_each_network_trained_alone(task, rule):
    # contrastive members draw their augmented views from their own generators
    specs = expand(_grid(["mlp_2x16"], [rule], tasks=(task,), seeds=(0, 1), n_train=64))
    (group,) = group_specs(specs, 8)
    ens, diverged, _ = _ensemble(group)
    assert not diverged
    for m, spec in enumerate(group):
        solo, err = _solo(spec)
        assert err is None
        _assert_same(solo, ens[m])


def test_members_with_jitter_measure_at_their_own_steps():
    conds = [{"name": "clean"}, {"name": "jit", "jitter": 0.3}]
    specs = expand(_grid(["mlp_2x16"], ["sgdm"], conditions=conds, n_train=128, epochs=2))
    runs = [setup_training(s) for s in specs]
    assert len({tuple(sorted(r.jittered)) for r in runs}) > 1  # the members' jittered steps differ
    ens, _, _ = _ensemble(specs)
    for m, spec in enumerate(specs):
        solo, _ = _solo(spec)
        _assert_same(solo, ens[m])


def test_sgd_and_weight_decay_and_kp_take_the_optimisers_step():
    # plain sgd (run as momentum 0) and Kolen-Pollack (learned B with its own buffers), with weight decay
    specs = expand(_grid(["mlp_2x16"], ["sgd", "kp"], seeds=(0, 1), rule_tables={"sgd": {"lr": 0.1},
                                                                                  "kp": {"lr": 0.05}}))
    for group in group_specs(specs, 8):
        ens, _, _ = _ensemble(group)
        for m, spec in enumerate(group):
            solo, _ = _solo(spec)
            _assert_same(solo, ens[m])


@pytest.mark.parametrize("optimiser", ["momentum", "adam"])
def test_member_lr_update_is_the_optimisers_update_member_by_member(optimiser):
    # plain reference: Optimiser.update with a float lr on each member alone, two steps, with weight decay
    g = torch.Generator().manual_seed(3)
    E, lrs = 3, [0.3, 0.01, 2.0]
    P = [torch.randn(E, 4, 5, generator=g, dtype=torch.float64), torch.randn(E, 5, generator=g, dtype=torch.float64)]
    rule = make_rule({"name": "adam" if optimiser == "adam" else "sgdm", "lr": 0.5, "weight_decay": 0.1})
    from learnscope.identify.ensemble import _lr_free_rule
    from learnscope.plasticity.rules import RuleState

    free = _lr_free_rule(rule)
    state = RuleState((None,), free.optim.init_state(P), {}, 0)
    params = P
    refs = [[p[m] for p in P] for m in range(E)]
    ref_opt = [Optimiser(optimiser, lrs[m]).init_state(refs[m]) for m in range(E)]
    lr = torch.tensor(lrs, dtype=torch.float64)
    for t in (1, 2):
        grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        wd = [gr + 0.1 * p for gr, p in zip(grads, params, strict=True)]
        _, opt = free.optim.update(params, wd, state.opt, t)
        new_state = RuleState((None,), opt, {}, t)
        params, state = member_lr_update(rule, lr, params, state, new_state)
        for m in range(E):
            o = Optimiser(optimiser, lrs[m])
            refs[m], ref_opt[m] = o.update(refs[m], [gr[m] + 0.1 * p for gr, p in zip(grads, refs[m], strict=True)],
                                           ref_opt[m], t)
            for a, b in zip(refs[m], params, strict=True):
                torch.testing.assert_close(b[m], a, rtol=1e-13, atol=1e-14)


def test_a_diverging_member_is_reported_and_the_others_match_their_solo_runs():
    # learning-rate multipliers 1 and 1e7: the second network blows up, the first must not notice
    specs = expand(_grid(["mlp_2x16"], ["sgdm"], seeds=(0, 1), learning_rates=(1.0, 1e7), lr_spread=1.0))
    (group,) = group_specs(specs, 8)
    assert len(group) == 4
    ens, diverged, finished = _ensemble(group)
    big = [m for m, s in enumerate(group) if s["lr_multiplier"] > 1]
    assert sorted(diverged) == big and sorted(finished) == [m for m in range(4) if m not in big]
    for m, spec in enumerate(group):
        solo, err = _solo(spec)
        if m in big:
            assert err is not None
            assert str(diverged[m]) == str(err) and diverged[m].step == err.step
            _assert_same(solo, ens[m])  # the points before it diverged
        else:
            assert err is None
            _assert_same(solo, ens[m])


def test_a_dropped_member_gets_no_more_points():
    specs = expand(_grid(["mlp_2x16"], ["sgdm"], seeds=(0, 1)))
    runs = [setup_training(s) for s in specs]
    training = EnsembleTraining(runs)
    seen = {0: 0, 1: 0}
    for ev in training:
        for m in ev.points:
            seen[m] += 1
        if ev.step == 0:
            training.drop(0)
    assert seen == {0: 1, 1: 4}
    solo, _ = _solo(specs[1])
    # member 1 trained on alone (now an ensemble of one) still matches its solo run
    ens = []
    training = EnsembleTraining(runs)
    for ev in training:
        if 1 in ev.points:
            ens.append((ev.step, [p.clone() for p in ev.points[1].params], runs[1].rule.feedback(ev.points[1].state)))
        if ev.step == 0:
            training.drop(0)
    _assert_same(solo, ens)


def test_grouping_is_deterministic_and_never_mixes_incompatible_jobs():
    grid = _grid(["mlp_2x16", "mlp_2x8"], ["sgdm", "fa"], seeds=tuple(range(5)), learning_rates=(1.0, 2.0),
                 batch_sizes=(16, 32))
    specs = expand(grid)
    groups = group_specs(specs, 4)
    assert groups == group_specs(specs, 4)
    ids = [s["network_id"] for g in groups for s in g]
    assert sorted(ids) == sorted(s["network_id"] for s in specs) and len(set(ids)) == len(ids)
    fields = ("task", "architecture", "rule", "batch_size", "rule_params", "training", "conditions")
    for g in groups:
        assert 1 <= len(g) <= 4
        assert all(all(s[f] == g[0][f] for f in fields) for s in g)
    # 2 archs x 2 rules x 2 batch sizes = 8 families of 10 (5 seeds x 2 lr multipliers) -> 3 groups of 4, 3, 3
    assert len(groups) == 8 * 3
    assert sorted({len(g) for g in groups}) == [3, 4]
    # the families' members are exactly the seeds x lr multipliers of one cell
    fam = [g for g in groups if ensemble_key(g[0]) == ensemble_key(specs[0])]
    assert sum(len(g) for g in fam) == 10
    # one network per group with max_members = 1, in the jobs' order
    assert [g[0]["network_id"] for g in group_specs(specs, 1)] == [s["network_id"] for s in specs]
    # any other difference keeps jobs apart: rule options, or a key a future grid adds to its jobs
    twin = dict(specs[1], network_id="x")
    assert len(group_specs([specs[0], twin], 8)) == 1
    assert len(group_specs([specs[0], dict(twin, rule_params={"momentum": 0.5})], 8)) == 2
    assert len(group_specs([specs[0], dict(twin, objective="contrastive")], 8)) == 2


def test_incompatible_runs_are_refused():
    specs = expand(_grid(["mlp_2x16", "mlp_2x8"], ["sgdm"], seeds=(0,)))
    with pytest.raises(ConfigError, match="cannot train as one ensemble"):
        EnsembleTraining([setup_training(s) for s in specs])
    with pytest.raises(ConfigError, match="max_members"):
        group_specs(specs, 0)
    assert math.isfinite(specs[0]["lr"])


CONDITIONS = [
    {"name": "clean"}, {"name": "abs", "sigma": 0.3}, {"name": "rel", "sigma": 0.3, "noise_mode": "relative"},
    {"name": "half", "frac": 0.5, "sigma": 0.1}, {"name": "units", "units": 5, "small_layers": "all"},
    {"name": "frob", "weight_norm_mode": "frobenius", "frac": 0.3},
    {"name": "act", "observables": "act", "sigma": 0.2}, {"name": "spikes", "activity_model": "poisson"},
]


@pytest.mark.parametrize("architecture", ["mlp_2x16", "cnn"])
def test_batched_measurement_equals_measure_layer_member_by_member(architecture):
    from learnscope import rng
    from learnscope.identify.observables import Condition, measure_layer, measure_layer_members

    specs = expand(_grid([architecture], ["fa"], seeds=(0, 1, 2), n_train=64, epochs=1, batch_sizes=(16,)))
    runs = [setup_training(s) for s in specs]
    circuit, probe = runs[0].circuit, runs[0].task.probe
    gen = torch.Generator().manual_seed(0)
    params = circuit.init_params(gen, ensemble=3)
    params = [p + 0.05 * torch.randn(p.shape, generator=gen) for p in params]  # not the initial distribution
    _, records = circuit.forward(params, probe, record=True)
    keys = [r.network_key for r in runs]
    conds = [Condition(**c) for c in CONDITIONS]
    for layer in circuit.layers:
        li = layer.index
        W = params[2 * li]
        layout = "torch" if W.ndim == 5 else "as_given"
        jacobians: dict = {}  # shared by the conditions of this layer, as record_members does
        for ci, cond in enumerate(conds):
            batched = measure_layer_members(
                W, records[li]["input"], records[li]["output"],
                lambda x, li=li: circuit.layer_forward(params, li, x), cond,
                noise_generator=rng.network_generator(cond.seed, li, 2, ci), weight_layout=layout,
                network_keys=keys, layer_index=li, session=2, jacobians=jacobians)
            for e in range(3):
                member = [p[e] for p in params]
                solo = measure_layer(W[e], records[li]["input"][e], records[li]["output"][e],
                                     lambda x, li=li, member=member: circuit.layer_forward(member, li, x), cond,
                                     noise_generator=rng.network_generator(cond.seed, li, 2, ci),
                                     weight_layout=layout, network_key=keys[e], layer_index=li, session=2)
                assert list(batched[e]) == list(solo)
                # float64 statistics of the same tensors: to rounding; the Jacobian is float32 (batched kernels)
                grad = [n.startswith("gradavg") for n in solo]
                for sel, rtol in (([not g for g in grad], 1e-10), (grad, 1e-5)):
                    np.testing.assert_allclose(np.array(list(batched[e].values()))[sel],
                                               np.array(list(solo.values()))[sel], rtol=rtol, atol=1e-12,
                                               err_msg=f"{layer.name} {cond.name} member {e}")


def _frames_close(a, b, rtol=1e-5):
    from learnscope.identify.observables import ALL_OBS

    assert (a is None) == (b is None)
    if a is None:
        return
    meta = [c for c in a.columns if c not in ALL_OBS]
    assert list(a.columns) == list(b.columns)
    assert a[meta].equals(b[meta])
    va, vb = a[list(ALL_OBS)].to_numpy(), b[list(ALL_OBS)].to_numpy()
    np.testing.assert_array_equal(np.isnan(va), np.isnan(vb))
    np.testing.assert_allclose(va, vb, rtol=rtol, atol=1e-6)


def _rows_close(r1, r2):
    curves = ("loss_curve", "test_accuracy_curve", "train_accuracy_curve", "performance_curve")
    for k in r1:
        if k == "wall_time_s":
            continue
        if k in curves:
            np.testing.assert_allclose(r2[k], r1[k], rtol=1e-5, atol=1e-7, err_msg=k)
        elif k == "angle_curves":
            np.testing.assert_allclose(np.array(r2[k], float), np.array(r1[k], float), rtol=1e-4, atol=1e-4)
        else:
            assert r2[k] == r1[k], k


def test_ensemble_recording_equals_train_and_record_network_by_network():
    from learnscope.identify.ensemble import train_and_record_ensemble
    from learnscope.identify.simulation import train_and_record

    conds = [{"name": "clean"}, {"name": "half", "frac": 0.5, "sigma": 0.1},
             {"name": "rel", "sigma": 0.3, "noise_mode": "relative"}, {"name": "jit", "jitter": 0.3},
             {"name": "spikes", "activity_model": "poisson"}]
    # sgdm at lr multipliers 1 and 1e7 (diverges) and fa: rows, curves and every observable as alone
    specs = expand(_grid(["mlp_2x16"], ["sgdm", "ia"], seeds=(0, 1), learning_rates=(1.0, 1e7), conditions=conds))
    seen = set()
    for group in group_specs(specs, 8):
        out = list(train_and_record_ensemble(group))
        assert sorted(s["network_id"] for s, _, _ in out) == sorted(s["network_id"] for s in group)
        for spec, row, obs in out:
            seen.add(row["status"])
            solo_row, solo_obs = train_and_record(spec)
            assert row["status"] == solo_row["status"] and row["reason"] == solo_row["reason"]
            _rows_close(solo_row, row)
            _frames_close(solo_obs, obs)
    assert {"ok", "diverged"} <= seen  # (and a "failed": Poisson spikes of a diverging network, alone too)


def test_a_member_that_cannot_be_set_up_fails_alone(monkeypatch):
    from learnscope.identify import simulation
    from learnscope.identify.ensemble import train_and_record_ensemble

    specs = expand(_grid(["mlp_2x16"], ["sgdm"], seeds=(0, 1, 2)))
    real = simulation.setup_training

    def broken_for_seed_1(spec):
        if spec["seed"] == 1:
            raise RuntimeError("no such resource")
        return real(spec)

    monkeypatch.setattr(simulation, "setup_training", broken_for_seed_1)
    out = {s["seed"]: row for s, row, _ in train_and_record_ensemble(specs)}
    assert out[1]["status"] == "failed" and "no such resource" in out[1]["reason"]
    assert out[0]["status"] == out[2]["status"] == "ok"
    monkeypatch.undo()
    _rows_close(simulation.train_and_record(specs[2])[0], out[2])


def test_simulate_with_ensembles_equals_one_network_per_job_and_resumes(tmp_path):
    from learnscope.identify.simulation import simulate
    from learnscope.identify.store import Store

    grid = _grid(["mlp_2x16"], ["sgdm", "fa"], seeds=(0, 1, 2), conditions=[{"name": "clean"},
                                                                            {"name": "sub", "frac": 0.5}])
    keys = ["network_id", "layer_index", "condition", "checkpoint"]
    simulate(grid, tmp_path / "one", backend="sequential", progress=False, ensemble=1)
    counts = simulate(grid, tmp_path / "ens", backend="sequential", progress=False, ensemble=8)
    assert counts["ok"] == 6
    one, ens = Store.open(tmp_path / "one"), Store.open(tmp_path / "ens")
    _frames_close(one.observations().sort_values(keys).reset_index(drop=True),
                  ens.observations().sort_values(keys).reset_index(drop=True))
    # a killed ensemble: two of its networks never committed; the rerun trains only them, as an ensemble of two
    victims = [s["network_id"] for s in expand(grid) if s["rule"] == "fa"][:2]
    for nid in victims:
        ens.network_path(nid).unlink()
        ens.observations_path(nid).unlink()
    counts = simulate(grid, tmp_path / "ens", backend="sequential", progress=False, ensemble=8)
    assert counts["ok"] == 2 and counts["already_done"] == 4
    _frames_close(one.observations().sort_values(keys).reset_index(drop=True),
                  ens.observations().sort_values(keys).reset_index(drop=True))
    with pytest.raises(ConfigError, match="ensemble"):
        simulate(grid, tmp_path / "bad", backend="sequential", progress=False, ensemble=0)
