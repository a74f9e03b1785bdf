"""The Fig 8 learner's meta-gradient: today's autograd unroll vs the hand-written reverse pass (issue 16 item 6).

Writes ``benchmarks/results/bias_unroll_speed.json``. One thread. Per ensemble size (1, 8, 64 learners) and per
variant, a *meta-step* is: train the ReLU MLP 3→20→20→1 by 200 full-batch GD steps (lr 0.025) on 30 points,
predict 300 test points, and differentiate a scalar loss of the predictions w.r.t. the training labels.
Variants: ``today`` (:func:`learnscope.learners.unroll.unroll` + ``dense_gradient_descent``, autograd through
the unroll), ``reverse`` (:func:`learnscope.learners.dense_reverse.unrolled_dense_gd`, ``store="activations"``),
``reverse_params`` (``store="params"``). Runs alternate A B A B …; the JSON holds medians (wall clock and
thread CPU time), the median of the paired ratios, and the bytes each variant keeps for the backward pass.
Also a full Fig 8 meta-step through :func:`learnscope.bias.search.meta_train` (meta-learner, energy distance,
Adam), with the reverse pass monkeypatched into the learner here only (the integration the lead makes in
``unroll.py``). ``--compile`` adds ``torch.compile`` of the step functions (compile time and steady state).

    OMP_NUM_THREADS=1 python -m benchmarks.bias_unroll_speed [--quick] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

import learnscope.learners.dense_reverse as DR
import learnscope.learners.trained as TR
import learnscope.learners.unroll as UN
from learnscope.circuits.mlp import MLP
from learnscope.learners.unroll import dense_gradient_descent, unroll
from learnscope.plasticity.optimisers import Optimiser

RESULTS = Path(__file__).resolve().parent / "results"
STEPS, LR, N_TRAIN, N_TEST = 200, 0.025, 30, 300
MLP_SIZES = [3, 20, 20, 1]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- the learner-level meta-step


def _task(E: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(E, N_TRAIN + N_TEST, 3, generator=g, dtype=dtype)
    x = x / x.norm(dim=-1, keepdim=True)
    return x[:, :N_TRAIN].contiguous(), torch.randn(E, N_TRAIN, generator=g, dtype=dtype), x[:, N_TRAIN:].contiguous()


INTEGRATED = "reverse" in getattr(UN.Trainer, "_fields", ())  # unroll.py hands sgd runs to the reverse pass


def _autograd_only(trainer):
    """The trainer without its whole-unroll reverse pass (once unroll.py has one): today's autograd loop."""
    return trainer._replace(reverse=None) if INTEGRATED else trainer


def _today(mlp: MLP, x, y, xt):
    trainer = _autograd_only(dense_gradient_descent(mlp, Optimiser("sgd", LR), graph=True))
    return unroll(mlp, trainer, mlp.draw, x, y, xt, torch.Generator().manual_seed(0), STEPS, None)[0]


def _reverse(mlp: MLP, x, y, xt, store="activations"):
    g = torch.Generator().manual_seed(0)
    p = [q.unsqueeze(1) if i % 2 else q for i, q in enumerate(mlp.draw(g, x.shape[0], x.dtype).params)]
    return DR.unrolled_dense_gd(p, x, y, xt, lr=LR, steps=STEPS, activation=mlp.activation, store=store)[0]


VARIANTS = {"today": _today, "reverse": _reverse,
            "reverse_params": lambda *a: _reverse(*a, store="params")}


def _meta_step(fn, mlp, x, y0, xt) -> tuple[float, float]:
    """(wall s, thread CPU s) of one forward + backward of a scalar loss of the predictions w.r.t. y_train."""
    y = y0.clone().requires_grad_(True)
    w0, c0 = time.perf_counter(), time.thread_time()
    pred = fn(mlp, x, y, xt)
    torch.autograd.grad((pred**2).mean(), y)
    return time.perf_counter() - w0, time.thread_time() - c0


def saved_bytes(fn, mlp, x, y0, xt) -> int:
    """Bytes of the distinct storages saved for the backward pass (``saved_tensors_hooks``; the reverse pass saves
    its buffers through ``save_for_backward``, so both paths are counted alike)."""
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    y = y0.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(mlp, x, y, xt)
    return sum(seen.values())


def learner_case(E: int, reps: int, variants=VARIANTS) -> dict:
    mlp = MLP(MLP_SIZES)
    x, y0, xt = _task(E)
    for fn in variants.values():  # warm-up
        _meta_step(fn, mlp, x, y0, xt)
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(reps):  # A B A B …
        for k, fn in variants.items():
            w, c = _meta_step(fn, mlp, x, y0, xt)
            wall[k].append(w)
            cpu[k].append(c)
    out: dict = {"learners": E, "reps": reps}
    for k in variants:
        out[k] = {"wall_ms_median": statistics.median(wall[k]) * 1e3, "wall_ms_min": min(wall[k]) * 1e3,
                  "cpu_ms_median": statistics.median(cpu[k]) * 1e3}
        if k != "today":
            out[k]["speedup_wall_median"] = statistics.median(wall["today"]) / statistics.median(wall[k])
            out[k]["speedup_cpu_median"] = statistics.median(cpu["today"]) / statistics.median(cpu[k])
            pairs = zip(cpu["today"], cpu[k], strict=True)
            out[k]["speedup_paired_median"] = statistics.median(a / b for a, b in pairs)
    out["saved_bytes"] = {k: saved_bytes(fn, mlp, x, y0, xt) for k, fn in variants.items()}
    return out


def compile_case(E: int, reps: int) -> dict:
    """torch.compile of the per-step functions (monkeypatched into the module): compile time and steady state."""
    mlp = MLP(MLP_SIZES)
    x, y0, xt = _task(E)
    eager = (DR._forward_step, DR._step_vjp)
    compiled = (torch.compile(eager[0], dynamic=False), torch.compile(eager[1], dynamic=False))

    def use(pair):
        DR._forward_step, DR._step_vjp = pair

    try:
        use(compiled)
        t0 = time.perf_counter()
        _meta_step(_reverse, mlp, x, y0, xt)
        first = time.perf_counter() - t0
        runs = {"eager": [], "compiled": []}
        for _ in range(reps):
            for name, pair in (("eager", eager), ("compiled", compiled)):
                use(pair)
                runs[name].append(_meta_step(_reverse, mlp, x, y0, xt)[1])
    finally:
        use(eager)
    med = {k: statistics.median(v) * 1e3 for k, v in runs.items()}
    return {"learners": E, "first_call_s": first, "cpu_ms_median": med,
            "compiled_over_eager": med["compiled"] / med["eager"]}


# ---------------------------------------------------------------- the full Fig 8 meta-step


def _with_reverse_pass(prepare, lr: float):
    """``prepare_unroll`` that gives a full-batch sgd MLP run the reverse pass as its ``Unrolled.run_full`` — the
    integration proposed for unroll.py, monkeypatched here only (``lr``: the learner's, known to the bench)."""

    def patched(circuit, trainer, draw, x_train, y_train, x_test, generator, steps, batch_size, *rest):
        u, *more = prepare(circuit, trainer, draw, x_train, y_train, x_test, generator, steps, batch_size, *rest)
        if not isinstance(circuit, MLP) or batch_size is not None:
            return (u, *more)

        def run_full(carry, xtr, ytr):
            params, (opt, t) = carry
            final = DR.unrolled_dense_gd_params(params, xtr, ytr, lr=lr, steps=steps, activation=circuit.activation)
            return final, (opt, t + steps)

        return (dataclasses.replace(u, run_full=run_full), *more)

    return patched


def fig8_case(learners: int, steps: int, pairs: int) -> dict:
    from learnscope.bias.config import load_config
    from learnscope.bias.experiment import build_components
    from learnscope.bias.search import meta_train, override

    cfg = load_config("fig8_backprop_mlp")
    comp = build_components(cfg)
    settings = override(cfg.search, steps=steps, learners_per_step=learners)
    learner = comp.learner
    assert learner.optimiser == "sgd" and learner.rule == "sgd" and learner.batch_size is None
    import learnscope.bias.distances as DI

    orig, orig_dense, orig_energy = UN.prepare_unroll, TR.dense_gradient_descent, DI._energy_1d

    def pairwise_energy(x, y):  # the 1-D energy distance as the session began: all pairwise |differences|
        xs, ys = x[..., None], y.expand(x.shape[0], -1)[..., None]
        return (DI._safe_pairwise_norm(xs, ys).mean(dim=(1, 2)) - 0.5 * DI._safe_pairwise_norm(xs, xs).mean(dim=(1, 2))
                - 0.5 * DI._safe_pairwise_norm(ys, ys).mean(dim=(1, 2)))

    def run(patched: bool) -> tuple[list[float], list[float], object]:
        marks: list[tuple[float, float]] = []

        def tick(step, losses):  # after each meta-step: (wall, thread CPU) clocks
            marks.append((time.perf_counter(), time.thread_time()))

        if INTEGRATED:  # the reverse pass is the default: today's path is the trainer without it
            TR.dense_gradient_descent = orig_dense if patched else (lambda *a: _autograd_only(orig_dense(*a)))
        else:  # not yet integrated: the reverse pass is monkeypatched in (the proposed integration)
            UN.prepare_unroll = _with_reverse_pass(orig, learner.lr) if patched else orig
        DI._energy_1d = orig_energy if patched else pairwise_energy  # "today": also the pairwise energy distance
        try:
            res = meta_train(comp.make_meta(), comp.domain, learner, comp.target, settings, [0], callback=tick)
        finally:
            UN.prepare_unroll, TR.dense_gradient_descent, DI._energy_1d = orig, orig_dense, orig_energy
        cpu = [b[1] - a[1] for a, b in zip(marks[1:], marks[2:], strict=False)]  # skip the first two steps
        return list(res.extra["step_times_s"][2:]), cpu, res.history["loss"][:, 0]

    wall = {"today": [], "reverse": []}
    cpu = {"today": [], "reverse": []}
    losses = {}
    for _ in range(pairs):  # A B A B
        for name in wall:
            w, c, loss = run(name == "reverse")
            wall[name] += w
            cpu[name] += c
            losses[name] = loss
    med = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    rel = float(abs(losses["today"] - losses["reverse"]).max() / abs(losses["today"]).max())
    return {"learners_per_step": learners, "meta_steps_per_run": steps, "runs_each": pairs,
            "wall_ms_per_meta_step_median": med, "cpu_ms_per_meta_step_median": med_cpu,
            "speedup_wall": med["today"] / med["reverse"], "speedup_cpu": med_cpu["today"] / med_cpu["reverse"],
            "max_rel_loss_difference": rel}


def run(quick: bool = False, with_compile: bool = False) -> dict:
    torch.set_num_threads(1)
    out: dict = {"machine": {"cpu_model": cpu_model(), "threads": torch.get_num_threads(),
                             "python": platform.python_version(), "torch": torch.__version__},
                 "reverse_pass_integrated_in_unroll": INTEGRATED,
                 "learner": "MLP 3-20-20-1 ReLU, 200 full-batch GD steps, lr 0.025, 30 train / 300 test points, "
                            "float32",
                 "learner_meta_step": {}, "fig8_meta_step": {}}
    reps = {1: 15, 8: 11, 64: 7} if not quick else {1: 3, 8: 3, 64: 2}
    for E, r in reps.items():
        out["learner_meta_step"][str(E)] = case = learner_case(E, r)
        print(f"{E:3d} learners: " + ", ".join(
            f"{k} {case[k]['cpu_ms_median']:.1f} ms" + (f" ({case[k]['speedup_paired_median']:.2f}x)"
                                                       if k != "today" else "") for k in VARIANTS)
              + f"; saved MB {', '.join(f'{k} {v / 2**20:.1f}' for k, v in case['saved_bytes'].items())}")
    for learners in (1, 8, 64):
        out["fig8_meta_step"][str(learners)] = case = fig8_case(learners, 5 if quick else 8, 1 if quick else 5)
        ms = case["cpu_ms_per_meta_step_median"]
        print(f"Fig 8 meta-step, {learners} learners: today {ms['today']:.1f} ms, reverse {ms['reverse']:.1f} ms "
              f"(CPU time), {case['speedup_cpu']:.2f}x (wall {case['speedup_wall']:.2f}x; loss rel. difference "
              f"{case['max_rel_loss_difference']:.1e})")
    if with_compile:
        out["compile"] = {"note": "first_call_s includes compilation (inductor's on-disk cache speeds up later runs: "
                                  "27-120 s per shape measured cold, 5-30 s warm); compiled_over_eager > 1: slower"}
        for E in (1, 8, 64):
            try:
                out["compile"][str(E)] = case = compile_case(E, 5)
            except Exception as err:  # noqa: BLE001 - a failed compile is a result too
                out["compile"][str(E)] = {"learners": E, "error": f"{type(err).__name__}: {err}"[:500]}
                print(f"compile, {E} learners: failed ({type(err).__name__})")
                continue
            print(f"compile, {E} learners: first call {case['first_call_s']:.0f} s, compiled/eager "
                  f"{case['compiled_over_eager']:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias_unroll_speed.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the step functions")
    a = ap.parse_args()
    run(a.quick, a.compile)
