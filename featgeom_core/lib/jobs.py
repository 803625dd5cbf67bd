"""LIB as jobs: ``lib.train_modadd`` and ``lib.train_digits`` (the models, stored) and ``lib.graph``
(interaction graphs in several bases, their ablations and modules' inputs, stored).

A graph job names its checkpoint: ``trained`` (our own model, trained with the job's train params
on first use and stored under the train job's key, so it is trained once), ``job:<id>`` (a finished
train job), ``upload:<sha256>`` (a file the page saved under ``<cache>/uploads/``) or a path. Files
are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from pydantic import Field, field_validator

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.jobs.protocol import JobKind, JobOutput, Report, StoreEntry, register
from featgeom_core.lib.ablation import ablation_context, bisect_layer, kept_schedule, node_ablation_curve
from featgeom_core.lib.basis import BasisKind
from featgeom_core.lib.checkpoints import read_state_dict
from featgeom_core.lib.digits import DigitsTrainParams, digits_data, load_digits_mlp, train_digits
from featgeom_core.lib.graph import InteractionGraph, build_graph
from featgeom_core.lib.modadd import ModAddTrainParams, load_modular_addition, modular_addition_data, train_modular_addition
from featgeom_core.lib.params import AblationParams, GraphParams
from featgeom_core.models.ids import existing_path, model_id_type
from featgeom_core.params import Params
from featgeom_core.store import Store, result_key

UPLOAD_PREFIX = "upload:"
JOB_PREFIX = "job:"


def uploads_dir(store: Store | None = None) -> Path:
    """Where the page keeps uploaded checkpoints, by content hash."""
    return (store or Store()).root / "uploads"


def store_upload(content: bytes, store: Store | None = None) -> str:
    """Keep an uploaded checkpoint by content hash and return its reference ``upload:<sha256>``;
    it must already read as a plain state dict of tensors (``weights_only=True``), else DataError."""
    read_state_dict(content)
    digest = hashlib.sha256(content).hexdigest()
    directory = uploads_dir(store)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{digest}.pt"
    if not target.exists():
        temporary = directory / f".{digest}.tmp"
        temporary.write_bytes(content)
        temporary.replace(target)
    return UPLOAD_PREFIX + digest


@dataclass
class TrainedModel:
    """A trained model's state dict (float32 arrays), which model it is, and its training history."""

    model: str
    state: dict[str, np.ndarray]
    history: dict[str, list[float]]
    params: dict[str, Any]

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {f"state/{k}": v for k, v in self.state.items()}, {"model": self.model, "history": self.history, "params": self.params}

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "TrainedModel":
        state = {k[len("state/"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("state/")}
        return cls(str(meta["model"]), state, dict(meta["history"]), dict(meta["params"]))

    def summary(self) -> dict[str, Any]:
        accuracy = self.history.get("test_accuracy", [])
        return {"model": self.model, "epochs": int(self.history["epoch"][-1]) + 1 if self.history.get("epoch") else 0,
                "test_accuracy": round(accuracy[-1], 4) if accuracy else None}

    def torch_state(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}


def run_train_modadd(params: ModAddTrainParams, report: Report) -> JobOutput:
    """Train the modular-addition transformer with the peer's recipe."""
    model, history = train_modular_addition(params, report)
    return JobOutput(TrainedModel("modadd", {k: v.numpy() for k, v in model.tl_state_dict().items()}, history, params.normalised()))


def run_train_digits(params: DigitsTrainParams, report: Report) -> JobOutput:
    """Train the digits MLP."""
    model, _, history = train_digits(params, report)
    return JobOutput(TrainedModel("digits", {k: v.detach().numpy() for k, v in model.state_dict().items()}, history, params.normalised()))


OWN_MODELS = ("modadd", "digits")
LibModelId = model_id_type(OWN_MODELS)


class LanguageBlockParams(Params):
    """Which block of a language model, and how many tokens its graph sees."""

    layer: int = Field(3, ge=0, le=1000, description="the block whose attention and MLP node layers make the graph (0 = the first)")
    windows: int = Field(64, ge=2, le=100_000, description="token windows for the bases and edges (as many again, held out, for the ablations)")
    tokens: int = Field(32, ge=2, le=512, description="tokens per window (consecutive tokens of the packaged text, no padding)")
    text_seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the texts drawn from the packaged news, reviews and code")


class LibGraphJob(Params):
    """Interaction graphs of one model in several bases, with their ablations."""

    model: LibModelId = Field("modadd",
                       description="modadd (the modular-addition transformer), digits (the digits MLP), or a language model id "
                                   "from the model registry (minilm offline, a hub id on a networked machine, a checkpoint directory)")
    language: LanguageBlockParams = Field(default_factory=LanguageBlockParams, description="the block and tokens, for a language model")
    checkpoint: str = Field("trained", min_length=1, max_length=500,
                            description="trained (ours, trained on first use), job:<train job id>, upload:<sha256> or a file path")
    bases: list[BasisKind] = Field(default_factory=lambda: ["lib", "pca"], min_length=1, max_length=4, description="bases to build, side by side")
    graph: GraphParams = Field(default_factory=GraphParams, description="how each graph is built (its basis field is replaced by each of bases)")
    ablation: AblationParams = Field(default_factory=AblationParams, description="node ablation curves and the edge bisect")
    modadd_train: ModAddTrainParams = Field(default_factory=ModAddTrainParams, description="the recipe for checkpoint 'trained' (modular addition)")
    digits_train: DigitsTrainParams = Field(default_factory=DigitsTrainParams, description="the recipe for checkpoint 'trained' (digits)")
    max_samples: int | None = Field(None, ge=2, le=10_000_000, description="cap on the samples the bases see (default: the whole training split)")

    @property
    def is_language_model(self) -> bool:
        return self.model not in OWN_MODELS

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_reference(cls, value: str) -> str:
        value = value.strip()
        if value == "trained" or value.startswith(JOB_PREFIX):
            return value
        if value.startswith(UPLOAD_PREFIX):
            digest = value[len(UPLOAD_PREFIX):]
            if not (digest and all(c in "0123456789abcdef" for c in digest)):
                raise ValueError(f"checkpoint {value[:80]!r}: an upload is named by the hex digest of its content")
            return value
        path = existing_path(value)
        if path is None or not path.is_file():
            raise ValueError(f"checkpoint {value[:80]!r} is not 'trained', 'job:<training job id>', 'upload:<sha256>' "
                             f"or an existing file")
        return value

    @field_validator("bases")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise InvalidParameter(f"bases: each basis once, got {value}")
        return value


@dataclass
class BasisResult:
    """One basis's graph, node-ablation curves ({layer: {kept: score}}) and bisect traces."""

    graph: InteractionGraph
    node_curves: dict[str, dict[int, float]] = field(default_factory=dict)
    bisect: dict[str, dict[str, Any]] = field(default_factory=dict)
    fourier: list[list[dict[str, float]]] = field(default_factory=list)

    def edges_required(self) -> dict[str, int]:
        """{input node layer: edges the bisect kept}."""
        return {layer: int(trace["required"]) for layer, trace in self.bisect.items()}

    def eps(self) -> list[float] | None:
        """Per layer pair, the smallest edge the bisect kept (None without a bisect)."""
        if not self.bisect:
            return None
        return [float(self.bisect[layer]["smallest_kept_edge"]) or 1e-300 for layer in self.graph.node_layers[:-1]]


@dataclass
class LibGraphResult:
    """Graphs of one model in several bases, with the model's unablated score."""

    model: str
    checkpoint: str
    metric: str
    base_score: float
    results: dict[str, BasisResult]
    timings: dict[str, float]

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        bases: dict[str, Any] = {}
        for kind, r in self.results.items():
            arrays.update(r.graph.to_arrays(prefix=f"{kind}/"))
            bases[kind] = {"graph": r.graph.meta(), "node_curves": {layer: {str(k): v for k, v in curve.items()} for layer, curve in r.node_curves.items()},
                           "bisect": r.bisect, "fourier": r.fourier}
        return arrays, {"model": self.model, "checkpoint": self.checkpoint, "metric": self.metric, "base_score": self.base_score,
                        "bases": bases, "timings": self.timings}

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "LibGraphResult":
        results = {}
        for kind, b in meta["bases"].items():
            graph = InteractionGraph.from_arrays(arrays, b["graph"], prefix=f"{kind}/")
            curves = {layer: {int(k): float(v) for k, v in curve.items()} for layer, curve in b["node_curves"].items()}
            results[kind] = BasisResult(graph, curves, dict(b["bisect"]), list(b.get("fourier", [])))
        return cls(str(meta["model"]), str(meta["checkpoint"]), str(meta["metric"]), float(meta["base_score"]), results, dict(meta["timings"]))

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "base_score": round(self.base_score, 4),
                **{f"{kind} dims": r.graph.dims() for kind, r in self.results.items()},
                **{f"{kind} edges required": list(r.edges_required().values()) for kind, r in self.results.items()}}


@dataclass
class LoadedModel:
    """A model with its training split (for the bases) and test split (for ablations)."""

    model: Any
    basis_inputs: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor | None
    modulus: int | None
    trained: StoreEntry | None = None


def _trained(kind: JobKind, params: Params, report: Report, store: Store) -> tuple[TrainedModel, StoreEntry | None]:
    normalised = params.normalised()
    key = result_key(kind.PREFIX + kind.name, normalised, {})
    cached = store.get(key, stale_as_missing=True)
    if cached is not None:
        report(1.0, "using the stored trained model")
        return TrainedModel.from_store(cached.arrays, cached.meta), None
    output = kind.run(params, report)
    arrays, meta = output.result.to_store()
    return output.result, (key, arrays, meta)


def _state_from_checkpoint(checkpoint: str, store: Store) -> tuple[str, Any]:
    """('state', tensors) or ('path', Path) for a non-'trained' checkpoint reference."""
    from featgeom_core import jobs

    if checkpoint.startswith(JOB_PREFIX):
        job_id = checkpoint[len(JOB_PREFIX):]
        record = jobs.status(job_id, store)
        if record.kind not in ("lib.train_modadd", "lib.train_digits") or record.status != "done":
            raise DataError(f"job {job_id} is not a finished LIB training job (it is {record.kind}, {record.status})")
        return "state", jobs.load_result(job_id, store).torch_state()
    if checkpoint.startswith(UPLOAD_PREFIX):
        digest = checkpoint[len(UPLOAD_PREFIX):]
        if not digest.isalnum():
            raise InvalidParameter(f"checkpoint {checkpoint!r}: an upload is named by its hex digest")
        return "path", uploads_dir(store) / f"{digest}.pt"
    return "path", Path(checkpoint).expanduser()


def load_target(params: LibGraphJob, report: Report, store: Store | None = None) -> LoadedModel:
    """The model the job names, with its data; trains and stores ours on first use."""
    store = store or Store()
    if params.is_language_model:
        return load_language_block(params, report)
    trained_entry = None
    if params.checkpoint == "trained":
        kind = LIB_TRAIN_MODADD if params.model == "modadd" else LIB_TRAIN_DIGITS
        train_params = params.modadd_train if params.model == "modadd" else params.digits_train
        trained, trained_entry = _trained(kind, train_params, report, store)
        if trained.model != params.model:
            raise DataError(f"the stored model is a {trained.model} model, not {params.model}")
        state = trained.torch_state()
    else:
        how, value = _state_from_checkpoint(params.checkpoint, store)
        state = value if how == "state" else read_state_dict(value)
    if params.model == "modadd":
        model = load_modular_addition(state)
        data = modular_addition_data(model.config.modulus, params.modadd_train.frac_train, params.modadd_train.seed)
        return LoadedModel(model, data.train_tokens, data.test_tokens, data.test_labels, model.config.modulus, trained_entry)
    model = load_digits_mlp(state)
    data = digits_data(params.digits_train.test_fraction, params.digits_train.seed)
    return LoadedModel(model, data.train_inputs, data.test_inputs, data.test_labels, None, trained_entry)


def load_language_block(params: LibGraphJob, report: Report) -> LoadedModel:
    """A language model's block from the model registry, with token windows of the packaged text:
    the first half for the bases and edges, the second for the ablations (no labels: mse)."""
    from featgeom_core.data.registry import corpus_texts
    from featgeom_core.lib.language import LanguageBlock, token_windows
    from featgeom_core.models import shared_model

    if params.checkpoint != "trained":
        raise InvalidParameter(f"checkpoint {params.checkpoint!r}: a language model is named by its id in 'model'; leave checkpoint as 'trained'")
    report(0.0, f"loading {params.model}")
    loaded = shared_model(params.model)
    if loaded.plain_model is None:
        raise InvalidParameter(f"{params.model!r} has no Hugging Face module to read blocks from; LIB's block view needs one (e.g. minilm)")
    language = params.language
    block = LanguageBlock(loaded.plain_model, language.layer, loaded.name)
    per_source = max(20, (2 * language.windows * language.tokens) // 60)  # texts of each source; a packaged text is ~60 tokens or more
    texts = corpus_texts(per_source, language.text_seed)
    order = np.random.default_rng(language.text_seed).permutation(len(texts))  # news, reviews and code in both halves
    tokens = token_windows(loaded.tokenizer, [texts[i] for i in order], 2 * language.windows, language.tokens)
    report(1.0, f"{params.model} block {language.layer}: {language.windows} windows of {language.tokens} tokens")
    return LoadedModel(block, tokens[: language.windows], tokens[language.windows:], None, None)


def run_graph(params: LibGraphJob, report: Report) -> JobOutput:
    """Load (or train) the model, then per basis: the graph, node-ablation curves, the bisect."""
    from featgeom_core.lib.fourier import fourier_labels

    timings: dict[str, float] = {}
    start = time.perf_counter()
    target = load_target(params, lambda f, m: report(0.1 * f, f"model: {m}"))
    timings["model"] = time.perf_counter() - start
    inputs = target.basis_inputs if params.max_samples is None else target.basis_inputs[: params.max_samples]
    results: dict[str, BasisResult] = {}
    context = None
    n = len(params.bases)
    for b, kind in enumerate(params.bases):
        span = lambda f, lo, hi, b=b: 0.1 + 0.9 * (b + lo + (hi - lo) * f) / n  # noqa: E731
        start = time.perf_counter()
        graph_params = params.graph.model_copy(update={"basis": kind})
        graph = build_graph(target.model, inputs, graph_params, lambda f, m, kind=kind: report(span(f, 0.0, 0.6), f"{kind}: {m}"))
        timings[f"{kind} build"] = time.perf_counter() - start
        result = BasisResult(graph)
        start = time.perf_counter()
        if context is None:
            context = ablation_context(target.model, graph, target.test_inputs, target.test_labels, params.ablation.metric, params.ablation.dtype)
        layers = graph.node_layers
        if params.ablation.nodes:
            for k, layer in enumerate(layers[:-1]):
                report(span(k / len(layers), 0.6, 0.75), f"{kind}: node ablation of {layer}")
                result.node_curves[layer] = node_ablation_curve(
                    context, graph, k, kept_schedule(graph.bases[k].orig_dim, params.ablation.exp_base, params.ablation.every_below))
        if params.ablation.edges:
            for k, layer in enumerate(layers[:-1]):
                trace = bisect_layer(context, graph, k, params.ablation.tolerance,
                                     lambda f, m, k=k: report(span((k + f) / (len(layers) - 1), 0.75, 1.0), f"{kind}: bisect {m}"))
                result.bisect[layer] = {"required": trace.required, "total": trace.total, "smallest_kept_edge": trace.smallest_kept_edge,
                                        "tried": [[kept, value] for kept, value in trace.tried.items()]}
        timings[f"{kind} ablation"] = time.perf_counter() - start
        if target.modulus is not None:
            result.fourier = fourier_labels(target.model, graph, target.modulus)
        results[kind] = result
    report(1.0, "done")
    assert context is not None
    if params.is_language_model:
        description = f"block {params.language.layer}, {params.language.windows} x {params.language.tokens} tokens"
    elif params.checkpoint != "trained":
        description = params.checkpoint
    else:
        description = f"trained here (seed {(params.modadd_train if params.model == 'modadd' else params.digits_train).seed})"
    output = LibGraphResult(params.model, description, context.metric, context.base, results, timings)
    return JobOutput(output, extra=(target.trained,) if target.trained else ())


def _train_link(model: str):
    def link(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
        return {"net": model, "source": "job", "train": job_id}
    return link


LIB_TRAIN_MODADD = register(JobKind(
    "lib.train_modadd", "train the modular-addition transformer (the peer's recipe; minutes to tens of minutes on a CPU)", ModAddTrainParams,
    run_train_modadd, TrainedModel, page="pages/interaction_graph.py", wants_gpu=True, link=_train_link("modadd"),
    example={"model": {"modulus": 7, "d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": 16}, "epochs": 3},
))
LIB_TRAIN_DIGITS = register(JobKind(
    "lib.train_digits", "train the digits MLP (seconds)", DigitsTrainParams, run_train_digits, TrainedModel,
    page="pages/interaction_graph.py", link=_train_link("digits"), example={"hidden": 8, "depth": 1, "epochs": 3},
))
LIB_GRAPH = register(JobKind(
    "lib.graph", "interaction graphs (LIB, PCA, ...) of a model, node ablation curves and the edge-ablation bisect", LibGraphJob,
    run_graph, LibGraphResult, page="pages/interaction_graph.py", wants_gpu=True,
    example={"model": "digits", "digits_train": {"hidden": 8, "depth": 1, "epochs": 20}, "max_samples": 200},
))
