"""Home: what featgeom does and what it is running on."""

from __future__ import annotations

import platform

import streamlit as st
import torch

from featgeom_core import __version__
from featgeom_core.config import resolve_device
from featgeom_core.jobs import backend_info
from ui.links import PAGES, link
from ui.resources import cached_store
from ui.state import require_selection

selection = require_selection()
st.title("featgeom")
st.markdown(
    "A lab for the **geometry of features** inside neural networks: probe feature directions "
    "from a model's activations, compare their pairwise similarity matrices (PSMs) against "
    "controls, fit them with energy-minimising abstract features and test how robust that "
    "geometry is to perturbation; measure how sparse a model's activations are, and read the "
    "dictionaries that code them."
)
st.markdown(
    "**Start with Findings**: each paper's headline claims beside what this lab measures, with the controls and a "
    "verdict, each linking to the view that shows it."
)
for page in PAGES[1:]:
    link(page.path, page.title)

st.subheader("In use")
model = selection.model
left, middle, right = st.columns(3)
left.metric("Model", selection.model_id)
if model is not None:
    left.caption(f"{model.n_layers} layers · d_model {model.d_model} · d_mlp {model.d_mlp}")
    for note in model.notes:
        left.caption(note)
middle.metric("Feature set", selection.feature_set_name)
if selection.feature_set is not None:
    middle.caption(f"{selection.feature_set.n_features} features · {selection.feature_set.n_examples:,} examples")
device = resolve_device("auto")
right.metric("Device", device.type.upper())
right.caption(torch.cuda.get_device_name(0) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads")
if selection.error:
    st.error(selection.error)

st.subheader("Backend")
info = backend_info()
if info.started:
    st.write(f"Jobs run on **{info.mode}**: {info.workers} workers, {info.threads} threads, {info.gpus:g} GPUs.")
else:
    st.write(
        f"Jobs run on **{info.mode}** ({'a local Dask cluster' if info.mode == 'local' else 'a Dask scheduler'}); it starts with "
        "the first job."
    )
    if st.button("Start the backend now"):
        backend_info(start=True)
        st.rerun()
link("pages/jobs.py", "Jobs")

store = cached_store()
st.subheader("Cache")
st.write(f"`{store.root}` holds **{store.size_bytes() / 1e6:,.1f} MB** of results.")
st.caption(f"featgeom {__version__} · torch {torch.__version__} · Python {platform.python_version()}")
