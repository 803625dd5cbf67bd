"""The sidebar's shared choices: session state, mirrored in the URL so a link reproduces a view."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from featgeom_core.data import FeatureSet, feature_set_from_csv, list_feature_sets
from featgeom_core.errors import FeatgeomError
from featgeom_core.models import DEFAULT_MODEL_ID, LoadedModel, list_models
from featgeom_core.params import default_layers, field_spec
from featgeom_core.probing import GeometryParams
from ui.resources import cached_feature_set, cached_model

UPLOADED_PREFIX = "upload:"
SIDEBAR_KEYS = frozenset({"model", "features", "layers", "hook"})
HOOKS = field_spec(GeometryParams, "hook").choices
DEFAULT_FEATURE_SET = "world_country"  # encoded by both offline models (see README, Feature sets); athlete_sport is not


@dataclass
class Selection:
    """What the sidebar selected; ``model``/``feature_set`` are None when they failed to load."""

    model_id: str
    model: LoadedModel | None
    layers: list[int]
    feature_set_name: str
    feature_set: FeatureSet | None
    hook: str
    error: str | None = None
    background: bool = False

    def fingerprints(self) -> dict[str, str]:
        """The model's and the feature set's fingerprints (what a report records)."""
        found = {"model": self.model_id}
        if self.model is not None:
            found["model fingerprint"] = self.model.fingerprint
        found["feature set"] = self.feature_set_name
        if self.feature_set is not None:
            found["feature set fingerprint"] = self.feature_set.fingerprint()
        return found


def set_query(**values: str) -> None:
    """Mirror choices in the URL, remembering what we wrote so our own writes are not read back as
    navigation. Only changed values are written: a write replaces the browser's query string, and
    one sent while a page's URL-bound widgets are still registering drops their values."""
    changed = {key: value for key, value in values.items() if st.query_params.get(key) != value}
    if changed:
        st.query_params.update(changed)
    st.session_state["_last_query"] = dict(st.query_params.to_dict())


def _sync_from_url() -> None:
    """Seed the widgets from the URL on a session's first run, and whenever the URL changed
    under us (a shared link, or a link to a job's result): the URL reproduces the view."""
    current = st.query_params.to_dict()
    first = not st.session_state.get("_state_initialised")
    if not first and st.session_state.get("_last_query") == current:
        return
    st.session_state["_state_initialised"] = True
    st.session_state["_last_query"] = current
    defaults = {"model": DEFAULT_MODEL_ID, "features": DEFAULT_FEATURE_SET, "hook": "mlp_post"} if first else {}
    for url_key, state_key in (("model", "model_id"), ("features", "feature_set_name"), ("hook", "hook")):
        value = current.get(url_key, "").strip() or defaults.get(url_key)  # a blank value is a missing one
        if value:
            st.session_state[state_key] = value
    if st.session_state.get("hook") not in HOOKS:
        if st.session_state.get("hook"):
            link_value_unusable("hook", st.session_state["hook"], f"not one of {', '.join(HOOKS)}")
        st.session_state["hook"] = "mlp_post"
    if current.get("model"):
        st.session_state["custom_model"] = ""
    try:
        st.session_state["_url_layers"] = [int(x) for x in current.get("layers", "").split(",") if x.strip()]
    except ValueError:
        link_value_unusable("layers", current["layers"], "not a comma-separated list of layer numbers")
        st.session_state["_url_layers"] = []
    for key, value in current.items():  # everything else is a page's: it adopts what it knows (adopt_url)
        if key not in SIDEBAR_KEYS:
            st.session_state[f"_url_{key}"] = value


def link_value_unusable(key: str, raw: str, reason: str, instead: str = "the default is shown instead") -> None:
    """Say, on the page, that a link's value was dropped and why."""
    shown = raw if len(raw) <= 60 else raw[:59] + "…"
    st.warning(f"The link's {key}={shown!r} is not usable ({reason}); {instead}.")


def note_if_clamped(key: str, clamped: Any, bounds: str) -> None:
    """After a numeric widget moved a link's value into its bounds: say so (no-op for other values)."""
    from_url: tuple[str, str] | None = st.session_state.get("_from_url", {}).pop(key, None)
    if from_url is not None and st.session_state.get(key) != clamped:
        link_value_unusable(*from_url, f"allowed: {bounds}", f"{clamped:g} is used instead")


def adopt_url(key: str, parse: Callable[[str], Any], state_key: str | None = None) -> None:
    """Move the URL's value for ``key`` (pending since the session started or the URL changed) into
    the widget state ``state_key`` (default ``key``), parsed; a value that does not parse is dropped
    with a warning naming it, so a hand-edited link cannot break the page."""
    raw = st.session_state.pop(f"_url_{key}", None)
    if raw is None:
        return
    try:
        st.session_state[state_key or key] = parse(raw)
    except (ValueError, TypeError, KeyError) as exc:
        link_value_unusable(key, raw, _reason(exc))
    else:
        st.session_state.setdefault("_from_url", {})[state_key or key] = (key, raw)


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "could not convert" in text or "invalid literal" in text:
        return "not a number"
    return text if len(text) <= 120 else text[:119] + "…"


def adopt_fields(fields: Mapping[str, Callable[[str], Any]]) -> None:
    """Before a page draws its widgets: adopt each URL value (keyed by the widget's key) into the
    widget state, parsed; see :func:`adopt_url`."""
    for key, parse in fields.items():
        adopt_url(key, parse)


def publish_fields(keys: Iterable[str]) -> None:
    """After a page drew its widgets: mirror their values in the URL (under the widget keys)."""
    values = {key: url_text(st.session_state[key]) for key in keys if st.session_state.get(key) is not None}
    set_query(**values)


def url_text(value: Any) -> str:
    """A widget value as URL text that the parsers below read back (lists comma-separated)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, (list, tuple)):
        return ",".join(url_text(item) for item in value)
    return str(value)


def keep_valid(key: str, options: Iterable[Any]) -> None:
    """Drop a select widget's state (one value or a list) that is not among ``options``: a value
    from a link to another dataset, which Streamlit would refuse with an exception."""
    from_url: tuple[str, str] | None = st.session_state.get("_from_url", {}).pop(key, None)
    if key not in st.session_state:
        return
    allowed = list(options)
    value = st.session_state[key]
    if isinstance(value, list):
        kept = [item for item in value if item in allowed]
        if kept != value:
            st.session_state[key] = kept
    elif value not in allowed:
        del st.session_state[key]
    else:
        return
    if from_url is not None:
        link_value_unusable(*from_url, "not among this page's options")


def flag(value: str) -> bool:
    """A URL parser for a toggle ("1"/"0", "true"/"false")."""
    lowered = value.strip().lower()
    if lowered not in {"1", "0", "true", "false"}:
        raise ValueError(f"{value!r} is not a flag")
    return lowered in {"1", "true"}


def list_of(parse: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """A URL parser for a comma-separated list, each item parsed by ``parse`` (an empty text is [])."""
    return lambda value: [parse(item) for item in value.split(",") if item.strip()]


def one_of(options: Any) -> Callable[[str], str]:
    """A URL parser that accepts only one of ``options``."""
    allowed = list(options)

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {allowed}")
        return value

    return parse


def sidebar() -> Selection:
    """Draw the shared sidebar and return the selection; never raises."""
    _sync_from_url()
    known = [m.model_id for m in list_models()]
    current_model = st.session_state["model_id"]
    options = known if current_model in known else known + [current_model]
    with st.sidebar:
        st.header("Model and data")
        st.selectbox("Model", options, key="model_id", help="A listed id, or type a local checkpoint directory / hub id below")
        custom = st.text_input("…or a local directory / hub id", key="custom_model", placeholder="EleutherAI/pythia-70m-deduped")
        model_id = custom.strip() or st.session_state["model_id"]
        model, error = None, None
        try:
            model = cached_model(model_id)
        except FeatgeomError as exc:
            error = str(exc)
        if error:
            st.error(error)
        n_layers = model.n_layers if model is not None else 1
        asked = st.session_state.pop("_url_layers", [])
        url_layers = [layer for layer in asked if 0 <= layer < n_layers]
        if model is not None and len(url_layers) < len(asked):
            link_value_unusable("layers", ",".join(map(str, asked)), f"this model has layers 0 to {n_layers - 1}")
        if url_layers:
            st.session_state["layers"] = url_layers
        st.session_state["layers"] = [layer for layer in st.session_state.get("layers", default_layers(n_layers)) if layer < n_layers] or (
            default_layers(n_layers)
        )
        st.multiselect("Layers", list(range(n_layers)), key="layers")
        st.radio("Activations", HOOKS, key="hook", horizontal=True, help=field_spec(GeometryParams, "hook").description)
        st.toggle(
            "Long runs as background jobs",
            key="background",
            help="Uncached computations run on the Dask backend (see Jobs) while you keep using the app",
        )
        feature_set_name, feature_set = _feature_set_picker(model_id if model is not None else None)
    layers = sorted(st.session_state["layers"])
    set_query(model=model_id, features=feature_set_name, layers=",".join(map(str, layers)), hook=st.session_state["hook"])
    return Selection(
        model_id, model, layers, feature_set_name, feature_set, st.session_state["hook"], error, bool(st.session_state.get("background"))
    )


def require_selection() -> Selection:
    """The sidebar's selection, for a page to read. Without one the page ran outside app.py
    (Streamlit's pages-directory mode, see ``rerun_through_app``): rerun through it."""
    if "selection" not in st.session_state:
        rerun_through_app()
    return st.session_state["selection"]


def rerun_through_app() -> None:
    """Leave Streamlit's legacy pages/-directory mode for the whole server and rerun this session.

    A server starts in that mode until ``st.navigation`` runs once, so the very first request of a
    fresh server that lands on ``/geometry`` runs the page file without app.py: no sidebar, no
    shared state, the link's settings lost. The rerun goes through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


SIDEBAR_STATE = ("model_id", "custom_model", "layers", "hook", "background", "feature_set_name")
"""The sidebar widgets' state keys whose values outlive a page that does not draw the sidebar."""


def kept_selection() -> Selection:
    """The sidebar's selection without drawing it (a page that reads no model or data): its
    choices are kept for the next page that draws it (a widget's state is dropped after a run that
    does not draw the widget, unless it is set again), nothing is loaded, the URL is not touched."""
    _sync_from_url()
    for key in SIDEBAR_STATE:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    model_id = str(st.session_state.get("custom_model") or "").strip() or st.session_state["model_id"]
    return Selection(
        model_id,
        None,
        sorted(st.session_state.get("layers", [])),
        st.session_state.get("feature_set_name", DEFAULT_FEATURE_SET),
        None,
        st.session_state["hook"],
        None,
        bool(st.session_state.get("background")),
    )


def shared_frame(show_sidebar: bool = True) -> Selection:
    """What every page shares: the sidebar (where the page reads it), its selection in session
    state, and upload errors repeated in the main area where they cannot be missed."""
    selection = sidebar() if show_sidebar else kept_selection()
    st.session_state["selection"] = selection
    if st.session_state.get("_upload_error"):
        st.error(st.session_state["_upload_error"])
    return selection


def _feature_set_picker(model_id: str | None) -> tuple[str, FeatureSet | None]:
    uploaded: dict[str, FeatureSet] = st.session_state.setdefault("uploaded_sets", {})
    names = [info.name for info in list_feature_sets()] + [f"{UPLOADED_PREFIX}{name}" for name in uploaded]
    if "_select_upload" in st.session_state:  # a widget's value can only be set before it is drawn
        st.session_state["feature_set_name"] = st.session_state.pop("_select_upload")
    if st.session_state.get("feature_set_name") not in names:
        if st.session_state.get("feature_set_name"):
            link_value_unusable("features", st.session_state["feature_set_name"], "not a feature set here")
        st.session_state["feature_set_name"] = DEFAULT_FEATURE_SET
    st.selectbox("Feature set", names, key="feature_set_name")
    with st.expander("Upload a CSV feature set"):
        st.caption("Columns: `text,label[,position]`; each label becomes a feature; position is a token index (-1 = last token).")
        upload = st.file_uploader("CSV file", type=["csv"], key="csv_upload")
        if upload is None:  # the file was removed: its error goes with it
            st.session_state.pop("_upload_error", None)
            st.session_state.pop("_last_upload_id", None)
        elif upload.file_id != st.session_state.get("_last_upload_id"):
            st.session_state["_last_upload_id"] = upload.file_id
            try:
                parsed = feature_set_from_csv(upload.getvalue(), name=upload.name)
            except FeatgeomError as exc:
                st.session_state["_upload_error"] = f"{upload.name}: {exc}"
            else:
                uploaded[upload.name] = parsed
                st.session_state.pop("_upload_error", None)
                st.session_state["_select_upload"] = f"{UPLOADED_PREFIX}{upload.name}"
                st.rerun()
        if st.session_state.get("_upload_error"):
            st.error(st.session_state["_upload_error"])
    name = st.session_state["feature_set_name"]
    if name.startswith(UPLOADED_PREFIX):
        return name, uploaded.get(name[len(UPLOADED_PREFIX) :])
    if model_id is None:
        return name, None
    try:
        return name, cached_feature_set(name, model_id)
    except FeatgeomError as exc:
        st.error(str(exc))
        return name, None
