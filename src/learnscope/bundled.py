"""The configs shipped with learnscope (one TOML per paper figure) and how a config argument is resolved."""

from __future__ import annotations

from pathlib import Path

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.fileio import shown

BUNDLED_DIR = Path(__file__).resolve().parent / "configs"

APPLICATIONS = ("bias", "identify", "animal")
_PREFIXES = {"identify": "identify_", "animal": "animal_"}


def bundled_configs(application: str) -> list[Path]:
    """The bundled configs of one application: ``identify_*.toml`` for identify, ``animal_*.toml`` for animal,
    the others for bias."""
    if application not in APPLICATIONS:
        raise UnknownNameError("application", application, APPLICATIONS)
    paths = sorted(BUNDLED_DIR.glob("*.toml"))
    if application in _PREFIXES:
        return [p for p in paths if p.stem.startswith(_PREFIXES[application])]
    return [p for p in paths if not p.stem.startswith(tuple(_PREFIXES.values()))]


def resolve_config_path(name_or_path: str | Path, application: str) -> Path:
    """A config file path, or the name of one of ``application``'s bundled configs (``fig2_kernel_sphere``).

    Raises :class:`~learnscope.errors.UnknownNameError` for a bare name that is neither a file nor a bundled config
    of ``application`` (suggesting the nearest of those), and :class:`~learnscope.errors.ConfigError` for a folder or
    a path that does not exist.
    """
    what = {"identify": "grid config", "animal": "experiment config"}.get(application, "config")
    p = Path(name_or_path)
    if p.is_dir():
        raise ConfigError(f"{shown(p)} is a folder; give a {what} file (.toml) or the name of a bundled {what}")
    if p.is_file():
        return p
    available = {x.stem: x for x in bundled_configs(application)}
    bare = p.parent == Path(".") and p.suffix in ("", ".toml")
    if bare and p.stem in available:
        return available[p.stem]
    if bare and p.suffix == "":
        raise UnknownNameError(f"{what} (no such file or bundled {application} config)", p.name, available)
    raise ConfigError(f"{what} file {shown(p)!r} does not exist (bundled {application} configs: "
                      f"{', '.join(available)})")


def read_config(name_or_path: str | Path, application: str) -> dict:
    """The TOML table of a config file or bundled config of ``application`` (:func:`resolve_config_path`); a file
    that is not valid TOML is one :class:`~learnscope.errors.ConfigError` naming it."""
    import tomllib

    path = resolve_config_path(name_or_path, application)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{shown(path)}: not valid TOML ({err})") from None
