"""Every kind of bias run writes a metrics.json that a strict JSON parser accepts (no NaN / Infinity tokens):
an easiest function on S², a series, a contrast, a mushroom body on S⁴ (per-input dependence) and a split dataset
(MNIST 0/1, whose linear fits are undefined and must be written as null)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from learnscope.cli import app

runner = CliRunner()
FAST = ["--set", "search.steps=2", "--set", "run.seeds=[0]", "--set", "analysis.gen_draws=2", "--no-progress"]


def _reject(token: str):
    raise ValueError(f"non-standard JSON token {token}")


@pytest.mark.parametrize("config, extra", [
    ("fig2_kernel_sphere", []),
    ("fig3_series_ridge_disc", []),
    ("fig4_contrast_kernel_linear", []),
    ("fig7_mushroom_overconnected", ["--set", "analysis.n_eval=500"]),
    ("fig6_mnist01", []),
])
def test_metrics_json_is_strict_for_every_run_kind(tmp_path, config, extra):
    out = tmp_path / "run"
    result = runner.invoke(app, ["bias", "run", config, "--out", str(out), *FAST, *extra])
    assert result.exit_code in (0, 3), result.output  # 3: a 2-step search may fail its checks; it is still written
    text = (out / "metrics.json").read_text(encoding="utf-8")
    metrics = json.loads(text, parse_constant=_reject)
    assert metrics["functions"] and "missing" in metrics["_encoding"]
    if config == "fig6_mnist01":
        assert all(m["affine_r2"] is None for m in metrics["functions"][0]["per_seed"])
