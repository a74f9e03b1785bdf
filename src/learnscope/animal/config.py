"""An animal experiment's config (TOML): the route, the stimulus domain, the response model, the trial budget, and —
for ``learnscope animal simulate`` only — the hidden learner that plays the animal.

.. code-block:: toml

    [experiment]
    route = "iterated"          # iterated (route 1); more routes: see ROUTES
    seed = 0
    budget = 600                # trials, all sessions together
    naive = "new_context"       # what makes each session's learner naive: new_animal | new_context

    [domain]                    # where stimuli live, as for `learnscope bias` (sphere, disc, hypercube, …)
    name = "sphere"
    dim = 3

    [response]                  # graded (noise) or binary (slope, lapse): how responses become labels
    kind = "graded"
    noise = 0.1

    [iterated]                  # route settings (IteratedSettings fields)
    n_train = 20

    [animal]                    # simulate only: any learner of `learnscope bias` configs
    name = "kernel_ridge"
    kernel = "arccos1"
    lam = 0.1
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from learnscope.animal.iterated import IteratedLearning, IteratedSettings
from learnscope.animal.responses import ResponseModel, make_response
from learnscope.bundled import resolve_config_path
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_keys, check_scalar

SECTIONS = ("experiment", "domain", "response", "iterated", "animal")
EXPERIMENT_KEYS = ("route", "seed", "budget", "naive", "title", "description")
ROUTES = ("iterated",)


@dataclass(frozen=True)
class AnimalConfig:
    """A validated experiment config; ``raw`` is the TOML as read (it is copied into the experiment folder)."""

    raw: dict
    route: str
    seed: int
    budget: int
    naive: str
    domain: dict
    response: ResponseModel
    settings: IteratedSettings
    animal: dict | None
    title: str

    def make_route(self):
        """The route object (``plan(log, budget_left)``, ``estimate(log)``)."""
        from learnscope.domains import make_domain

        return IteratedLearning(make_domain(self.domain), self.response, self.settings, seed=self.seed)

    def make_animal(self):
        """The simulated animal of the ``[animal]`` table (``simulate`` only)."""
        from learnscope.animal.simulated import SimulatedAnimal
        from learnscope.learners.registry import make_learner

        if self.animal is None:
            raise ConfigError("this experiment has no [animal] table: `simulate` needs the hidden learner that plays "
                              "the animal (e.g. [animal] name = \"kernel_ridge\", kernel = \"arccos1\", lam = 0.1)")
        return SimulatedAnimal(make_learner(dict(self.animal)), self.response)


def _settings(table: dict) -> IteratedSettings:
    names = [f.name for f in fields(IteratedSettings)]
    check_keys(table, names, "key in [iterated]")
    try:
        return IteratedSettings(**table)
    except TypeError as exc:
        raise ConfigError(f"[iterated]: {exc}") from None


def parse_animal_config(raw: dict) -> AnimalConfig:
    """Validate a config table (one-line ConfigError / UnknownNameError for anything wrong)."""
    check_keys(raw, SECTIONS, "section of an animal experiment")
    exp = dict(raw.get("experiment", {}))
    check_keys(exp, EXPERIMENT_KEYS, "key in [experiment]")
    route = exp.get("route", "iterated")
    if route not in ROUTES:
        raise UnknownNameError("route", str(route), ROUTES)
    seed = int(check_scalar("experiment.seed", exp.get("seed", 0), int, 0))
    budget = int(check_scalar("experiment.budget", exp.get("budget", 600), int, 1))
    naive = exp.get("naive", "new_context")
    if naive not in ("new_animal", "new_context"):
        raise UnknownNameError("[experiment] naive", str(naive), ("new_animal", "new_context"))
    if "domain" not in raw:
        raise ConfigError("an animal experiment needs a [domain] table (e.g. name = \"sphere\", dim = 3)")
    from learnscope.domains import make_domain

    make_domain(dict(raw["domain"]))  # validated now, before any session
    response = make_response(dict(raw.get("response", {"kind": "graded"})))
    settings = _settings(dict(raw.get(route, {})))
    animal = dict(raw["animal"]) if "animal" in raw else None
    if animal is not None:
        from learnscope.learners.registry import make_learner

        make_learner(dict(animal))
    return AnimalConfig(raw, route, seed, budget, naive, dict(raw["domain"]), response, settings, animal,
                        str(exp.get("title", "")))


def load_animal_config(name_or_path: str | Path) -> AnimalConfig:
    """Read a config file or the name of a bundled ``animal_*.toml``."""
    path = resolve_config_path(name_or_path, "animal")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    return parse_animal_config(raw)
