"""Widgets whose bounds, defaults, choices and help text come from a params model's fields, so a
limit is written once (in the model) and the page cannot drift from what the core accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st
from pydantic import BaseModel

from featgeom_core.params import field_spec
from ui.state import note_if_clamped


def _clamp(value: float, lowest: float | None, highest: float | None) -> float:
    if lowest is not None:
        value = max(value, lowest)
    if highest is not None:
        value = min(value, highest)
    return value


def number_input(
    model: type[BaseModel],
    field: str,
    label: str,
    key: str,
    *,
    container: Any = st,
    max_value: float | None = None,
    default: float | None = None,
    **kwargs: Any,
) -> Any:
    """A number input for ``model.field``; ``max_value`` may tighten (never widen) the model's
    upper bound with a data-dependent limit (e.g. dim below N)."""
    spec = field_spec(model, field)
    lowest, highest = spec.lowest(), spec.highest()
    if max_value is not None:
        highest = max_value if highest is None else min(highest, max_value)
    value = _clamp(spec.default if default is None else default, lowest, highest)
    current = st.session_state.get(key)
    if current is not None and _clamp(current, lowest, highest) != current:
        # a link's value out of bounds, or a data-dependent bound moved under the user's value:
        # restart the widget at the nearest allowed one
        note_if_clamped(key, _clamp(current, lowest, highest), spec.describe_bounds())
        del st.session_state[key]
        value = _clamp(current, lowest, highest)
    if spec.is_int:
        cast_int = lambda v: None if v is None else int(v)  # noqa: E731
        return container.number_input(
            label, cast_int(lowest), cast_int(highest), int(value), step=1, key=key, help=spec.description, **kwargs
        )
    cast = lambda v: None if v is None else float(v)  # noqa: E731
    return container.number_input(label, cast(lowest), cast(highest), float(value), format="%g", key=key, help=spec.description, **kwargs)


def slider(model: type[BaseModel], field: str, label: str, key: str, *, container: Any = st, **kwargs: Any) -> Any:
    """A slider over a bounded numeric field; a value in session state (e.g. from the URL) is
    clamped into the bounds first."""
    spec = field_spec(model, field)
    lowest, highest = spec.lowest(), spec.highest()
    if key in st.session_state:
        clamped = _clamp(float(st.session_state[key]), lowest, highest)
        note_if_clamped(key, clamped, spec.describe_bounds())
        st.session_state[key] = clamped
    else:
        st.session_state[key] = spec.default
    return container.slider(label, lowest, highest, key=key, help=spec.description, **kwargs)


def selectbox(model: type[BaseModel], field: str, label: str, key: str, *, container: Any = st, **kwargs: Any) -> Any:
    """A select box over a Literal field's choices, starting at the model's default."""
    spec = field_spec(model, field)
    options = list(spec.choices)
    index = options.index(spec.default) if spec.default in options else 0
    return container.selectbox(label, options, index=index, key=key, help=spec.description, **kwargs)


def multiselect(
    model: type[BaseModel], field: str, label: str, key: str, *, options: Sequence[Any] | None = None, container: Any = st, **kwargs: Any
) -> list[Any]:
    """A multiselect for a list field: over its Literal choices, or over ``options`` (a menu of
    values the page offers, filtered to the model's bounds); starts at the model's default."""
    spec = field_spec(model, field)
    menu = list(spec.choices) if options is None else [o for o in options if _within(spec, o)]
    default = [v for v in (spec.default or []) if v in menu]
    return container.multiselect(label, menu, default=default, key=key, help=spec.description, **kwargs)


def _within(spec: Any, value: Any) -> bool:
    lowest, highest = spec.lowest(), spec.highest()
    return (lowest is None or value >= lowest) and (highest is None or value <= highest)


def help_text(model: type[BaseModel], field: str) -> str:
    """A field's description, for widgets built by hand."""
    return field_spec(model, field).description
