"""The configs shipped with learnscope (one TOML per paper figure) and how a config argument is resolved."""

from __future__ import annotations

from pathlib import Path

from learnscope.errors import ConfigError, UnknownNameError

BUNDLED_DIR = Path(__file__).resolve().parent / "configs"


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (``fig2_kernel_sphere``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    bundled = BUNDLED_DIR / (p.name if p.suffix == ".toml" else f"{p.name}.toml")
    if bundled.is_file() and p.parent == Path("."):
        return bundled
    available = sorted(x.stem for x in BUNDLED_DIR.glob("*.toml"))
    if p.parent == Path(".") and p.suffix == "":
        raise UnknownNameError("config (no such file or bundled config)", p.name, available)
    raise ConfigError(f"config file {str(p)!r} does not exist (bundled configs: {', '.join(available)})")


def bundled_configs(application: str) -> list[Path]:
    """The bundled configs of one application: ``identify_*.toml`` for identify, the others for bias."""
    paths = sorted(BUNDLED_DIR.glob("*.toml"))
    if application == "identify":
        return [p for p in paths if p.stem.startswith("identify_")]
    return [p for p in paths if not p.stem.startswith("identify_")]
