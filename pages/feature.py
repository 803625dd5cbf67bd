"""Feature: one direction of any kind (probe direction, dictionary atom, LIB direction, Hessian
feature) with its top contexts, histogram, a box to read it on your text, Prev/Next, and the
nearest directions of the other kinds. The URL names the feature (``?kind=&model=&layer=&index=``)."""

from __future__ import annotations

import streamlit as st

from featgeom_core.data import list_feature_sets
from featgeom_core.errors import FeatgeomError
from featgeom_core.features.ref import FEATURE_KINDS, KIND_TITLES, FeatureRef, parse_ref
from featgeom_core.models import DEFAULT_MODEL_ID, list_models
from ui.errors import render_safely
from ui.feature_view import feature_link, load_feature, show_feature


def _picker() -> None:
    """Without a feature in the URL: open a probe direction here, or a feature from its page."""
    st.title("Feature")
    st.caption(
        "Every page that makes directions links here: the Feature geometry page (probe directions), the Dictionary "
        "explorer (atoms), the Interaction graph's node panel (LIB directions) and the Hessian page (features)."
    )
    models = [m.model_id for m in list_models() if m.available_offline]
    a, b, c, d, e = st.columns(5)
    model = a.selectbox("Model", models, index=models.index(DEFAULT_MODEL_ID) if DEFAULT_MODEL_ID in models else 0, key="fp_model")
    features = b.selectbox("Feature set", [f.name for f in list_feature_sets()], key="fp_features")
    hook = c.selectbox("Hook", ["resid_post", "mlp_post"], key="fp_hook")
    layer = d.number_input("Layer", min_value=0, max_value=100, value=1, key="fp_layer")
    index = e.number_input("Class", min_value=0, max_value=1000, value=0, key="fp_index")
    ref = FeatureRef("probe", int(index), model=model, layer=str(int(layer)), features=features, hook=hook)
    feature_link(ref, "Open this probe direction")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _first_token_toggle() -> None:
    st.toggle(
        "Leave out each text's first token",
        value=True,
        key="feature_skip_first",
        help="A causal model parks attention on a sequence's first token, whose activations run hundreds of times larger "
        "than any other's (SmolLM2's probe logits: 1,400 there against 60 elsewhere): ranked, it fills every context.",
    )


def render() -> None:
    if not st.query_params.get("kind"):
        _picker()
        return
    try:
        ref = parse_ref(st.query_params.to_dict())
    except FeatgeomError as exc:
        st.error(str(exc))
        _picker()
        return
    skip_first = bool(st.session_state.get("feature_skip_first", True))  # the toggle is drawn below the title
    try:
        data, reader, panel = load_feature(ref, skip_first)
    except FeatgeomError as exc:
        st.title(f"{_capital(KIND_TITLES[ref.kind])} {ref.index}")
        st.error(str(exc))
        return
    if data is None:
        st.title(f"{_capital(KIND_TITLES[ref.kind])} {ref.index}")
        if panel is not None:
            panel()
        return
    show_feature(data, reader, panel, controls=_first_token_toggle)


assert set(FEATURE_KINDS) == set(KIND_TITLES)
render_safely(render)
