"""A contrast that is not a shared easy function in disguise.

When two learners find the same functions easy, :func:`~learnscope.bias.search.find_contrast` can report a large
ratio produced by a small admixture on top of a function both learn well. :func:`find_contrast_beyond_shared`
restricts the contrast to the orthogonal complement of the functions both learn well: it finds the ``k`` easiest
functions of learner A (Algorithm 1's series), keeps those that learner B also learns well (relative few-shot MSE,
the error over the function's mean square, at most ``shared_below``), and searches the contrast with those
functions deflated out (``orthogonality = "deflate"``: exact on the search's reference points).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from learnscope.bias.measures import generalisation_error
from learnscope.bias.search import FoundFunction, SearchResult, SearchSettings, find_contrast, find_series


@dataclass
class BeyondShared:
    """contrast : the restricted contrast. easiest : A's k easiest functions (their search results). shared : the
    indices (into ``easiest``) projected out, with ``relative_mse`` of A and B on each of A's easiest functions
    (seed 0, ``draws`` few-shot tasks)."""

    contrast: SearchResult
    easiest: list[SearchResult]
    shared: list[int]
    relative_mse: list[dict]


def find_contrast_beyond_shared(make_meta: Callable, domain, learner_a, learner_b, target, settings: SearchSettings,
                                seeds: Sequence[int] = (0,), *, k: int = 3, shared_below: float = 0.1,
                                draws: int = 100, **kw) -> BeyondShared:
    """The contrast of A against B in the orthogonal complement of the functions both learn well (module doc).

    settings : the contrast's search settings; A's series uses them with ``orthogonality = "deflate"`` (and the
    contrast is deflated against the shared functions). k : how many of A's easiest functions are checked.
    shared_below : the relative few-shot MSE (at ``settings.n_train`` training points) under which a function counts
    as learnt well. Returns :class:`BeyondShared`.
    """
    deflate = replace(settings, orthogonality="deflate")
    easiest = find_series(make_meta, domain, learner_a, target, [deflate] * k, seeds=seeds, **kw)
    rel, shared = [], []
    for i, res in enumerate(easiest):
        f = res.function.for_seed(0)
        errs = {name: generalisation_error(lr, f, domain, settings.n_train, settings.n_test, draws=draws,
                                           seed=0)["relative"] for name, lr in (("a", learner_a), ("b", learner_b))}
        rel.append(errs)
        if errs["a"] <= shared_below and errs["b"] <= shared_below:
            shared.append(i)
    previous: list[FoundFunction] = [easiest[i].function for i in shared]
    contrast = find_contrast(make_meta(), domain, learner_a, learner_b, target, deflate, seeds, previous=previous,
                             **kw)
    return BeyondShared(contrast, easiest, shared, rel)
