"""The declared shape of every result of rule identification: one :class:`~typing.TypedDict` per table.

:func:`learnscope.identify.protocol.evaluate` returns an :class:`Evaluation`; each analysis of
:mod:`learnscope.identify.analyses` returns its table below (or :class:`Skipped`) and
:func:`~learnscope.identify.analyses.run_all` a :class:`ClassifyResults` holding all of them. The results are
plain JSON-ready dicts (they are what ``metrics.json`` holds), so these declarations are the one place that names
their keys: the analyses build them and :mod:`learnscope.report.identify_report` reads them.

Conventions shared by every table:

* accuracies are fractions of test rows in ``[0, 1]``; ``*_mean`` / ``*_sem`` are the mean and the standard error
  of the mean (``std(ddof=1) / √n``) over outer splits, ``*_per_split`` the values per split in split order;
* a number that is undefined is ``None`` (NaN before :func:`learnscope.results.to_jsonable`): the s.e.m. of a
  single split, the recall of a rule that is never tested;
* ``classifier`` is a name of :data:`learnscope.identify.classifiers.CLASSIFIERS`, ``obs_class`` a key of
  :data:`learnscope.identify.observables.OBS_CLASSES` (or ``"performance"``), ``condition`` the name of a
  measurement condition of the store.
"""

# No ``from __future__ import annotations`` here: TypedDict reads ``NotRequired`` only from evaluated annotations.
from typing import Any, Literal, NotRequired, TypedDict

# --------------------------------------------------------------------------------------------------------------
# scores of one (dataset, classifier, split mode): protocol.evaluate


class Scores(TypedDict):
    """Accuracy and balanced accuracy over outer splits (the keys every curve point repeats)."""

    accuracy_mean: float
    accuracy_sem: float | None
    balanced_accuracy_mean: float
    balanced_accuracy_sem: float | None
    accuracy_per_split: list[float]
    balanced_accuracy_per_split: list[float]


SCORE_KEYS: tuple[str, ...] = tuple(Scores.__annotations__)


class Evaluation(Scores):
    """One classifier on one dataset over outer splits (:func:`learnscope.identify.protocol.evaluate`).

    ``confusion_matrix`` is summed over splits (rows actual, columns predicted, in ``labels`` order);
    ``per_class_recall`` and ``dprime`` are of that summed matrix; ``chosen_params`` is the inner grid search's
    choice per split; ``held_out`` names the held-out value of each split (held-out split modes only)."""

    classifier: str
    split_mode: str
    grid: str
    seed: int
    inner: str
    scaling: str
    condition: str
    obs_names: list[str]
    checkpoints: list[int]
    n_splits: int
    labels: list[str]
    confusion_matrix: list[list[int]]
    per_class_recall: dict[str, float | None]
    dprime: dict[str, float]
    chosen_params: list[dict[str, Any]]
    n_train: list[int]
    n_test: list[int]
    convergence_warnings: int
    held_out: NotRequired[list[str]]


class Skipped(TypedDict):
    """An analysis the store cannot support (no such conditions), with the reason."""

    skipped: str


class Unavailable(TypedDict):
    """A part of an analysis that could not be computed, with the reason."""

    available: Literal[False]
    reason: str


# --------------------------------------------------------------------------------------------------------------
# 1. main table


class Cell(Evaluation):
    obs_class: str


class RowVsNetwork(TypedDict):
    """Row-level (the original, leaky) against network-grouped splits for ``all``; ``gap = row − network``."""

    classifier: str
    obs_class: str
    row: Scores
    network: Scores
    gap: float


class Best(TypedDict):
    """The classifier with the highest ``all`` accuracy and its summed confusion matrix."""

    classifier: str
    obs_class: str
    accuracy_mean: float
    accuracy_sem: float | None
    labels: list[str]
    confusion_matrix: list[list[int]]
    per_class_recall: dict[str, float | None]


class MainTable(TypedDict):
    condition: str
    split_mode: str
    chance: float
    labels: list[str]
    obs_classes: list[str]
    classifiers: list[str]
    cells: list[Cell]
    row_vs_network: list[RowVsNetwork]
    row_cells: list[Cell]
    best: Best


# --------------------------------------------------------------------------------------------------------------
# 2./3. noise and subsampling curves: the same layout, x = sigma (noise) or frac (subsampling)


class _PointBase(Scores):
    condition: str
    classifier: str
    obs_class: str
    drop_from_clean: float


class NoisePoint(_PointBase):
    sigma: float


class SubsamplingPoint(_PointBase):
    frac: float


class _DifferenceBase(TypedDict):
    """accuracy(act) − accuracy(weight) at one x, paired over splits (mean and s.e.m. of per-split differences)."""

    condition: str
    classifier: str
    difference: float
    difference_sem: float | None


class NoiseDifference(_DifferenceBase):
    sigma: float


class SubsamplingDifference(_DifferenceBase):
    frac: float


class _OrderingBase(TypedDict):
    """The act-over-weight robustness verdict of one classifier
    (:func:`learnscope.identify.analyses.ordering_verdict`) and the differences it was judged on."""

    verdict: str
    margin: float
    differences: list[float]


class NoiseOrdering(_OrderingBase):
    sigmas: list[float]


class SubsamplingOrdering(_OrderingBase):
    fracs: list[float]


class NoiseCurve(TypedDict):
    available: Literal[True]
    x: Literal["sigma"]
    conditions: list[str]
    points: list[NoisePoint]
    act_minus_weight: list[NoiseDifference]
    ordering: dict[str, NoiseOrdering]


class NoiseCurves(TypedDict):
    classifiers: list[str]
    obs_classes: list[str]
    condition_clean: str
    margin: float
    absolute: NoiseCurve | Unavailable
    relative: NoiseCurve | Unavailable


class SubsamplingCurve(TypedDict):
    classifiers: list[str]
    obs_classes: list[str]
    margin: float
    note: str
    available: Literal[True]
    x: Literal["frac"]
    conditions: list[str]
    points: list[SubsamplingPoint]
    act_minus_weight: list[SubsamplingDifference]
    ordering: dict[str, SubsamplingOrdering]


# --------------------------------------------------------------------------------------------------------------
# 4. temporal subsampling


class TemporalPoint(Scores):
    """``all`` with the checkpoints of ``mode`` (``k`` is k or m, ``None`` for end-only; ``full`` keeps all)."""

    mode: str
    k: int | None
    n_kept: int
    checkpoints: list[int]
    classifier: str


class SpreadCheck(TypedDict):
    """Spread-3 against first-3 (paired difference over splits)."""

    spread3: float
    first3: float
    difference: float
    difference_sem: float | None
    spread3_ge_first3: bool


class SpreadUntested(TypedDict):
    spread3_ge_first3: None
    reason: str


class TemporalCurves(TypedDict):
    condition: str
    obs_class: str
    classifiers: list[str]
    n_checkpoints: int
    ks: list[int]
    ms: list[int]
    points: list[TemporalPoint]
    acceptance: dict[str, SpreadCheck | SpreadUntested]


# --------------------------------------------------------------------------------------------------------------
# 5. held-out generalisation


class HeldoutValue(TypedDict):
    held_out: str
    accuracy: float
    balanced_accuracy: float
    n_test: int


class HeldoutClassifier(TypedDict):
    """One classifier on each held-out value; means are over held-out values, ``network_split_accuracy`` is the
    within-distribution reference (network-grouped splits)."""

    classifier: str
    values: list[HeldoutValue]
    mean_accuracy: float
    mean_balanced_accuracy: float
    sem_accuracy: float | None
    network_split_accuracy: float
    confusion_matrix: list[list[int]]
    labels: list[str]


class HeldoutPart(TypedDict):
    """``grouping`` says what a held-out value is (``task``: the dataset, the task name before ``":"``)."""

    available: Literal[True]
    split_mode: str
    grouping: str
    per_classifier: list[HeldoutClassifier]


class Heldout(TypedDict):
    condition: str
    obs_class: str
    classifiers: list[str]
    chance: float
    architecture: HeldoutPart | Unavailable
    task: HeldoutPart | Unavailable
    objective: HeldoutPart | Unavailable


# --------------------------------------------------------------------------------------------------------------
# 6. permutation importances


class Importance(TypedDict):
    """Accuracy drop when a group of columns is shuffled: mean and s.e.m. over splits."""

    importance_mean: float
    importance_sem: float | None


class StatisticImportance(Importance):
    name: str


class CheckpointImportance(Importance):
    checkpoint: int


class Importances(TypedDict):
    condition: str
    obs_class: str
    classifier: str
    split_mode: str
    n_splits: int
    n_repeats: int
    scoring: str
    test_accuracy_mean: float
    per_statistic: list[StatisticImportance]
    per_checkpoint: list[CheckpointImportance]
    per_class: dict[str, Importance]
    layer_position: Importance
    note: str


# --------------------------------------------------------------------------------------------------------------
# 7. performance-only baseline


class PerformanceCell(Scores):
    classifier: str
    confusion_matrix: list[list[int]]
    labels: list[str]


class ObservablesCell(Scores):
    classifier: str
    obs_class: str


class PerformanceComparison(TypedDict):
    """``difference`` = observables − performance accuracy, paired over splits."""

    classifier: str
    performance: float
    observables: float
    difference: float
    difference_sem: float | None
    observables_beat_performance: bool


class PerformanceBaseline(TypedDict):
    condition: str
    statistics: list[str]
    classifiers: list[str]
    cells: list[PerformanceCell]
    observables: list[ObservablesCell]
    comparison: list[PerformanceComparison]


# --------------------------------------------------------------------------------------------------------------
# 8. pooled and per-objective main tables


class ObjectiveSummary(Scores):
    """One cell of a main table: ``objective`` is an objective or ``"pooled"`` (every network)."""

    objective: str
    classifier: str
    obs_class: str
    n_networks: int
    chance: float


class ObjectiveTables(TypedDict):
    objectives: list[str]
    networks_per_objective: dict[str, int]
    classifiers: list[str]
    obs_classes: list[str]
    per_objective: dict[str, MainTable | Unavailable]
    summary: list[ObjectiveSummary]


# --------------------------------------------------------------------------------------------------------------
# 9. held-out hyperparameters


class HyperparameterEnd(TypedDict):
    """A model trained on the middle networks, tested on one end (``range``: the end's [min, max] value);
    ``reverse_accuracy`` trains on that end and tests on the middle. ``n_test`` counts rows (network × layer)."""

    end: str
    range: list[float]
    n_test_networks: int
    n_test: int
    accuracy: float
    balanced_accuracy: float
    reverse_accuracy: float


class HyperparameterClassifier(TypedDict):
    """``accuracy`` pools both ends (row-weighted: one model trained on the middle)."""

    classifier: str
    ends: list[HyperparameterEnd]
    accuracy: float
    network_split_accuracy: float


class HyperparameterPart(TypedDict):
    available: Literal[True]
    parameter: str
    middle_range: list[float]
    n_train_networks: int
    per_classifier: list[HyperparameterClassifier]


class HyperparameterMean(TypedDict):
    """The mean over the available ``parts`` of the pooled end accuracy; None when no part is available."""

    classifier: str
    parts: list[str]
    accuracy: float | None


class HeldoutHyperparameters(TypedDict):
    condition: str
    obs_class: str
    classifiers: list[str]
    chance: float
    definition: str
    batch_size: HyperparameterPart | Unavailable
    lr: HyperparameterPart | Unavailable
    mean: list[HyperparameterMean]


# --------------------------------------------------------------------------------------------------------------
# 10. recorded-unit count curve


class UnitPoint(Scores):
    units: int
    condition: str
    classifier: str
    obs_class: str
    drop_from_full: float


class UnitFull(Scores):
    """The full-layer (clean condition) reference of one classifier and class."""

    classifier: str
    obs_class: str
    condition: str


class UnitReach(TypedDict):
    """The smallest count whose accuracy is ≥ ``full_accuracy − margin`` (None: no count gets there)."""

    classifier: str
    obs_class: str
    full_accuracy: float
    margin: float
    units_within_margin: int | None


class UnitCountCurve(TypedDict):
    condition_full: str
    classifiers: list[str]
    obs_classes: list[str]
    units: list[int]
    conditions: list[str]
    margin: float
    points: list[UnitPoint]
    full: list[UnitFull]
    reach: list[UnitReach]
    small_layers_all: list[str]
    note: str


# --------------------------------------------------------------------------------------------------------------
# 11. performance-matched control


class MatchedObjective(TypedDict):
    """The matching of one objective: its performance ``levels`` (in ``measure``), the fixed positions of the
    unmatched control (fractional checkpoint indices), networks kept; ``reason`` when it has no common range."""

    objective: str
    measure: str
    n_networks: int
    n_kept: int
    chance_performance: float | None
    levels: list[float]
    fixed_positions: list[float]
    reason: str | None
    available: bool


class MatchedComparison(TypedDict):
    """Matched against unmatched positions, same networks and splits; ``difference`` = matched − unmatched."""

    classifier: str
    obs_class: str
    matched: Scores
    unmatched: Scores
    difference: float
    difference_sem: float | None
    labels: list[str]


class PerformanceMatched(TypedDict):
    condition: str
    classifiers: list[str]
    obs_classes: list[str]
    n_levels: int
    coverage: float
    curve_source: str
    chance: float
    n_networks: int
    objectives: list[MatchedObjective]
    comparison: list[MatchedComparison]
    definition: str


# --------------------------------------------------------------------------------------------------------------
# everything: run_all


class Settings(TypedDict):
    classifiers: list[str]
    curve_classifiers: list[str]
    importance_classifier: str
    grid: str
    n_splits: int
    seed: int
    split_mode: str
    test_size: float
    n_repeats: int


class DatasetSummary(TypedDict):
    """The store as the analyses saw it (clean condition, status-ok networks); ``source`` as the user named it."""

    source: str | None
    clean_condition: str
    n_networks: int
    status_counts: dict[str, int]
    n_rows: int
    n_checkpoints: int
    rules: list[str]
    networks_per_rule: dict[str, int]
    tasks: list[str]
    objectives: list[str]
    architectures: list[str]
    conditions: list[dict[str, Any]]
    unspecified_conditions: list[str]
    task_performance: list[dict[str, Any]]


class Timing(TypedDict):
    """Wall times in seconds (:class:`~learnscope.identify.classify.ClassifyPlan`)."""

    total_s: float
    jobs: int
    per_analysis_s: dict[str, float]
    fit_s_per_analysis: dict[str, float]
    n_fits: int


class ClassifyResults(TypedDict):
    """What :func:`~learnscope.identify.analyses.run_all` returns and ``metrics.json`` holds; ``skipped`` maps an
    analysis (``name`` or ``name.part``) the store cannot support to the reason."""

    settings: Settings
    dataset: DatasetSummary
    main_table: MainTable
    objective_tables: ObjectiveTables | Skipped
    noise_curves: NoiseCurves | Skipped
    subsampling_curve: SubsamplingCurve | Skipped
    unit_count_curve: UnitCountCurve | Skipped
    temporal_curves: TemporalCurves
    heldout: Heldout
    heldout_hyperparameters: HeldoutHyperparameters
    importances: Importances
    performance_baseline: PerformanceBaseline
    performance_matched: PerformanceMatched | Skipped
    skipped: dict[str, str]
    timing: Timing


ANALYSES: tuple[str, ...] = ("main_table", "objective_tables", "noise_curves", "subsampling_curve",
                             "unit_count_curve", "temporal_curves", "heldout", "heldout_hyperparameters",
                             "importances", "performance_baseline", "performance_matched")
"""The analyses of :class:`ClassifyResults`, in the order they run and are reported."""
