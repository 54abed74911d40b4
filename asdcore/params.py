"""Typed, strict parameters for components and configs (pydantic models that forbid unknown keys)."""
from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from .errors import ConfigError, suggest

P = TypeVar("P", bound="Params")


class Params(pydantic.BaseModel):
    """Base class of every component's ``Params``: unknown keys and wrong types are errors."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, strict=False)


def validate(model: type[P], data: Any, path: str) -> P:
    """Build ``model`` from ``data``; on failure raise ConfigError naming the key path and allowed values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__} {data!r}")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")  # misspelt keys first
        raise ConfigError("\n".join(_describe(model, err, path) for err in errors)) from None


def _describe(model: type[pydantic.BaseModel], err: dict, path: str) -> str:
    loc = ".".join(str(part) for part in err["loc"])
    key = f"{path}.{loc}" if path and loc else (path or loc)
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, err["loc"][:-1])
        name = str(err["loc"][-1])
        return f"{key}: unknown key {name!r}; allowed keys: {', '.join(allowed) or '(none)'}.{suggest(name, allowed)}"
    if err["type"] == "missing":
        return f"{key}: required key missing"
    return f"{key}: {err['msg']} (got {_short(err.get('input'))})"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _allowed_keys(model: type[pydantic.BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_of(field.annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_of(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
