"""One dataclass built from another object's same-named attributes (a table row, a settings section)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["from_attributes"]

_D = TypeVar("_D")


def from_attributes(cls: type[_D], source: object, **given: Any) -> _D:
    """The dataclass `cls`, each field read from the attribute of `source` with its name; `given`
    fields are taken as given (a conversion, a default for a NULL column)."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in given]  # type: ignore[arg-type]
    return cls(**{n: getattr(source, n) for n in names}, **given)
