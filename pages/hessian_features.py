"""Hessian features: k sparse directions of sample-level Hessians in one parameter block (the XOR
net, the toy model of superposition, or a language model's attention key weight), learned as a job
with a live loss curve, then read through their top-activating samples."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from featgeom_core import codec, jobs
from featgeom_core.errors import FeatgeomError
from featgeom_core.features.ref import FeatureRef
from featgeom_core.hessian.jobs import HESSIAN_FEATURES
from featgeom_core.hessian.language import block_choices
from featgeom_core.hessian.params import (
    HessianParams,
    LanguageFit,
    LanguageTarget,
    ToyFit,
    ToyTarget,
)
from featgeom_core.hessian.toys import TOYS
from ui import params as widgets
from ui.errors import render_safely
from ui.feature_view import feature_link
from ui.hessian_jobs import follow_with_losses
from ui.hessian_plots import (
    contexts_html,
    direction_figure,
    interference_figure,
    loss_figure,
    spectrum_figure,
)
from ui.jobs import adopt_job_from_url, open_finished
from ui.report import chart
from ui.resources import cached_model
from ui.state import adopt_url, require_selection, set_query

KIND = HESSIAN_FEATURES.name
MODELS = {
    **{name: spec.description for name, spec in TOYS.items()},
    "minilm": "MiniLM (offline encoder; D = MSE of its final hidden state at each token)",
    "smollm2": "SmolLM2-135M (offline causal LM; D = KL of its next-token distribution at each position)",
    "other": "another language model (id or directory)",
}
KEY_BLOCK = "(the attention key weight of the layer)"
URL_FIELDS = {"k": ("k", int), "lam": ("lambda_interference", float), "steps": ("steps", int)}


def _seed_from_job() -> None:
    """A link to a result (``?job=`` of this kind) starts the widgets at that run's settings (the
    link's own settings, if any, are applied after)."""
    job_id = st.session_state.pop("_url_job", None)
    try:
        record = jobs.status(job_id) if job_id else None
    except FeatgeomError:
        return  # the job area says the job does not exist
    if record is None or record.kind != KIND:
        return
    target = HESSIAN_FEATURES.parse(record.params).target
    model = target.model
    st.session_state["hx_model"] = model if model in MODELS else "other"
    if model not in MODELS:
        st.session_state["hx_custom"] = model
    if isinstance(target, ToyTarget):
        st.session_state["hx_toy_model"] = model
        st.session_state["hx_toy_block"] = list(target.block_names())
    else:
        st.session_state["hx_layer"] = target.layer
        st.session_state["hx_block_text"] = ",".join(target.block)
    for field in ("k", "lambda_interference", "steps"):
        st.session_state[f"hx_{field}"] = getattr(target.fit, field)


def _checked_url_values() -> None:
    """The URL's model and fit settings into the widgets; a value the params refuse is a clear
    message (and the default is used), never a traceback."""
    _seed_from_job()
    raw_model = st.session_state.pop("_url_hmodel", None)
    if raw_model is not None:
        st.session_state["hx_model"] = raw_model if raw_model in MODELS else "other"
        if raw_model not in MODELS:
            st.session_state["hx_custom"] = raw_model
    for url_key, (field, parse) in URL_FIELDS.items():
        raw = st.session_state.pop(f"_url_{url_key}", None)
        if raw is None:
            continue
        try:
            value = parse(raw)
            HessianParams.parse({field: value})
        except (ValueError, FeatgeomError) as exc:
            st.error(f"The link's {url_key}={raw!r} is not usable ({exc}); the default is used instead.")
            continue
        st.session_state[f"hx_{field}"] = value
    adopt_url("layer", int, "hx_layer")
    adopt_url("block", str, "hx_block_text")


def _toy_block(model: str) -> tuple[list[str], int]:
    spec = TOYS[model]
    names, default = tuple(spec.parameters), spec.default_block
    text = st.session_state.pop("hx_block_text", None)
    if st.session_state.get("hx_toy_model") != model:  # a new toy: its default block
        st.session_state["hx_toy_block"] = list(default)
        st.session_state["hx_toy_model"] = model
    wanted = [part.strip() for part in (text or "").split(",") if part.strip()]
    if wanted and all(name in names for name in wanted):
        st.session_state["hx_toy_block"] = wanted
    elif wanted:
        st.error(f"The link's block {text!r} is not made of the {model} toy's parameters ({', '.join(names)}); using its default block.")
    chosen = st.multiselect(
        "Parameter block", list(names), key="hx_toy_block", help="the parameters whose Hessian is decomposed (concatenated)"
    )
    return chosen, spec.block_size(chosen)


def _language_block(model_id: str) -> tuple[str, int]:
    loaded = cached_model(model_id)
    if loaded.plain_model is None:
        raise FeatgeomError(
            f"{model_id!r} is a TransformerLens-native model with no Hugging Face module to differentiate; choose minilm, "
            f"a local Hugging Face checkpoint directory or a hub id"
        )
    c1, c2 = st.columns([1, 3])
    layer = widgets.number_input(LanguageTarget, "layer", "Layer", "hx_layer", container=c1, max_value=loaded.n_layers - 1)
    names = block_choices(loaded.plain_model)
    text = st.session_state.pop("hx_block_text", None)
    if text is not None:
        st.session_state["hx_lm_block"] = text if text in names else KEY_BLOCK
        if text and text not in names:
            st.error(f"The link's block {text!r} is not a parameter of {model_id}; using the attention key weight of the layer.")
    block = c2.selectbox(
        "Parameter block",
        [KEY_BLOCK] + names,
        key="hx_lm_block",
        help="any parameter of the checkpoint; by default the attention key weight W_K of the chosen layer "
        "(a causal LM's k_proj: n_kv_heads x head_dim rows under grouped-query attention, e.g. SmolLM2's 192 x 576)",
    )
    return ("" if block == KEY_BLOCK else block), int(layer)


def settings() -> dict | None:
    """The job's params from the widgets (model, block, k, λ, steps in the URL); None when a
    choice is not complete."""
    _checked_url_values()
    c1, c2 = st.columns([1, 2])
    choice = c1.selectbox("Model", list(MODELS), format_func=lambda m: f"{m}: {MODELS[m]}", key="hx_model")
    model = choice
    if choice == "other":
        model = c2.text_input(
            "Language model: local checkpoint directory or hub id", key="hx_custom", placeholder="EleutherAI/pythia-70m-deduped"
        ).strip()
        if not model:
            st.info("Type a model id or directory.")
            return None
    params: dict = {"kind": "language" if model not in TOYS else "toy", "model": model}
    language = model not in TOYS
    fit_params = LanguageFit if language else ToyFit
    if language:
        try:
            block, layer = _language_block(model)
        except FeatgeomError as exc:
            st.error(str(exc))
            return None
        params.update(block=[block] if block else [], layer=layer)
        size_limit = None
    else:
        names, size_limit = _toy_block(model)
        if not names:
            st.info("Choose at least one parameter for the block.")
            return None
        params["block"] = names
    c1, c2, c3 = st.columns(3)
    k = widgets.number_input(fit_params, "k", "Features k", "hx_k", container=c1, max_value=size_limit)
    lam = widgets.number_input(HessianParams, "lambda_interference", "λ (interference weight)", "hx_lambda_interference", container=c2)
    steps = widgets.number_input(HessianParams, "steps", "Steps", "hx_steps", container=c3)
    fit = {"k": int(k), "lambda_interference": float(lam), "steps": int(steps)}
    with st.expander("More settings"):
        a, b, c, d = st.columns(4)
        fit["learning_rate"] = float(widgets.number_input(HessianParams, "learning_rate", "Learning rate", "hx_lr", container=a))
        fit["restarts"] = int(widgets.number_input(fit_params, "restarts", "Starts", "hx_restarts", container=b))
        fit["batch_size"] = int(widgets.number_input(fit_params, "batch_size", "Samples (texts) per step", "hx_batch", container=c))
        fit["seed"] = int(widgets.number_input(HessianParams, "seed", "Seed", "hx_seed", container=d))
        if language:
            a, b, c = st.columns(3)
            params["n_texts"] = int(widgets.number_input(LanguageTarget, "n_texts", "Training texts", "hx_texts", container=a))
            params["max_tokens"] = int(
                widgets.number_input(LanguageTarget, "max_tokens", "Tokens per text at most", "hx_tokens", container=b)
            )
            params["heldout_texts"] = int(
                widgets.number_input(LanguageTarget, "heldout_texts", "Held-out texts", "hx_heldout", container=c)
            )
    params["fit"] = fit
    set_query(
        hmodel=model,
        k=str(int(k)),
        lam=f"{lam:g}",
        steps=str(int(steps)),
        **({"layer": str(params["layer"])} if language else {}),
        block=",".join(params["block"]),
    )
    if language:
        st.caption(
            "Every real token of the training texts is a sample (padding never is). With the defaults MiniLM's layer-4 W_K "
            "(147,456 numbers) takes about 3 minutes on a 2-core CPU. SmolLM2's (192 × 576; D = the KL of its next-token "
            "distribution) costs about 25 s a step of 2 texts × 16 tokens there, so its defaults take hours without a GPU: "
            "16 steps on 16 texts of 16 tokens took 10 minutes."
        )
    return {"target": params}


def _label(record: jobs.JobRecord) -> str:
    target = HESSIAN_FEATURES.parse(record.params).target
    block = ", ".join(target.block) or (f"W_K of layer {target.layer}" if isinstance(target, LanguageTarget) else "default block")
    return f"{target.model} · {block} · k {target.fit.k} · λ {target.fit.lambda_interference:g} ({record.job_id[:8]})"


def _u_npz(result) -> bytes:
    features = result.features
    return codec.arrays_npz(
        {
            "U": features.U.numpy(),
            "block": np.array(features.block),
            **{f"shape_{n}": np.array(s) for n, s in zip(features.block, features.block_shapes)},
        }
    )


def _curvatures_csv(result, which: str) -> str:
    values = result.curvatures(which)
    table = pd.DataFrame(values, columns=[f"feature_{j}" for j in range(values.shape[1])])
    table.insert(0, "sample", result.sample_labels(which))
    if result.is_language_model:
        tokens = result.heldout_tokens if which == "held-out" else result.train_tokens
        table.insert(1, "text", tokens.table["text"])
        table.insert(2, "position", tokens.table["position"])
    return table.to_csv(index_label="row")


def _top_csv(result, which: str, n: int, single: bool) -> str:
    rows = [row for j in range(result.features.k) for row in result.top_rows(j, n, which, single)]
    return pd.DataFrame([{**r, "input": json.dumps(r["input"])} if "input" in r else r for r in rows]).to_csv(index=False)


def show(job_id: str) -> None:
    """The result: losses, each feature's top samples, its spectrum, the interference matrix, the
    direction in its block's shape, downloads."""
    result = HESSIAN_FEATURES.load(job_id)
    features = result.features
    st.markdown(f"**{result.model}**: {result.description}")
    shapes = ", ".join(f"{name} ({' × '.join(map(str, shape))})" for name, shape in zip(features.block, features.block_shapes))
    st.caption(
        f"Job {job_id} · block {shapes}, {features.U.shape[1]:,} numbers · k = {features.k} · D = "
        f"{features.divergence} "
        f"· {features.steps_done} steps · {sum(result.timings.values()):.1f} s"
    )
    if features.stopped_reason:
        st.warning(f"The fit stopped early: {features.stopped_reason}")
    chart(st, loss_figure(list(range(1, features.steps_done + 1)), features.steep_loss, features.interference_loss), key="hx_losses")
    adopt_url("feature", int, "hx_feature")
    adopt_url("set", str, "hx_set")
    sets = result.sample_sets()
    if st.session_state.get("hx_set") not in sets:
        st.session_state["hx_set"] = sets[0]
    if st.session_state.get("hx_feature", 0) not in range(features.k):
        st.error(f"Feature {st.session_state.get('hx_feature')} does not exist in this result (k = {features.k}); showing feature 0.")
        st.session_state["hx_feature"] = 0
    c1, c2, c3, c4 = st.columns(4)
    which = c1.selectbox("Samples", sets, key="hx_set", help="a language model's features are read on held-out texts")
    feature = c2.selectbox("Feature", list(range(features.k)), key="hx_feature")
    n_top = c3.number_input("Top samples", 1, 50, 8, key="hx_top")
    single = c4.toggle(
        "Only one-input samples",
        key="hx_single",
        disabled=result.inputs is None,
        help="toys: only samples with exactly one non-zero input (the write-up's TMS table)",
    )
    set_query(job=job_id, feature=str(feature), set=which)
    single = bool(single and result.inputs is not None)
    rows = result.top_rows(int(feature), int(n_top), which, single)
    st.subheader(f"Feature {feature}: top {which} samples")
    feature_link(FeatureRef("hessian", int(feature), model=str(result.model) if result.is_language_model else "", job=job_id))
    if result.is_language_model:
        st.html(contexts_html(rows))
        with st.expander("Every feature's top tokens"):
            st.dataframe(
                pd.DataFrame(
                    [{"feature": j, **{f"#{r['rank']}": r["token"] for r in result.top_rows(j, 8, which)}} for j in range(features.k)]
                ),
                hide_index=True,
            )
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {"rank": r["rank"], "sample": r["sample"], "input": str(np.round(r["input"], 3).tolist()), "uᵀH(x)u": r["value"]}
                    for r in rows
                ]
            ),
            hide_index=True,
        )
    curvatures = result.curvatures(which)
    left, right = st.columns(2)
    chart(left, spectrum_figure(curvatures, int(feature), result.sample_labels(which)), key="hx_spectrum")
    chart(right, interference_figure(result.interference(which)), key="hx_interference")
    direction = {name: tensor.numpy() for name, tensor in features.direction(int(feature)).items()}
    chart(st, direction_figure(direction, f"Direction u of feature {feature} in the block's shape"), key="hx_direction")
    a, b, c = st.columns(3)
    a.download_button("U (NPZ)", _u_npz(result), "hessian_U.npz", "application/octet-stream", key="hx_dl_u")
    b.download_button(
        f"Per-sample curvatures, {which} (CSV)", _curvatures_csv(result, which), "hessian_curvatures.csv", "text/csv", key="hx_dl_curv"
    )
    c.download_button(
        "Top samples of every feature (CSV)",
        _top_csv(result, which, int(n_top), single),
        "hessian_top_samples.csv",
        "text/csv",
        key="hx_dl_top",
    )


def render() -> None:
    require_selection()
    st.title("Hessian features")
    st.caption(
        "Sparse eigendecomposition of sample-level Hessians: k unit directions u in a parameter block along which some samples' "
        "divergence curves steeply (uᵀH(x)u, by batched Jacobian-vector products, H never formed) and few samples curve steeply "
        "along two overlapping ones. A sample's activation of a feature is its curvature."
    )
    adopt_job_from_url(KIND, "hx_job")
    params = settings()
    if params is not None and st.button("Learn the features as a job", type="primary", key="hx_run"):
        st.session_state["hx_job"] = HESSIAN_FEATURES.submit(params).job_id
        set_query(job=st.session_state["hx_job"])
    open_finished(HESSIAN_FEATURES, "hx_job", _label)
    job_id = st.session_state.get("hx_job")
    if not job_id:
        st.info("Choose a model and block and learn the features: the XOR net takes seconds, MiniLM a few minutes.")
        return
    if follow_with_losses(job_id):
        show(job_id)


render_safely(render)
