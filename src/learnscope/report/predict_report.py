"""The HTML report of ``learnscope identify predict``, written beside its table.

:func:`write_predict_report` takes a :class:`~learnscope.identify.predict.Prediction` and writes one
self-contained HTML file (the reliability diagram inlined as a PNG, drawn in a temporary directory through
:func:`learnscope.report.figures.save_figure`; the page through :func:`learnscope.fileio.atomic_write`):

* the calibrated probabilities per network (per layer in a collapsed table);
* the rule pairs the recorded statistics cannot separate, with every pair's held-out accuracy;
* the reliability diagram and the held-out expected calibration error, with the protocol that produced them;
* the model's statistics, checkpoints and per-rule support;
* a plain statement that in vivo the weight and gradient statistics are usually not observable.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from learnscope.fileio import atomic_write
from learnscope.report import html as H
from learnscope.report.figures import STYLE, save_figure

if TYPE_CHECKING:
    from learnscope.identify.predict import Prediction

TITLE = "learnscope identify predict: which learning rule?"
ECE_TARGET = 0.05
"""A held-out ECE above this is flagged at the top of the report."""
_IN_VIVO = ("In vivo, weight and gradient statistics are usually not observable: calcium imaging and "
            "electrophysiology record activity, not synaptic weights or the error gradients that change them. "
            "Only a model fitted on activity statistics (observables 'act') applies to such recordings; the weight "
            "and gradient statistics exist for simulated or in-silico networks.")


def reliability_figure(calibration: dict, path: Path) -> Path:
    """Reliability diagrams of the held-out calibrated probabilities, per layer and per network: the accuracy of
    each equal-width confidence bin against its mean confidence (the diagonal is perfect calibration), with the
    number of predictions in each bin."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), sharey=True)
        for ax, level, ece_key in ((axes[0], "layer", "ece_layer"), (axes[1], "network", "ece_network")):
            rel = calibration[f"reliability_{level}"]
            edges = np.asarray(rel["edges"])
            count = np.asarray(rel["count"])
            acc = np.asarray(rel["accuracy"], dtype=float)
            conf = np.asarray(rel["confidence"], dtype=float)
            centre, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
            has = count > 0
            ax.bar(centre[has], acc[has], width=width[has] * 0.92, color="tab:blue", alpha=0.75,
                   label="accuracy in bin")
            ax.plot(conf[has], acc[has], "o", color="tab:red", ms=3.5, label="(mean confidence, accuracy)")
            ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
            for c, a, n in zip(centre[has], acc[has], count[has], strict=True):
                ax.text(c, min(a + 0.02, 1.02), str(int(n)), ha="center", va="bottom", fontsize=7)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.1)
            ax.set_xlabel("confidence (largest calibrated probability)")
            ax.set_title(f"per {level}: ECE {calibration[ece_key]:.3f}, n = {int(count.sum())}")
        axes[0].set_ylabel("fraction whose top rule is the true rule")
        axes[0].legend(loc="upper left", fontsize=7)
        fig.suptitle("Held-out networks: seen by neither the classifier nor the calibrator (numbers: predictions "
                     "per bin)")
        fig.tight_layout()
    return save_figure(fig, path)


def _acc(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _text_table(header: list[str], rows: list[list[object]]) -> str:
    """A table whose cells are all text (left-aligned)."""
    return H.table(header, rows).replace("<td>", '<td class="l">').replace("<th>", '<th class="l">')


def _cautions(result: Prediction) -> list[str]:
    c, m, info = result.calibration, result.model, result.info
    items = []
    if not c.get("available"):
        items.append(f"The probabilities are not calibrated: {c.get('reason', 'no calibration in the model')}.")
    elif c["ece_layer"] > ECE_TARGET:
        floor = c["ece_floor_layer"]
        if c["ece_layer"] <= floor[1]:
            items.append(f"Held-out calibration error {c['ece_layer']:.3f} per layer is above {ECE_TARGET}, but "
                         f"within what perfectly calibrated probabilities show on {c['n_layers']} layers "
                         f"({floor[0]:.3f} on average, {floor[1]:.3f} at 95 %): too few held-out networks to tell.")
        else:
            items.append(f"Held-out calibration error {c['ece_layer']:.3f} per layer is above {ECE_TARGET}: read the "
                         "probabilities as rough.")
    uses = {w for w in ("weight", "grad") if any(n.startswith(w) for n in m["obs_names"])}
    if uses:
        words = " and ".join(sorted({"weight": "weight", "grad": "gradient"}[w] for w in uses))
        items.append(f"This model uses {words} statistics, which recordings of living circuits usually lack (see "
                     "the last section).")
    if info.get("unbalanced"):
        items.append(info["unbalanced"][:1].upper() + info["unbalanced"][1:] + ".")
    if result.indistinguishable:
        items.append(f"{len(result.indistinguishable)} pair(s) of rules cannot be told apart with these statistics "
                     "(see below).")
    return items


def _predictions_section(result: Prediction) -> list[str]:
    classes = result.classes
    nets = result.networks
    rows = [[r.network, int(r.layers), *[f"{r[c]:.3f}" for c in classes], r.predicted_rule, f"{r.confidence:.3f}"]
            for _, r in nets.iterrows()]
    layers = result.table[result.table.level == "layer"]
    layer_rows = [[r.network, r.layer, r.group, *[f"{r[c]:.3f}" for c in classes], r.predicted_rule]
                  for _, r in layers.iterrows()]
    how = ("calibrated on held-out networks" if result.calibration.get("available")
           else "the classifier's own, not calibrated")
    return [
        H.table(["network", "layers", *[f"P({c})" for c in classes], "predicted rule", "confidence"], rows),
        H.muted(f"Probabilities {how}. A network's probability is the normalised geometric mean of its layers' "
                "probabilities (a product of experts tempered by the number of layers, since the layers of one "
                "network are not independent evidence)."),
        "<details><summary>per-layer probabilities</summary>"
        + H.table(["network", "layer", "group", *[f"P({c})" for c in classes], "predicted rule"], layer_rows)
        + "</details>",
    ]


def _pairs_section(result: Prediction) -> list[str]:
    c = result.calibration
    if not c.get("available"):
        return [H.paragraph("Not measured: " + c.get("reason", "the model has no held-out record") + ".", note=True)]
    words = c.get("observables_in_words", "these statistics")
    threshold = c["threshold"]
    parts = []
    if result.indistinguishable:
        parts += [H.paragraph(s, note=True) for s in result.indistinguishable]
    else:
        parts.append(H.ok_note(f"Every pair of rules is told apart with {words} from one layer with held-out "
                               f"accuracy ≥ {threshold:.2f}."))
    rows = [[f"{p['rules'][0]} vs {p['rules'][1]}", _acc(p["accuracy_layer"]), _acc(p["accuracy_network"]),
             "no" if p["accuracy_layer"] is not None and p["accuracy_layer"] < threshold else "yes"]
            for p in c["pairwise"]]
    parts += [_text_table(["rules", "held-out accuracy, one layer", "held-out accuracy, whole network",
                       f"distinguishable (≥ {threshold:.2f})"], rows),
              H.muted("Accuracy of the two-way choice between the two rules, among the held-out layers (networks) of "
                      "either rule that the model assigned to one of them; 0.5 is chance. From the model fitted on "
                      "exactly the statistics and checkpoints of this recording.")]
    return parts


def _calibration_section(result: Prediction, tmp: Path) -> list[str]:
    c = result.calibration
    if not c.get("available"):
        return [H.paragraph("No calibration: " + c.get("reason", "none in the model") + ".", note=True)]
    png = reliability_figure(c, tmp / "reliability.png")
    floor_mean, floor_95 = c["ece_floor_layer"]
    nll = c["cross_fitted_nll"]
    text = (f"Deployed calibrator: {c['calibrator']} (cross-fitted NLL: "
            + ", ".join(f"{k} {v:.3f}" for k, v in nll.items()) + "). "
            f"On {c['n_layers']} layers of {c['n_networks']} held-out networks the expected calibration error is "
            f"{c['ece_layer']:.3f} per layer (uncalibrated {c['ece_layer_uncalibrated']:.3f}) and "
            f"{c['ece_network']:.3f} per network; perfectly calibrated predictions of this sample size would show "
            f"{floor_mean:.3f} on average (95 %: {floor_95:.3f}). Held-out accuracy {c['accuracy_layer']:.3f} per "
            f"layer, {c['accuracy_network']:.3f} per network.")
    return [H.figure(png, "Reliability of the held-out calibrated probabilities (top-label, 10 equal-width bins); "
                          "with one point per network, the right panel rests on few predictions and its ECE is "
                          "noisier."),
            H.paragraph(text), H.muted("Protocol: " + c["protocol"] + " ECE is top-label with 10 equal-width "
                                       "confidence bins.")]


def _model_section(result: Prediction) -> list[str]:
    m = result.model
    support = ", ".join(f"{rule} {s['networks'] if s.get('networks') is not None else '?'} networks / "
                        f"{s['layers']} layers" for rule, s in m["support"].items())
    ckpts = m["checkpoints_used"]
    rows = [["classifier", m["classifier"]],
            ["observables", f"{m['obs_class']} — {m['observables_in_words']} ({len(m['obs_names'])} statistics)"],
            ["checkpoints", f"{len(ckpts)} of the model's {m['n_checkpoints']} (refitted on those)" if ckpts
             else f"all {m['n_checkpoints']}"],
            ["trained on (measurement condition)", m["condition"]], ["rules and support", support]]
    return [_text_table(["property", "value"], rows),
            "<details><summary>statistics used</summary>" + H.paragraph(", ".join(m["obs_names"])) + "</details>"]


def write_predict_report(result: Prediction, out_path: str | Path) -> Path:
    """Write the report of ``result`` to ``out_path`` (an ``.html`` file, atomically) and return its path."""
    out = Path(out_path)
    n_nets = len(result.networks)
    n_layers = int((result.table.level == "layer").sum())
    subtitle = (f"{n_nets} network(s), {n_layers} layer(s) recorded; rules {', '.join(result.classes)}; model "
                f"{result.model['classifier']} on {result.model['observables_in_words']}.")
    cautions = _cautions(result)
    top = [H.warning_box("Read with care", cautions, level="caution")] if cautions else []
    with tempfile.TemporaryDirectory() as tmp:
        sections = [
            ("Predictions per network", _predictions_section(result)),
            ("What these statistics cannot tell apart", _pairs_section(result)),
            ("Calibration on held-out networks", _calibration_section(result, Path(tmp))),
            ("The model", _model_section(result)),
            ("What a recording can observe", [H.paragraph(_IN_VIVO, note=True)]),
        ]
    return atomic_write(out, H.page(TITLE, sections, subtitle=subtitle, top=top))
