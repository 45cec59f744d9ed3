"""Configuration loading shared by every component.

Each component declares a pydantic-settings model; `load_config` reads a TOML file, applies
`CPMSYNC_SECTION__KEY` environment overrides and turns any validation problem into one
`ConfigError` that names the file and the key, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cpmsync.errors import ConfigError, UserInputError

__all__ = ["ConfigError", "CpmSettings", "UserInputError", "load_config", "read_secret"]

S = TypeVar("S", bound="CpmSettings")
M = TypeVar("M", bound=BaseModel)


class CpmSettings(BaseSettings):
    """Base for component settings: env prefix CPMSYNC_, nested keys split by a double underscore."""

    model_config = SettingsConfigDict(
        env_prefix="CPMSYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed as init kwargs), so a unit file can override one key.
        return (env_settings, init_settings)


def _key_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML file at `path` as a dict; a ConfigError naming the file if it cannot be read."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def shipped_or_path(name_or_path: str | Path, folder: Path, what: str) -> Path:
    """A file shipped in `folder` by name (`<name>.toml`), or any TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    shipped = folder / f"{name_or_path}.toml"
    if not shipped.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
        raise ConfigError(f"unknown {what} {str(name_or_path)!r} (known: {known}, or a path to a .toml)")
    return shipped


def model_from(cls: type[M], data: dict[str, Any], path: Path) -> M:
    """`cls(**data)`; a ConfigError naming `path` and each bad key if the data does not fit."""
    try:
        return cls(**data)
    except ValidationError as e:
        problems = "; ".join(f"key {'.'.join(map(str, x['loc']))!r}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"{path}: {problems}") from None
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_config(cls: type[S], path: Path | str | None) -> S:
    """Load `cls` from the TOML file at `path` (or defaults only), then environment overrides."""
    data: dict[str, Any] = {}
    where = "defaults and environment"
    if path is not None:
        where = str(path)
        data = read_toml(Path(path), "configuration")
    try:
        return cls(**data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = _key_path(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            # Name the environment variable when the bad value came from there, not the file.
            env = "CPMSYNC_" + "__".join(str(p) for p in err["loc"]).upper()
            source = f" (from environment {env})" if env in os.environ else ""
            problems.append(f"key {key!r}{source}: {msg}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


def read_secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """Return a secret given inline (usually from the environment) or read from `file`.

    The file wins when both are set, so a secret never has to sit in the TOML itself.
    """
    if file is not None:
        try:
            return Path(file).expanduser().read_text().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"{what}: cannot read secret file {file}: {e.strerror}") from None
    if value is not None:
        return value.get_secret_value()
    return None
