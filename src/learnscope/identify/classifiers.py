r"""Classifiers that name the learning rule from trajectories (identify-spec §5.1, §7.4).

Every classifier is a seeded scikit-learn :class:`~sklearn.pipeline.Pipeline` whose first step standardises the
features (fitted on the training rows only, so it is refitted inside every cross-validation fold):

========== ====== =====================================================================================
name       input  pipeline
========== ====== =====================================================================================
rf         2-D    scale → RandomForestClassifier
svm        2-D    scale → LinearSVC
svm_pca    2-D    scale → :class:`CappedPCA` (one-hot columns passed through) → LinearSVC
conv1d     3-D    :class:`ChannelScaler` → :class:`Conv1DClassifier` (torch)
hgb        2-D    scale → HistGradientBoostingClassifier
minirocket 3-D    :class:`ChannelScaler` → :class:`MiniRocketClassifier` (optional extra ``aeon``)
========== ====== =====================================================================================

2-D inputs are :meth:`TrajectoryDataset.to_2d` (``(n, 3 + n_obs·T)``, one-hot first); 3-D inputs are
:meth:`TrajectoryDataset.features("3d") <learnscope.identify.dataset.TrajectoryDataset.features>`
(``(n, T, 3 + n_obs)``, channels-last, one-hot channels first).

Scaling (``scaling=``): ``"standard"`` (z-score), ``"signed_log1p"`` (:math:`\mathrm{sign}(x)\log(1+|x|)` then
z-score, as in the spec's toy calibration §6.4) or ``"none"`` (the original's default ``zscore_data=False``).

Grids (:func:`make_classifier`): ``"original"`` is §5.1 exactly for rf, svm, svm_pca (which is the original's
"svm" entry: with or without PCA, 7 + 77 points) and conv1d (720 points); hgb and minirocket did not exist in
the original, so their ``"original"`` grid is a modest full grid of ours. ``"reduced"`` is a small grid for
2-core runs; ``"none"`` returns the estimator's defaults and an empty grid.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from learnscope import rng
from learnscope.errors import ConfigError, NonFiniteError, ShapeError, UnknownNameError

CLASSIFIERS: tuple[str, ...] = ("rf", "svm", "svm_pca", "conv1d", "hgb", "minirocket")
GRIDS: tuple[str, ...] = ("original", "reduced", "none")
SCALINGS: tuple[str, ...] = ("standard", "signed_log1p", "none")
POOL_TYPES: tuple[str | None, ...] = (None, "max", "avg")
_INPUT = {"rf": "2d", "svm": "2d", "svm_pca": "2d", "conv1d": "3d", "hgb": "2d", "minirocket": "3d"}
ROCKET_HINT = "pip install learnscope[rocket]"

SVM_C_ORIGINAL = [1.0, 5e1, 5e2, 5e3, 5e4, 5e5, 5e6]
PCA_N_ORIGINAL = [10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 600]
# int(ceil(f * 21)) for the original fractions {3e-3, 7e-3, 0.05, 0.25, 0.5, 1.0}, deduplicated (spec §5.1)
CONV_KSIZES_ORIGINAL = sorted({math.ceil(f * 21) for f in (3e-3, 7e-3, 5e-2, 0.25, 0.5, 1.0)})


def estimator_input(name: str) -> str:
    """``"2d"`` or ``"3d"``: the feature layout classifier ``name`` takes."""
    if name not in _INPUT:
        raise UnknownNameError("classifier", str(name), CLASSIFIERS)
    return _INPUT[name]


def signed_log1p(x: np.ndarray) -> np.ndarray:
    r""":math:`\mathrm{sign}(x)\,\log(1 + |x|)`, elementwise (compresses features spanning many decades)."""
    return np.sign(x) * np.log1p(np.abs(x))


def _scaler(scaling: str) -> Any:
    if scaling not in SCALINGS:
        raise UnknownNameError("scaling", str(scaling), SCALINGS)
    if scaling == "standard":
        return StandardScaler()
    if scaling == "signed_log1p":
        return Pipeline([("log", FunctionTransformer(signed_log1p)), ("z", StandardScaler())])
    return "passthrough"


# --------------------------------------------------------------------------------------------------------------
# transformers


class CappedPCA(TransformerMixin, BaseEstimator):
    """PCA on all but the first ``n_leading`` columns, which pass through and stay first (the original applied PCA
    to the continuous features and prepended the layer one-hot afterwards, spec §4.6).

    ``n_components`` is capped at ``min(n_samples, n_features − n_leading)``; the original silently dropped the
    grid points above that (spec §8 item 6). The used value is ``n_components_`` after fitting.
    """

    def __init__(self, n_components: int = 50, n_leading: int = 3, random_state: int | None = 0):
        self.n_components = n_components
        self.n_leading = n_leading
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None) -> CappedPCA:
        X = _as_2d("X", X)
        rest = X[:, self.n_leading:]
        if rest.shape[1] == 0:
            raise ShapeError(f"CappedPCA needs columns after the {self.n_leading} leading ones, got {X.shape}")
        self.n_components_ = int(min(self.n_components, rest.shape[0], rest.shape[1]))
        self.pca_ = PCA(n_components=self.n_components_, random_state=self.random_state).fit(rest)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d("X", X)
        return np.concatenate([X[:, :self.n_leading], self.pca_.transform(X[:, self.n_leading:])], axis=1)


class ChannelScaler(TransformerMixin, BaseEstimator):
    """Per-channel standardisation of ``(n, T, C)`` inputs: mean and std over rows and time, from the training
    rows (a zero std becomes 1). ``scaling`` as in the module docstring."""

    def __init__(self, scaling: str = "standard"):
        self.scaling = scaling

    def fit(self, X: np.ndarray, y: Any = None) -> ChannelScaler:
        if self.scaling not in SCALINGS:
            raise UnknownNameError("scaling", str(self.scaling), SCALINGS)
        X = self._pre(_as_3d("X", X))
        if self.scaling == "none":
            self.mean_, self.scale_ = np.zeros(X.shape[2]), np.ones(X.shape[2])
        else:
            self.mean_ = X.mean(axis=(0, 1))
            std = X.std(axis=(0, 1))
            self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (self._pre(_as_3d("X", X)) - self.mean_) / self.scale_

    def _pre(self, X: np.ndarray) -> np.ndarray:
        return signed_log1p(X) if self.scaling == "signed_log1p" else X


def _as_2d(name: str, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ShapeError(f"{name} must have shape (n, features), got {X.shape}")
    return X


def _as_3d(name: str, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ShapeError(f"{name} must have shape (n, T, channels), got {X.shape}")
    if not np.isfinite(X).all():
        raise NonFiniteError(f"{name} contains NaN/inf values")
    return X


# --------------------------------------------------------------------------------------------------------------
# Conv1D "MLP"


class _ConvNet(torch.nn.Module):
    def __init__(self, n_channels: int, T: int, n_classes: int, ksize: int, num_filters: int, stride: int,
                 pool_type: str | None, generator: torch.Generator):
        super().__init__()
        self.conv = torch.nn.Conv1d(n_channels, num_filters, ksize, stride=stride, padding=0)
        self.pool_type = pool_type
        L = (T - ksize) // stride + 1
        self.fc = torch.nn.Linear(num_filters if pool_type else num_filters * L, n_classes)
        for layer in (self.conv, self.fc):  # Glorot-uniform kernels and zero biases, as tf.layers / tf.contrib
            torch.nn.init.xavier_uniform_(layer.weight, generator=generator)
            torch.nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(n, T, C)`` channels-last → logits ``(n, n_classes)``."""
        h = torch.relu(self.conv(x.transpose(1, 2)))  # (n, F, L)
        if self.pool_type == "max":
            h = h.amax(dim=2)
        elif self.pool_type == "avg":
            h = h.mean(dim=2)
        else:
            h = h.transpose(1, 2).flatten(1)  # channels-last flatten: time-major, as tf.reshape of (n, L, F)
        return self.fc(h)


class Conv1DClassifier(ClassifierMixin, BaseEstimator):
    r"""The original "Conv1D MLP" (spec §5.1) in torch: one 1-D convolution over time (observables as channels,
    ``valid`` padding, ReLU), optional max/avg pooling over time (else flatten), one linear layer to the classes.

    Trained with Adam at a constant ``init_lr`` on softmax cross-entropy plus
    :math:`\tfrac{wd}{2}\sum \theta^2` over both kernels and biases (``tf.contrib.layers.l2_regularizer``), on
    shuffled minibatches that drop the remainder. Seeded with explicit ``torch.Generator`` s from
    ``random_state`` (initialisation and shuffling), so a fit is a pure function of its inputs.

    ``ksize`` is capped at the trajectory length ``T`` and ``train_batch_size`` at the number of training rows
    (the original asserted / failed there). Input ``X``: ``(n, T, C)`` float; labels any hashable values.
    """

    def __init__(self, ksize: int = 3, num_filters: int = 20, stride: int = 1, pool_type: str | None = None,
                 init_lr: float = 1e-3, max_epochs: int = 100, train_batch_size: int = 32,
                 weight_decay: float = 1e-4, random_state: int = 0):
        self.ksize = ksize
        self.num_filters = num_filters
        self.stride = stride
        self.pool_type = pool_type
        self.init_lr = init_lr
        self.max_epochs = max_epochs
        self.train_batch_size = train_batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> Conv1DClassifier:
        X = _as_3d("X", X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ShapeError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        if self.pool_type not in POOL_TYPES:
            raise UnknownNameError("pool_type", str(self.pool_type), ("max", "avg", "None"))
        self.classes_, codes = np.unique(y, return_inverse=True)
        n, T, C = X.shape
        self.ksize_ = int(min(self.ksize, T))
        bs = int(min(self.train_batch_size, n))
        init_gen = rng.offset_torch_generator(int(self.random_state))
        order_gen = rng.offset_torch_generator(int(self.random_state), rng.CONV1D_ORDER_OFFSET_OF_FIRST_RELEASE)
        net = _ConvNet(C, T, len(self.classes_), self.ksize_, int(self.num_filters), int(self.stride),
                       self.pool_type, init_gen)
        opt = torch.optim.Adam(net.parameters(), lr=self.init_lr)
        xt = torch.as_tensor(X, dtype=torch.float32)
        yt = torch.as_tensor(codes, dtype=torch.long)
        n_batches = n // bs
        for _ in range(int(self.max_epochs)):
            perm = torch.randperm(n, generator=order_gen)
            for b in range(n_batches):
                idx = perm[b * bs:(b + 1) * bs]
                loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                if self.weight_decay:
                    loss = loss + 0.5 * self.weight_decay * sum((p * p).sum() for p in net.parameters())
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net_ = net.eval()
        self.n_features_in_ = C
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax class probabilities ``(n, n_classes)`` in ``classes_`` order (rows sum to 1)."""
        X = _as_3d("X", X)
        with torch.no_grad():
            logits = self.net_(torch.as_tensor(X, dtype=torch.float32)).double()
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# --------------------------------------------------------------------------------------------------------------
# MiniRocket (optional)


def _require_aeon() -> None:
    if importlib.util.find_spec("aeon") is None:
        raise ConfigError(f"the minirocket classifier needs the optional dependency aeon: {ROCKET_HINT}")


class MiniRocketClassifier(ClassifierMixin, BaseEstimator):
    """MiniRocket features (aeon) → z-score → ridge classifier with its regularisation chosen by internal
    leave-one-out CV (Dempster et al. 2021). Input ``(n, T, C)`` channels-last; needs ``learnscope[rocket]``."""

    def __init__(self, n_kernels: int = 10_000, random_state: int = 0):
        self.n_kernels = n_kernels
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> MiniRocketClassifier:
        _require_aeon()
        from aeon.transformations.collection.convolution_based import MiniRocket
        from sklearn.linear_model import RidgeClassifierCV

        X = _as_3d("X", X).transpose(0, 2, 1)  # aeon collections are (n, channels, T)
        self.transform_ = MiniRocket(n_kernels=self.n_kernels, random_state=self.random_state)
        feats = self.transform_.fit_transform(X.astype(np.float32))
        self.scaler_ = StandardScaler().fit(feats)
        self.ridge_ = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(self.scaler_.transform(feats), y)
        self.classes_ = self.ridge_.classes_
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = _as_3d("X", X).transpose(0, 2, 1)
        return self.ridge_.decision_function(self.scaler_.transform(self.transform_.transform(X.astype(np.float32))))

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = _as_3d("X", X).transpose(0, 2, 1)
        return self.ridge_.predict(self.scaler_.transform(self.transform_.transform(X.astype(np.float32))))


# --------------------------------------------------------------------------------------------------------------
# factory


def _grid(name: str, grid: str) -> dict | list[dict]:
    if grid == "none":
        return {}
    original = grid == "original"
    if name == "rf":
        if original:
            return {"cls__max_features": ["sqrt", "log2", None], "cls__n_estimators": [20, 50, 100, 500, 1000]}
        # reduced grids are single points (no inner search) so the full analysis of tier 1 fits in minutes
        return {"cls__max_features": ["sqrt"], "cls__n_estimators": [300]}
    if name == "svm":
        return {"cls__C": list(SVM_C_ORIGINAL)} if original else {"cls__C": [0.01, 0.1, 1.0]}
    if name == "svm_pca":
        if original:
            return [{"pca": ["passthrough"], "cls__C": list(SVM_C_ORIGINAL)},
                    {"pca__n_components": list(PCA_N_ORIGINAL), "cls__C": list(SVM_C_ORIGINAL)}]
        return {"pca__n_components": [10, 50], "cls__C": [0.01, 0.1, 1.0]}
    if name == "conv1d":
        if original:
            return {"cls__init_lr": [1e-3, 1e-4], "cls__max_epochs": [400], "cls__ksize": list(CONV_KSIZES_ORIGINAL),
                    "cls__train_batch_size": [512, 1024], "cls__num_filters": [20, 40], "cls__stride": [1, 2, 4],
                    "cls__pool_type": [None, "max", "avg"], "cls__weight_decay": [1e-4, 0.0]}
        return {"cls__ksize": [2, 6], "cls__pool_type": [None, "avg"]}
    if name == "hgb":
        if original:
            return {"cls__learning_rate": [0.05, 0.1, 0.2], "cls__max_leaf_nodes": [15, 31],
                    "cls__min_samples_leaf": [5, 20], "cls__max_iter": [100, 300]}
        # feature subsampling and 63 bins cut a fit on tier 1 from 5.1 s to 1.4 s at equal accuracy;
        # min_samples_leaf=5 because sklearn's 20 cannot split a training set of < 40 rows
        return {"cls__learning_rate": [0.1], "cls__min_samples_leaf": [5], "cls__max_features": [0.2],
                "cls__max_bins": [63]}
    # minirocket: the ridge penalty is selected internally; only the transform size differs
    return {"cls__n_kernels": [10_000]} if original else {"cls__n_kernels": [840]}


def make_classifier(name: str, grid: str = "original", random_state: int = 0,
                    scaling: str = "standard") -> tuple[Pipeline, dict | list[dict]]:
    """A seeded pipeline for classifier ``name`` and its ``param_grid`` (a dict, or a list of dicts for svm_pca's
    original two-pipeline grid; ``{}`` for ``grid="none"``). See the module docstring for names and grids."""
    if name not in CLASSIFIERS:
        raise UnknownNameError("classifier", str(name), CLASSIFIERS)
    if grid not in GRIDS:
        raise UnknownNameError("grid", str(grid), GRIDS)
    if scaling not in SCALINGS:
        raise UnknownNameError("scaling", str(scaling), SCALINGS)
    rs = int(random_state)
    if name == "rf":
        steps = [("scale", _scaler(scaling)),
                 ("cls", RandomForestClassifier(n_estimators=100, max_features="sqrt", random_state=rs, n_jobs=1))]
    elif name == "svm":
        steps = [("scale", _scaler(scaling)), ("cls", LinearSVC(C=0.1, random_state=rs))]
    elif name == "svm_pca":
        steps = [("scale", _scaler(scaling)), ("pca", CappedPCA(n_components=50, random_state=rs)),
                 ("cls", LinearSVC(C=0.1, random_state=rs))]
    elif name == "conv1d":
        steps = [("scale", ChannelScaler(scaling)), ("cls", Conv1DClassifier(random_state=rs))]
    elif name == "hgb":
        steps = [("scale", _scaler(scaling)), ("cls", HistGradientBoostingClassifier(random_state=rs))]
    else:
        _require_aeon()
        steps = [("scale", ChannelScaler(scaling)), ("cls", MiniRocketClassifier(random_state=rs))]
    return Pipeline(steps), _grid(name, grid)


def grid_size(param_grid: dict | list[dict]) -> int:
    """Number of points of a scikit-learn ``param_grid`` (1 for an empty grid)."""
    grids = param_grid if isinstance(param_grid, list) else [param_grid]
    return sum(math.prod(len(v) for v in g.values()) for g in grids) if grids and any(grids) else 1
