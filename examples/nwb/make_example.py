"""Make the NWB example: a session set recorded from a simulated network whose rule is known, and a model to name it.

    python examples/nwb/make_example.py [--out examples/nwb/generated]

1. simulates the training grid ``grid.toml`` (sgdm and fa, 8 networks each) into OUT/store;
2. fits an activity-only model on it (``obs_class="act"``: in vivo, weights and gradients are not observable);
3. simulates one more network (seed 100, rule ``--rule``, not in the training store) into OUT/heldout and exports it
   as NWB sessions, one per checkpoint, with their ``mapping.toml``: OUT/sessions;
4. predicts the rule of OUT/sessions from the NWB files and prints it beside the truth.

About a minute on one core. Needs the nwb extra: pip install 'learnscope[nwb]'.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from learnscope.identify.grid import parse_grid
from learnscope.identify.nwb import export_network, predict_nwb
from learnscope.identify.predict import fit_model
from learnscope.identify.simulation import simulate
from learnscope.identify.store import Store

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "generated", help="where to write (default: %(default)s)")
    parser.add_argument("--rule", default="fa", choices=["sgdm", "fa"], help="the rule of the exported network")
    args = parser.parse_args()
    out: Path = args.out
    raw = tomllib.loads((HERE / "grid.toml").read_text())

    simulate(parse_grid(raw), out / "store", backend="sequential", progress=False)
    model = out / "model.joblib"
    fit_model(out / "store", model, obs_class="act", force=True)

    held = parse_grid(raw | {"grid": raw["grid"] | {"rules": [args.rule], "seeds": [100]}})
    simulate(held, out / "heldout", backend="sequential", progress=False)
    network = Store.open(out / "heldout").networks().network_id.iloc[0]
    files = export_network(out / "heldout", network, out / "sessions")
    print(f"wrote {len(files) - 1} NWB sessions and {files[-1].name} to {out / 'sessions'}")

    per_layer, per_network, _ = predict_nwb(model, out / "sessions")
    print(per_layer.to_string(index=False))
    print(per_network.to_string(index=False))
    print(f"true rule: {args.rule}; predicted: {per_network.predicted_rule.iloc[0]}")
    print(f"the same from the command line: learnscope identify predict {model} {out / 'sessions'}")


if __name__ == "__main__":
    main()
