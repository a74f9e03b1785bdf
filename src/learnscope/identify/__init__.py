"""Which learning rule is this circuit using? (Nayebi, Srivastava, Ganguli & Yamins, NeurIPS 2020.)

Simulate networks trained with known rules into a Parquet store, run the paper's analyses on it, and fit a
classifier that names the rule of your own recordings:

>>> from learnscope import identify
>>> grid = identify.load_grid("identify_demo")                    # doctest: +SKIP
>>> identify.simulation(grid, "runs/store", jobs=2)                  # doctest: +SKIP
>>> results = identify.run_all("runs/store", classifiers=("rf",))  # doctest: +SKIP
>>> identify.fit_model("runs/store", "model.joblib")                # doctest: +SKIP
>>> result = identify.predict("model.joblib", "recordings.csv")      # doctest: +SKIP
>>> table, info = identify.recordings_from_nwb("sessions/mapping.toml")  # NWB sessions   # doctest: +SKIP

The numerical functions return results and write nothing but the store and the model file; run directories and
reports are written by the CLI (:mod:`learnscope.results`, :mod:`learnscope.report`).
"""

from learnscope._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["load_grid", "parse_grid", "expand"], "learnscope.identify.grid"),
    **dict.fromkeys(["simulate", "train_and_record"], "learnscope.identify.simulation"),
    "Store": "learnscope.identify.store",
    **dict.fromkeys(["run_all", "plan_all"], "learnscope.identify.classify"),
    **dict.fromkeys(["main_table", "noise_curves", "subsampling_curve", "temporal_curves", "heldout", "importances",
                     "performance_baseline"], "learnscope.identify.analyses"),
    "load_frames": "learnscope.identify.frames",
    **dict.fromkeys(["fit_model", "load_model", "predict_recordings", "read_recordings", "parse_observables"],
                    "learnscope.identify.predict"),
    "predict": "learnscope.identify.predict:predict",
    **dict.fromkeys(["recordings_from_nwb", "predict_nwb", "export_network"], "learnscope.identify.nwb"),
    "replay_network": "learnscope.identify.replay",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
