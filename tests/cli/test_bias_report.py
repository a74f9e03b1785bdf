"""The bias report: verdict first, per-input dependence where a domain has no map, legible figures.

Each test builds a tiny run (a few meta-steps of ridge regression, a few hundred evaluation points) and writes its
report. Figures are inspected as matplotlib objects by wrapping :func:`learnscope.report.figures.save_figure`, and
the page as HTML.
"""

from __future__ import annotations

import base64
import html
import io
import re
import tomllib
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from learnscope.bias.config import parse_config
from learnscope.bias.experiment import run_experiment
from learnscope.report import bias_report, figures
from learnscope.report.bias_report import write_report

BASE = """
[run]
kind = "{kind}"
seeds = [0, 1]
title = "tiny"

[domain]
{domain}

[learner]
name = "ridge"

[meta]
hidden = 12

[search]
steps = 3
n_train = 6
n_test = 12
learners_per_step = 1

[analysis]
n_eval = 300
gen_draws = 2
max_degree = 3
"""
S4 = 'name = "sphere"\ndim = 5'
S2 = 'name = "sphere"\ndim = 3'
CONTRAST_B = '\n[learner_b]\nname = "ridge"\nlam = 0.1\nbias = true\n'
SERIES = "\n[[series]]\n\n[[series]]\nsteps = 2\n"
RAW_KEYS = {"loss", "generalisation", "distribution", "orthogonality", "generalisation_b"}
PAGE_PX = 1100  # the report's max-width

MIN_TEXT_PX = 10.0  # smallest text height on the page, in CSS pixels
WARNING = "few-shot error 0.9 is worse than predicting the mean (0.33) <check>"
S4_WEIGHTS = ([0.1, -0.2, 0.05, -0.9, 0.3], [0.7, 0.1, 0.1, 0.1, 0.1])  # largest |w|: input 3, input 0


def _run(domain: str, kind: str = "easiest", extra: str = ""):
    cfg = parse_config(tomllib.loads(BASE.format(kind=kind, domain=domain) + extra))
    return run_experiment(cfg, progress=False)


def _inspect(fig, renderer) -> dict:
    """What the tests look at in a figure, taken after drawing it (display coordinates)."""
    texts = [t for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text().strip()
             and t.get_window_extent(renderer).width > 0]
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    return {
        "suptitle": fig._suptitle.get_window_extent(renderer) if fig._suptitle else None,
        "titles": [(ax.title.get_text(), ax.title.get_window_extent(renderer)) for ax in fig.axes
                   if ax.title.get_text()],
        "axes": [ax for ax in fig.axes if ax.get_label() != "<colorbar>"],
        "colorbars": [ax for ax in fig.axes if ax.get_label() == "<colorbar>"],
        "legends": legends,
        "legend_boxes": [lg.get_window_extent(renderer) for lg in legends],
        "min_font_pt": min(t.get_fontsize() for t in texts),
        "texts": [t.get_text() for t in texts],
        "bars": [p.get_window_extent(renderer) for ax in fig.axes for p in ax.patches
                 if type(p).__name__ == "Rectangle" and p.get_height() != 0],
    }


def _write(result, out: Path, figs: dict[str, dict]) -> str:
    """Write the report of ``result`` into ``out`` (created), recording every saved figure in ``figs``; returns
    the page's body."""
    out.mkdir()
    original = figures.save_figure

    def spy(fig, path):
        fig.canvas.draw()
        info = _inspect(fig, fig.canvas.get_renderer())
        saved = original(fig, path)
        info["png_width"] = Image.open(saved).size[0]
        figs[f"{out.name}/{Path(path).name}"] = info
        return saved

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "save_figure", spy)
        report = write_report(result, out)
    text = report.read_text(encoding="utf-8")
    return text[text.index("<body>"):]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Four reports: a contrast on S² (no verdict, as before the checks), a series on the disc (verdict ok), an
    easiest function on S⁴ as found, and the same with f = ±x₃, chosen linear weights, over-connected headline
    numbers and a collapsed verdict."""
    root = tmp_path_factory.mktemp("reports")
    figs: dict[str, dict] = {}
    contrast = _run(S2, kind="contrast", extra=CONTRAST_B)
    del contrast.metrics["verdict"]  # as in a run directory written before the checks
    bodies = {"contrast": _write(contrast, root / "contrast", figs)}
    series = _run('name = "disc"', kind="series", extra=SERIES)
    series.metrics["verdict"] = {"status": "ok", "warnings": [], "checks": {}}
    bodies["series"] = _write(series, root / "series", figs)
    s4 = _run(S4)
    bodies["s4_plain"] = _write(s4, root / "s4_plain", figs)
    points = np.asarray(s4.eval_points)
    s4.arrays["f1_values"] = np.stack([points[:, 3], -points[:, 3]]).astype(np.float32)
    fn = s4.metrics["functions"][0]
    for m, w in zip(fn["per_seed"], S4_WEIGHTS, strict=True):
        m["linear_weights"] = list(w)
    fn["input_dependence"] = {"weights": [list(w) for w in S4_WEIGHTS], "overconnected_input": 2,
                              "share": [0.81, 0.625], "paired": {"mean_difference": 0.25, "sem": 0.05, "n": 2}}
    s4.metrics["verdict"] = {"status": "collapsed", "warnings": [WARNING], "checks": {"label_std": 0.09}}
    bodies["s4"] = _write(s4, root / "s4", figs)
    return {"bodies": bodies, "figs": figs, "root": root}


def _after_title(body: str) -> str:
    return body[body.index("</h1>") + len("</h1>"):].lstrip()


# ---- verdict -----------------------------------------------------------------------------------------------------


def test_a_failed_verdict_is_the_first_thing_on_the_page(reports):
    body = reports["bodies"]["s4"]
    top = _after_title(body)
    assert top.startswith('<div class="warning"')
    box = top[: top.index("</div>")]
    assert html.escape(WARNING) in box and "collapsed" in box  # the warning itself, escaped, inside the box
    assert body.index('class="warning"') < body.index("<h2>")


@pytest.mark.parametrize("status", ["diverged", "collapsed", "something new"])
def test_every_status_but_ok_gives_the_warning_box(status):
    (block,) = bias_report._verdict_block({"status": status, "warnings": ["w1", "w2"]})
    assert block.startswith('<div class="warning"') and "<li>w1</li><li>w2</li>" in block
    (block,) = bias_report._verdict_block({"status": status})  # no warnings listed: the status still shows
    assert block.startswith('<div class="warning"') and status in block


def test_an_ok_verdict_with_warnings_shows_them_in_a_caution_box():
    (block,) = bias_report._verdict_block({"status": "ok", "warnings": ["f1 seed 0: worse than the mean"]})
    assert block.startswith('<div class="caution"') and "worse than the mean" in block


def test_the_numbers_behind_a_real_verdict_are_tabled_per_function_and_seed(reports):
    body = reports["bodies"]["s4_plain"]  # the verdict exactly as run_experiment wrote it
    top = _after_title(body)
    details = top[top.index("<details>"):top.index("</details>")]
    assert "W₂ to the target" in details and "MSE of predicting the mean" in details
    assert details.count("<tr><td") == 2  # one row per seed of f1
    assert "_" not in re.sub(r"<[^>]+>", "", details.split("Thresholds")[0])  # no raw keys in the table


def test_an_ok_verdict_is_one_note_and_no_warning(reports):
    body = reports["bodies"]["series"]
    assert 'class="warning"' not in body
    assert _after_title(body).startswith('<div class="ok">') and "checks passed" in _after_title(body)[:300]


def test_a_run_without_a_verdict_still_gets_a_report(reports):
    body = reports["bodies"]["contrast"]
    assert 'class="warning"' not in body and 'class="ok"' not in body
    assert "no result checks" in _after_title(body)[:300]


# ---- per-input dependence on S⁴ (Fig 7) ---------------------------------------------------------------------------


def test_a_domain_without_a_map_gets_per_input_figures_indexed_from_zero(reports):
    figs, body = reports["figs"], reports["bodies"]["s4"]
    assert {"s4/input_weights.png", "s4/f1_inputs.png"} <= set(figs)
    assert "s4/functions.png" not in figs and not (reports["root"] / "s4" / "functions.png").exists()
    assert "longitude" not in body and "latitude" not in body
    names = ["x₀", "x₁", "x₂", "x₃", "x₄"]
    weights = figs["s4/input_weights.png"]
    assert all(n in weights["texts"] for n in names) and "x₅" not in weights["texts"]
    scatter = figs["s4/f1_inputs.png"]
    assert [t for t in scatter["texts"] if t in names] == names  # the x labels, in order
    # the panels of f = ±x₃ against x₃ are the only ones with |r| = 1 (column 3 of each row)
    r = [t for t in scatter["texts"] if t.startswith("r = ")]
    assert len(r) == 2 * 5
    assert [i % 5 for i, t in enumerate(r) if t in ("r = +1.00", "r = -1.00")] == [3, 3]


def test_the_largest_weight_column_names_the_input_with_the_same_index(reports):
    body = reports["bodies"]["s4"]
    assert "x₃ (-0.900)" in body and "x₀ (+0.700)" in body


def test_overconnected_headline_numbers_are_shown_when_present(reports):
    assert "over-connected" not in reports["bodies"]["s4_plain"]  # absent: nothing claimed
    body = reports["bodies"]["s4"]
    assert "over-connected input x₂" in body
    assert "0.810, 0.625" in body and "median 0.718" in body  # median of the two shares
    assert "+0.250 ± 0.050" in body and "n = 2" in body


def test_a_sphere_in_three_dimensions_keeps_its_map(reports):
    assert "contrast/functions.png" in reports["figs"] and "contrast/input_weights.png" not in reports["figs"]
    assert "longitude/latitude map of the sphere S²" in reports["bodies"]["contrast"]


# ---- figures a scientist can read --------------------------------------------------------------------------------


def test_no_raw_metric_key_is_a_title(reports):
    titles = [t for info in reports["figs"].values() for t, _ in info["titles"]]
    assert titles and not RAW_KEYS & set(titles)
    assert not [t for t in titles if re.search(r"[a-z]{2,}_[a-z]{2,}", t)]
    contrast = [t for t, _ in reports["figs"]["contrast/losses.png"]["titles"]]
    assert "test error of learner B" in contrast  # what generalisation_b is


def test_loss_lines_have_a_colour_and_a_legend_entry_per_seed(reports):
    for name in ("contrast", "series"):
        info = reports["figs"][f"{name}/losses.png"]
        for ax in info["axes"]:
            colours = {tuple(np.round(plt.matplotlib.colors.to_rgba(line.get_color()), 3))
                       for line in ax.get_lines() if np.ptp(np.asarray(line.get_xdata(), float)) > 0}  # not a divider
            assert len(colours) == 2, name  # two seeds
        (legend,) = info["legends"]
        assert [t.get_text() for t in legend.get_texts()] == ["seed 0", "seed 1"]


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_nothing_overlaps_titles_or_bars(reports):
    assert "contrast/contrast.png" in reports["figs"]
    for name, info in reports["figs"].items():
        boxes = [b for _, b in info["titles"]]
        if info["suptitle"] is not None:
            assert not any(_overlaps(info["suptitle"], b) for b in boxes), name
        for legend in info["legend_boxes"]:
            assert not any(_overlaps(legend, b) for b in boxes), name
            assert not any(_overlaps(legend, bar) for bar in info["bars"]), name  # e.g. the Fig 4 legend


def test_text_is_readable_on_the_page_and_colour_bars_are_labelled(reports):
    assert len(reports["figs"]) >= 10
    for name, info in reports["figs"].items():
        shown = min(1.0, PAGE_PX / info["png_width"])  # a wider PNG is scaled down to the page
        smallest_px = info["min_font_pt"] / 72 * figures.DPI * shown
        assert smallest_px >= MIN_TEXT_PX, (name, smallest_px)
        for bar in info["colorbars"]:
            assert bar.get_ylabel() or bar.get_xlabel(), name
    assert reports["figs"]["series/functions.png"]["colorbars"]


def test_every_image_is_embedded_and_decodes(reports):
    for name, body in reports["bodies"].items():
        sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', body)
        assert sources and len(sources) == body.count("<img"), name
        for src in sources:
            prefix = "data:image/png;base64,"
            if src.startswith(prefix):
                Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True))).verify()
            else:  # a local file beside the report
                assert "://" not in src and (reports["root"] / name / src).is_file(), src
        assert not re.search(r'(src|href)="(https?:)?//', body), name


# ---- the save helper -----------------------------------------------------------------------------------------------


def test_save_figure_writes_atomically_and_closes(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    fig, ax = plt.subplots()

    def broken(*args, **kwargs):
        Path(args[0]).write_bytes(b"half a png")
        raise OSError(28, "No space left on device")

    fig.savefig = broken
    with pytest.raises(OSError):
        figures.save_figure(fig, path)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    assert not plt.fignum_exists(fig.number)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert figures.save_figure(fig, path) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not plt.fignum_exists(fig.number)


def test_input_names_count_from_zero():
    assert [figures.input_name(i) for i in (0, 4, 12)] == ["x₀", "x₄", "x₁₂"]
    assert bias_report._largest_input([0.1, -0.5, 0.2]) == "x₁ (-0.500)"


def _figure_of(monkeypatch, draw, *args, **kwargs):
    """Call a figure function and return its figure, drawn but not saved."""
    seen = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: (fig.canvas.draw(), seen.append(fig), path)[2])
    draw(*args, **kwargs)
    return seen[0]


def test_a_diverged_seed_with_nan_values_is_drawn_from_its_finite_values(monkeypatch, tmp_path):
    from learnscope.domains import Disc

    gen = np.random.default_rng(0)
    points = gen.uniform(-1, 1, (200, 3))
    values = np.stack([points[:, 1], np.full(200, np.nan)])
    fig = _figure_of(monkeypatch, figures.input_scatter, points, values, tmp_path / "s.png", ["ok", "diverged"])
    r = [t.get_text() for t in fig.findobj(plt.Text) if t.get_text().startswith("r = ")]
    assert len(r) == 6 and r[1] == "r = +1.00" and "r = –" not in r[:3]  # row 0: f = x₁
    assert r[3:] == ["r = –"] * 3  # row 1: no finite value, no correlation claimed
    plt.close(fig)

    def half(x):  # 2·x₀ on the right half of the disc, NaN on the left
        return np.where(x[:, 0] > 0, 2 * x[:, 0], np.nan)

    fig = _figure_of(monkeypatch, figures.function_panels, Disc(), [("half", half)], tmp_path / "f.png")
    (image,) = fig.axes[0].get_images()
    assert image.get_clim() == pytest.approx((-2.0, 2.0))  # the largest finite |f| on the grid (x₀ = 1)
    plt.close(fig)

    loss = np.array([[0.5, 0.4], [0.2, np.nan], [0.1, np.nan]])
    fig = _figure_of(monkeypatch, figures.loss_curves, [{"generalisation": loss}], [0, 1], tmp_path / "l.png")
    assert fig.axes[0].get_yscale() == "log"  # positive where finite: NaN steps do not force a linear axis
    plt.close(fig)


def test_the_save_helper_comes_without_torch():
    import subprocess
    import sys

    code = "import sys, learnscope.report.figures as f; f.save_figure; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the identify report can use it without loading torch
