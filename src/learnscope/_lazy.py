"""Lazy re-exports for the curated public API: a name is imported from its module on first use, so importing a
package stays cheap (``import learnscope`` loads neither torch, scikit-learn nor pandas)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``exports`` (public name → defining module).

    A module path that equals ``package + "." + name`` re-exports the submodule itself; ``"module:attribute"``
    re-exports that attribute (for a function named like its module, e.g. ``identify.predict``).
    """

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = module.partition(":")
        loaded = importlib.import_module(module)
        if attribute:
            return getattr(loaded, attribute)
        return loaded if module == f"{package}.{name}" else getattr(loaded, name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
