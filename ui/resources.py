"""Cached heavy objects shared across reruns and sessions (models, feature sets, the store)."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from featgeom_core.data import FeatureSet, load_feature_set
from featgeom_core.energy import JointResult, MatchedReference, joint_optimize, matched_reference
from featgeom_core.models import LoadedModel, load_model
from featgeom_core.store import Store


@st.cache_resource(show_spinner="Loading model…", max_entries=3)
def cached_model(model_id: str) -> LoadedModel:
    """The loaded model for an id (one copy per server process)."""
    return load_model(model_id)


@st.cache_resource(show_spinner="Loading feature set…", max_entries=16)
def cached_feature_set(name: str, model_id: str) -> FeatureSet:
    """A named feature set; token-level sets depend on the model's tokenizer, hence the model id."""
    return load_feature_set(name, tokenizer=cached_model(model_id).tokenizer)


@st.cache_resource
def cached_store() -> Store:
    """The on-disk result store at FEATGEOM_CACHE_DIR (default cache/)."""
    return Store()


@st.cache_data(max_entries=32, show_spinner="fitting abstract features…")
def cached_joint_fit(target: np.ndarray, **settings: Any) -> JointResult:
    """``joint_optimize`` memoised on its inputs, so changing only the re-optimisation settings
    does not refit."""
    return joint_optimize(target, **settings)


@st.cache_data(max_entries=32, show_spinner="minimising the reference energy…")
def cached_reference(target: np.ndarray, **settings: Any) -> MatchedReference:
    """``matched_reference`` memoised on its inputs."""
    return matched_reference(target, **settings)
