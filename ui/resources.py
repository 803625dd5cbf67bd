"""Cached heavy objects shared across reruns and sessions (models, feature sets, the store)."""

from __future__ import annotations

import streamlit as st

from featgeom_core.config import cache_dir
from featgeom_core.data import FeatureSet, load_feature_set
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


def cached_store() -> Store:
    """The on-disk result store at FEATGEOM_CACHE_DIR (default cache/), one per directory: a store
    cached once per process kept serving the first directory after the variable changed."""
    return _store_at(str(cache_dir()))


@st.cache_resource
def _store_at(root: str) -> Store:
    return Store(root)
