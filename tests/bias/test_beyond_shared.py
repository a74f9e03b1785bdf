"""A contrast restricted to the orthogonal complement of the functions both learners learn well (issue 16 item 4)."""

from __future__ import annotations

from learnscope.bias.beyond_shared import find_contrast_beyond_shared
from learnscope.bias.measures import harmonic_energy
from learnscope.bias.metalearner import MetaMLP
from learnscope.bias.search import SearchSettings
from learnscope.domains import Sphere
from learnscope.learners.kernels import KernelRidge
from learnscope.learners.ridge import Ridge
from learnscope.targets import make_target


def test_the_shared_linear_functions_are_projected_out_of_the_contrast():
    """A = arc-cosine kernel ridge, B = linear ridge on S²: both learn the degree-1 harmonics (A's three easiest
    functions), so they are shared and projected out; what is left for the contrast has no degree-1 energy (exact
    deflation, up to the reference set's sampling of the sphere)."""
    sphere = Sphere(3)
    a, b = KernelRidge("arccos1", lam=1e-3), Ridge(lam=1e-3)
    settings = SearchSettings(steps=200, n_train=20, n_test=40, learners_per_step=4, optimiser="adam", lr=0.01,
                              alpha_d=10.0, contrast_objective="difference", dtype="float64", n_reference=1000)
    out = find_contrast_beyond_shared(lambda: MetaMLP(3, hidden=32, layers=2, cos=False), sphere, a, b,
                                      make_target("uniform"), settings, k=3, draws=40, shared_below=0.2)
    assert out.shared == [0, 1, 2]
    for errs in out.relative_mse:
        assert errs["a"] <= 0.2 and errs["b"] <= 0.2
    energy = harmonic_energy(out.contrast.function.for_seed(0), 3, max_degree=4, n_points=4000)
    # what is left is degree 2 (A learns it, linear ridge cannot); the degree-1 residue comes from A's easiest
    # functions being degree 1 only to 0.998 and the deflation being exact on 1,000 reference points only
    assert energy[2] > 0.8 and energy[1] < 0.1
