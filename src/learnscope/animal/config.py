"""An animal experiment's config (TOML): the route, the stimulus domain, the response model, the trial budget, and —
for ``learnscope animal simulate`` only — the hidden learner that plays the animal.

.. code-block:: toml

    [experiment]
    route = "iterated"          # iterated | surrogate | es, or stages: ["iterated", "surrogate"]
    validate = false            # then a paired test of f1 against controls on the animal
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

from dataclasses import dataclass, fields
from pathlib import Path

from learnscope.animal.iterated import IteratedLearning, IteratedSettings
from learnscope.animal.responses import ResponseModel, make_response
from learnscope.bundled import read_config
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_keys, check_scalar

SECTIONS = ("experiment", "domain", "response", "iterated", "surrogate", "es", "validation", "algorithm1", "animal")
EXPERIMENT_KEYS = ("route", "seed", "budget", "stage_budgets", "validate", "naive", "title", "description")
ROUTES = ("iterated", "surrogate", "es")
ALGORITHM1_KEYS = ("search", "meta")


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
    settings: dict
    animal: dict | None
    title: str
    routes: tuple[str, ...] = ("iterated",)
    stage_budgets: tuple[int | None, ...] = (None,)
    validate: bool = False
    algorithm1: dict | None = None

    def make_route(self):
        """The route object (``plan(log, budget_left)``, ``estimate(log)``): the stages of ``routes`` (then the
        validation stage if ``validate``) on one session log."""
        from learnscope.animal.es import EvolutionStrategies
        from learnscope.animal.staged import Staged
        from learnscope.animal.surrogate import Surrogate
        from learnscope.animal.validation import Validation
        from learnscope.domains import make_domain

        domain = make_domain(self.domain)
        build = {
            "iterated": lambda: IteratedLearning(domain, self.response, self.settings["iterated"], seed=self.seed),
            "surrogate": lambda: Surrogate(domain, self.response, self.settings["surrogate"], seed=self.seed,
                                           algorithm1=self.algorithm1),
            "es": lambda: EvolutionStrategies(domain, self.response, self.settings["es"], seed=self.seed),
        }
        stages = [build[r]() for r in self.routes]
        budgets = list(self.stage_budgets)
        if self.validate:
            stages.append(Validation(domain, self.response, self.settings["validation"], seed=self.seed))
            budgets.append(None)
        return Staged(stages, budgets)

    def make_animal(self):
        """The simulated animal of the ``[animal]`` table (``simulate`` only)."""
        from learnscope.animal.simulated import SimulatedAnimal
        from learnscope.learners.registry import make_learner

        if self.animal is None:
            raise ConfigError("this experiment has no [animal] table: `simulate` needs the hidden learner that plays "
                              "the animal (e.g. [animal] name = \"kernel_ridge\", kernel = \"arccos1\", lam = 0.1)")
        return SimulatedAnimal(make_learner(dict(self.animal)), self.response)


def _settings(raw: dict) -> dict:
    """Every route's settings (defaults where the config has no table), validated."""
    from learnscope.animal.es import es_settings
    from learnscope.animal.surrogate import surrogate_settings
    from learnscope.animal.validation import validation_settings

    table = dict(raw.get("iterated", {}))
    check_keys(table, [f.name for f in fields(IteratedSettings)], "key in [iterated]")
    return {"iterated": IteratedSettings(**table), "surrogate": surrogate_settings(dict(raw.get("surrogate", {}))),
            "es": es_settings(dict(raw.get("es", {}))), "validation": validation_settings(dict(raw.get("validation",
                                                                                                        {})))}


def parse_animal_config(raw: dict) -> AnimalConfig:
    """Validate a config table (one-line ConfigError / UnknownNameError for anything wrong)."""
    check_keys(raw, SECTIONS, "section of an animal experiment")
    exp = dict(raw.get("experiment", {}))
    check_keys(exp, EXPERIMENT_KEYS, "key in [experiment]")
    routes = exp.get("route", "iterated")
    routes = (routes,) if isinstance(routes, str) else tuple(routes)
    if not routes:
        raise ConfigError("[experiment] route lists no route")
    for route in routes:
        if route not in ROUTES:
            raise UnknownNameError("route", str(route), ROUTES)
    stage_budgets = exp.get("stage_budgets", [None] * len(routes))
    if len(stage_budgets) != len(routes):
        raise ConfigError(f"[experiment] stage_budgets has {len(stage_budgets)} entries for {len(routes)} route(s)")
    stage_budgets = tuple(None if b is None else int(check_scalar("stage budget", b, int, 1)) for b in stage_budgets)
    validate = exp.get("validate", False)
    if not isinstance(validate, bool):
        raise ConfigError(f"[experiment] validate must be true or false, got {validate!r}")
    algorithm1 = dict(raw.get("algorithm1", {}))
    check_keys(algorithm1, ALGORITHM1_KEYS, "key in [algorithm1]")
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
    try:
        settings = _settings(raw)
    except TypeError as exc:
        raise ConfigError(f"route settings: {exc}") from None
    animal = dict(raw["animal"]) if "animal" in raw else None
    if animal is not None:
        from learnscope.learners.registry import make_learner

        make_learner(dict(animal))
    return AnimalConfig(raw, "+".join(routes), seed, budget, naive, dict(raw["domain"]), response, settings,
                        animal, str(exp.get("title", "")), routes, stage_budgets, validate, algorithm1)


def load_animal_config(name_or_path: str | Path) -> AnimalConfig:
    """Read a config file or the name of a bundled ``animal_*.toml``."""
    return parse_animal_config(read_config(name_or_path, "animal"))
