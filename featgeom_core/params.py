"""Parameters as data: the base of every analysis's and job kind's params model.

Each analysis declares its parameters once, as a frozen pydantic model whose fields carry their
constraints, defaults (the paper's) and a description with units. The same model validates
input from the browser, the CLI and the job API, gives the pages their widget bounds and help
text (:func:`field_spec`), and gives the CLI its schema. A validation failure becomes an
:class:`~featgeom_core.errors.InvalidParameter` that names the field, the value given and what
is allowed.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from featgeom_core.errors import InvalidParameter

P = TypeVar("P", bound="Params")


class Params(BaseModel):
    """Frozen, strict-about-names parameters. Subclasses add fields with ``Field(description=...)``."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _invalid(type(self), exc) from None

    @classmethod
    def parse(cls: type[P], raw: Mapping[str, Any] | Params | None = None, **overrides: Any) -> P:
        """Validate ``raw`` (plus ``overrides``) into this model; errors become InvalidParameter."""
        if isinstance(raw, cls) and not overrides:
            return raw
        if not isinstance(raw, (Mapping, Params, type(None))):
            raise InvalidParameter(f"{cls.__name__} takes a mapping of parameters, got {type(raw).__name__}")
        values = dict(raw.model_dump() if isinstance(raw, Params) else (raw or {}))
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _invalid(cls, exc) from None

    @model_validator(mode="before")
    @classmethod
    def _refuse_early(cls, data: Any) -> Any:
        # pydantic reads true as 1; a flag in a number's place (seed=true on the CLI, a JSON typo) is a mistake.
        # A list over its length limit is refused before its items are validated one by one.
        if isinstance(data, Mapping):
            numeric, longest = _numeric_fields(cls), _length_limits(cls)
            for name, value in data.items():
                if isinstance(value, (list, tuple)) and name in longest and len(value) > longest[name]:
                    raise ValueError(f"{name}: {len(value)} items given, at most {longest[name]} allowed")
                values = value if isinstance(value, (list, tuple)) else [value]
                if name in numeric and any(isinstance(item, bool) for item in values):
                    raise ValueError(f"{name} = {_short(value)}: a number is expected, not true/false")
        return data

    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields added after jobs of this model were first stored: left out of :meth:`normalised` while
    at their default, so those jobs keep their ids and their cached results."""

    def normalised(self) -> dict[str, Any]:
        """The JSON-able dict of every field (tuples as lists): what job ids and cache keys hash."""
        values = self.model_dump(mode="json")
        for name in self.ADDED_FIELDS:
            if getattr(self, name) == type(self).model_fields[name].get_default(call_default_factory=True):
                del values[name]
        return values


@functools.cache
def _numeric_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that hold a number or a list of numbers (optional or not)."""
    return frozenset(name for name, info in model.model_fields.items() if _holds_numbers(info.annotation))


@functools.cache
def _length_limits(model: type[BaseModel]) -> dict[str, int]:
    """{field: max_length} of the list fields of ``model`` that declare one."""
    return {
        name: item.max_length
        for name, info in model.model_fields.items()
        for item in info.metadata
        if isinstance(item, annotated_types.MaxLen)
    }


def _holds_numbers(annotation: Any) -> bool:
    base, _ = _unwrap(annotation)
    origin = typing.get_origin(base)
    if origin in (typing.Union, types.UnionType):
        return any(_holds_numbers(arg) for arg in typing.get_args(base) if arg is not type(None))
    if origin in (list, tuple):
        return _holds_numbers(_element_type(base))
    return base in (int, float)


def _comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _distinct(value: list[Any]) -> list[Any]:
    repeated = sorted({item for item in value if value.count(item) > 1}, key=str)
    if repeated:
        raise ValueError(f"each value once; repeated: {', '.join(map(str, repeated))}")
    return value


LayerIndices = Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_comma_separated), AfterValidator(_distinct)]
"""Layer indices (0-based), each once, as a list or as text like '0,2,4'."""

CommaSeparated = BeforeValidator(_comma_separated)
"""A list field that also takes comma-separated text (``Annotated[list[str], CommaSeparated]``)."""

Similarity = Literal["cosine", "rbf"]
"""How a PSM compares two feature directions: cosine, or an RBF kernel of their distance."""

MAX_SEED = 2**31 - 1


def seed_field(default: int = 0, description: str = "random seed (non-negative integer)") -> Any:
    """A seed's field: an integer in [0, 2^31 - 1] with a default and a description."""
    return Field(default, ge=0, le=MAX_SEED, description=description)


Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="random seed (non-negative integer)")]
"""A seed field's type, for models that take a seed with the generic description."""


def _invalid(model: type[BaseModel], error: ValidationError) -> InvalidParameter:
    lines = problem_lines(model, error)
    return InvalidParameter("; ".join(lines), lines)


def describe_errors(model: type[BaseModel], error: ValidationError) -> str:
    """One line per problem, joined: ``field: value given -> what is allowed``."""
    return "; ".join(problem_lines(model, error))


def problem_lines(model: type[BaseModel], error: ValidationError) -> list[str]:
    """One line per problem: ``field = value given: what is wrong`` (nested fields as ``a.b``)."""
    lines: list[str] = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"]) or "(parameters)"
        field = str(problem["loc"][0]) if problem["loc"] else ""
        given = _short(problem.get("input"))
        if problem["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            lines.append(f"unknown parameter {location!r} (given {given}); {model.__name__} takes: {allowed}")
        elif problem["type"] == "missing":
            lines.append(f"missing parameter {location!r}: {_field_help(model, field)}")
        elif not problem["loc"]:  # a check across fields: its message says it all
            lines.append(problem["msg"].removeprefix("Value error, "))
        elif isinstance(problem.get("ctx", {}).get("error"), InvalidParameter) and isinstance(problem.get("input"), Mapping):
            # a nested params model refused its fields: name them from here (target.fit.k), not the whole input
            parts = [str(part) for part in problem["loc"] if str(part) != problem["input"].get("kind")]  # a union's tag
            lines.extend(_nested(".".join(parts), inner) for inner in problem["ctx"]["error"].problems)
        elif problem["type"] == "literal_error":
            lines.append(f"{location} = {given} is not allowed" + _allowed_suffix(model, field))
        else:
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{location} = {given}: {message}")
    return lines


def _nested(prefix: str, line: str) -> str:
    """A nested model's problem line, its field named from the outer model (``target.fit.k = ...``)."""
    for lead in ("unknown parameter '", "missing parameter '"):
        if line.startswith(lead):
            return f"{lead}{prefix}.{line[len(lead) :]}"
    return f"{prefix}.{line}"


def _allowed_suffix(model: type[BaseModel], field: str) -> str:
    spec = field_spec(model, field) if field in model.model_fields else None
    if spec is None:
        return ""
    parts = []
    if spec.choices:
        parts.append("one of " + ", ".join(map(str, spec.choices)))
    bounds = spec.describe_bounds()
    if bounds:
        parts.append(bounds)
    return f" (allowed: {'; '.join(parts)})" if parts else ""


def _field_help(model: type[BaseModel], field: str) -> str:
    info = model.model_fields.get(field)
    return (info.description or "required") if info is not None else "required"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class FieldSpec:
    """What a widget needs to know about one field: bounds (inclusive or strict), the default,
    the choices of a Literal field (or of a list of Literals), the help text."""

    name: str
    description: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    choices: tuple[Any, ...] = ()
    is_int: bool = False
    is_list: bool = False

    def lowest(self) -> float | None:
        """The smallest value a widget may offer (a strict bound is nudged inside)."""
        if self.minimum is not None:
            return self.minimum
        if self.exclusive_minimum is not None:
            return self.exclusive_minimum + 1 if self.is_int else math.nextafter(self.exclusive_minimum, math.inf)
        return None

    def highest(self) -> float | None:
        """The largest value a widget may offer."""
        if self.maximum is not None:
            return self.maximum
        if self.exclusive_maximum is not None:
            return self.exclusive_maximum - 1 if self.is_int else math.nextafter(self.exclusive_maximum, -math.inf)
        return None

    def describe_bounds(self) -> str:
        """e.g. ``>= 1 and <= 512``; empty when unbounded."""
        parts = []
        for symbol, value in ((">=", self.minimum), (">", self.exclusive_minimum), ("<=", self.maximum), ("<", self.exclusive_maximum)):
            if value is not None:
                parts.append(f"{symbol} {int(value) if float(value).is_integer() else f'{value:g}'}")
        return " and ".join(parts)


def field_spec(model: type[BaseModel], name: str) -> FieldSpec:
    """The widget-facing description of one field of a params model. For a list field the
    bounds and choices are those of its elements."""
    if name not in model.model_fields:
        raise InvalidParameter(f"{model.__name__} has no parameter {name!r}")
    info = model.model_fields[name]
    annotation = info.annotation
    is_list = typing.get_origin(annotation) in (list, tuple)
    metadata = list(info.metadata)
    element = annotation
    if is_list:
        element, element_metadata = _unwrap(_element_type(annotation))
        metadata = element_metadata
    bounds: dict[str, float] = {}
    for item in metadata:
        for attribute, key in (("ge", "minimum"), ("gt", "exclusive_minimum"), ("le", "maximum"), ("lt", "exclusive_maximum")):
            if isinstance(item, getattr(annotated_types, attribute.capitalize())):
                bounds[key] = getattr(item, attribute)
    choices: tuple[Any, ...] = typing.get_args(element) if typing.get_origin(element) is typing.Literal else ()
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    return FieldSpec(
        name=name,
        description=info.description or "",
        default=default,
        choices=choices,
        is_int=element is int,
        is_list=is_list,
        **bounds,
    )


def _element_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    return args[0] if args else Any


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(bare type, constraint metadata) of a possibly ``Annotated[T, Field(...)]`` type."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        metadata: list[Any] = []
        for extra in extras:
            metadata.extend(getattr(extra, "metadata", [extra]))
        return base, metadata
    return annotation, []


def schema_rows(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One row per field (name, type, default, range, description): ``featgeom jobs kinds``."""
    rows = []
    for name, info in model.model_fields.items():
        spec = field_spec(model, name)
        allowed = ", ".join(map(str, spec.choices)) if spec.choices else spec.describe_bounds()
        rows.append(
            {
                "name": name,
                "type": _type_name(info.annotation),
                "default": "(required)" if info.is_required() else spec.default,
                "allowed": allowed,
                "description": spec.description,
            }
        )
    return rows


def _type_name(annotation: Any) -> str:
    """A short, readable type: int, float, text, one of (...), list of X, X or null."""
    base, _ = _unwrap(annotation)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin is typing.Literal:
        return "choice"
    if origin in (list, tuple):
        return "list of " + _type_name(_element_type(base))
    if origin is dict:
        return "mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if base is str:
        return "text"
    if base is Any:
        return "any"
    return getattr(base, "__name__", str(base))


DEFAULT_LAYER_COUNT = 8
"""A model deeper than 12 layers is shown at this many evenly spaced layers unless layers are named."""


def default_layers(n_layers: int) -> list[int]:
    """The layers an analysis uses when none are named: all of a model with up to 12, else
    :data:`DEFAULT_LAYER_COUNT` evenly spaced ones from the first to the last."""
    if n_layers <= 12:
        return list(range(n_layers))
    step = (n_layers - 1) / (DEFAULT_LAYER_COUNT - 1)
    return sorted({int(round(k * step)) for k in range(DEFAULT_LAYER_COUNT)})
