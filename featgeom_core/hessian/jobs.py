"""The Hessian-feature analysis as a job: ``hessian.features`` learns k directions in a parameter
block of the XOR net, the toy model of superposition or a language model, and stores them with
every sample's activations (for a language model: every real token of the training texts, and
of held-out texts the features are read on).

Progress messages of the fit read ``step s/n: L_steep x, L_interference y``
(:func:`parse_loss_message`), so a page can draw the loss curve live from the job's progress.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
from pydantic import Field, field_validator, model_validator

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.hessian.fit import fit_hessian_features
from featgeom_core.hessian.params import HessianParams
from featgeom_core.hessian.reading import interference_matrix, single_input_samples, token_context, top_indices
from featgeom_core.hessian.result import HessianFeatures
from featgeom_core.jobs.protocol import JobKind, JobOutput, Report, register
from featgeom_core.models.ids import model_id_type
from featgeom_core.params import Params

TOYS: dict[str, str] = {"xor": "the XOR net (2 inputs, 2 GELU units, summed)", "tms": "the toy model of superposition (5 features, 2 dims)"}
HessianModelId = model_id_type(tuple(TOYS))
LANGUAGE_FIT: dict[str, Any] = {"k": 8, "steps": 300, "batch_size": 4, "restarts": 1, "init_iterations": 10, "curvature": "output_jvp"}
"""A language model's fit defaults: a few minutes for MiniLM's W_K on a 2-core CPU (fields given override them)."""
TRAINING, HELD_OUT = "training", "held-out"
LOSS_MESSAGE = re.compile(r"step (\d+)/(\d+): L_steep (\S+), L_interference (\S+?)(?:,|$|\s)")


class HessianJob(Params):
    """Hessian features of one model's parameter block."""

    model: HessianModelId = Field("xor",
                       description="xor (the XOR net), tms (the toy model of superposition), or a language model: minilm (offline), "
                                   "a local Hugging Face checkpoint directory or a hub id")
    block: str = Field("", max_length=4000,
                       description="parameter name(s) of the block, comma-separated; empty: the model's default (XOR: its weights and "
                                   "biases; TMS: W; a language model: the attention key weight of `layer`)")
    layer: int = Field(4, ge=0, le=255, description="language models: the layer whose attention key weight is the default block")
    model_seed: int = Field(0, ge=0, le=2**31 - 1, description="toys: the seed they are trained from (retrained until they solve their task)")
    n_texts: int = Field(200, ge=1, le=5000, description="language models: training texts from the packaged corpus (news, reviews, code)")
    heldout_texts: int = Field(100, ge=1, le=5000, description="language models: further texts of the corpus, not trained on, that the features are read on")
    max_tokens: int = Field(32, ge=4, le=512, description="language models: tokens per text at most (longer texts are cut); padding is never a sample")
    data_seed: int = Field(0, ge=0, le=2**31 - 1, description="language models: the seed of the corpus order the texts are taken from")
    fit: HessianParams = Field(default_factory=HessianParams,
                               description="the optimisation (k, lambda_interference, steps, ...); fields not given take the model's defaults "
                                           "(language models: k 8, 300 steps, 4 texts a step, 1 start, output_jvp curvature); positions: "
                                           "a language model's every token is a sample, a toy's every input")

    @model_validator(mode="before")
    @classmethod
    def _model_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        language = str(data.get("model", "xor")).strip() not in TOYS
        fit = data.get("fit")
        if isinstance(fit, HessianParams):
            fit = fit.model_dump()
        if fit is None or isinstance(fit, Mapping):
            data["fit"] = {**(LANGUAGE_FIT if language else {}), **(fit or {}), "positions": "each" if language else "sum"}
        return data

    @field_validator("block")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def is_language_model(self) -> bool:
        return self.model not in TOYS

    def block_names(self) -> tuple[str, ...]:
        """The block's parameter names; empty for the model's default."""
        return tuple(part.strip() for part in self.block.split(",") if part.strip())


@dataclass
class TokenSet:
    """The real tokens of some texts, one row per token (padding never appears): ``table`` columns
    ``text``, ``position``, ``offsets`` (n, 2), ``special``, ``token_ids`` (see
    :meth:`featgeom_core.hessian.language.TokenBatch.token_table`); ``strings``: each text's token
    strings; ``texts``: the texts (cut after their last token)."""

    table: dict[str, np.ndarray]
    strings: list[list[str]]
    texts: list[str]

    def __len__(self) -> int:
        return int(len(self.table["text"]))

    def token(self, row: int) -> str:
        """The token string of one row."""
        return self.strings[int(self.table["text"][row])][int(self.table["position"][row])]

    def context(self, row: int, window: int = 8) -> tuple[str, str, str]:
        """(left, token, right) of one row in its text (see :func:`~featgeom_core.hessian.reading.token_context`)."""
        text = int(self.table["text"][row])
        rows = np.flatnonzero(self.table["text"] == text)
        return token_context(self.texts[text], self.table["offsets"][rows], self.table["special"][rows], self.strings[text],
                             int(self.table["position"][row]), window)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{name}": np.asarray(values) for name, values in self.table.items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str, strings: list[list[str]], texts: list[str]) -> "TokenSet":
        table = {name[len(prefix):]: np.asarray(values) for name, values in arrays.items() if name.startswith(prefix)}
        return cls(table, [list(s) for s in strings], list(texts))


@dataclass
class HessianJobResult:
    """A job's features and what its samples are. ``features.curvatures`` (n_samples, k): the
    training samples (toys: ``inputs`` (n_samples, n_inputs); a language model: the real tokens
    of the training texts, ``train_tokens``). A language model's features are also read on
    held-out texts: ``heldout_tokens`` with ``heldout_curvatures`` (n_heldout_tokens, k)."""

    features: HessianFeatures
    model: str
    description: str
    inputs: np.ndarray | None = None
    train_tokens: TokenSet | None = None
    heldout_tokens: TokenSet | None = None
    heldout_curvatures: np.ndarray | None = None
    output: str = "regression"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def is_language_model(self) -> bool:
        return self.train_tokens is not None

    def sample_sets(self) -> list[str]:
        """The sets of samples features can be read on: held-out first for a language model."""
        return [HELD_OUT, TRAINING] if self.heldout_tokens is not None else [TRAINING]

    def curvatures(self, which: str = TRAINING) -> np.ndarray:
        """(n_samples, k) activations of the ``which`` set."""
        if which == TRAINING:
            return self.features.curvatures.detach().cpu().numpy().reshape(-1, self.features.k)
        if which == HELD_OUT and self.heldout_curvatures is not None:
            return np.asarray(self.heldout_curvatures)
        raise InvalidParameter(f"sample set {which!r}: choose one of {', '.join(self.sample_sets())}")

    def _tokens(self, which: str) -> TokenSet | None:
        return self.heldout_tokens if which == HELD_OUT else self.train_tokens

    def single_input_mask(self) -> np.ndarray | None:
        """Toys: samples with exactly one non-zero input; None for a language model."""
        return None if self.inputs is None else single_input_samples(self.inputs)

    def top_rows(self, feature: int, n: int = 5, which: str = TRAINING, single_input_only: bool = False, window: int = 8) -> list[dict[str, Any]]:
        """The ``n`` samples of ``which`` that activate ``feature`` most, largest first, one dict
        each: ``rank``, ``sample`` (row), ``value``, and ``input`` (toys) or ``token``, ``left``,
        ``right``, ``text``, ``position`` (language models)."""
        if not 0 <= feature < self.features.k:
            raise InvalidParameter(f"feature {feature}: choose 0..{self.features.k - 1}")
        values = self.curvatures(which)[:, feature]
        among = self.single_input_mask() if single_input_only else None
        rows = []
        for rank, index in enumerate(top_indices(values, n, among)):
            row: dict[str, Any] = {"feature": feature, "rank": rank + 1, "sample": int(index), "value": float(values[index])}
            tokens = self._tokens(which)
            if tokens is not None:
                left, token, right = tokens.context(int(index), window)
                row.update(token=token, left=left, right=right, text=int(tokens.table["text"][index]), position=int(tokens.table["position"][index]))
            elif self.inputs is not None:
                row["input"] = [float(v) for v in self.inputs[index]]
            rows.append(row)
        return rows

    def sample_labels(self, which: str = TRAINING) -> list[str]:
        """One label per sample of ``which``: a toy's input vector, or a token string."""
        tokens = self._tokens(which)
        if tokens is not None:
            return [tokens.token(i) for i in range(len(tokens))]
        if self.inputs is None:
            return [str(i) for i in range(len(self.curvatures(which)))]
        return ["[" + ", ".join(f"{v:.3g}" for v in row) + "]" for row in self.inputs]

    def interference(self, which: str = TRAINING) -> np.ndarray:
        """(k, k) |cos of directions| x co-activation on ``which`` (see :func:`~featgeom_core.hessian.reading.interference_matrix`)."""
        return interference_matrix(self.features.U.detach().cpu().numpy(), self.curvatures(which))

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = self.features.to_arrays("features/")
        meta: dict[str, Any] = {"features": self.features.meta(), "model": self.model, "description": self.description, "output": self.output,
                                "timings": dict(self.timings)}
        if self.inputs is not None:
            arrays["inputs"] = np.asarray(self.inputs)
        for prefix, tokens in (("train", self.train_tokens), ("heldout", self.heldout_tokens)):
            if tokens is not None:
                arrays.update(tokens.to_arrays(f"{prefix}/"))
                meta[f"{prefix}_strings"], meta[f"{prefix}_texts"] = tokens.strings, tokens.texts
        if self.heldout_curvatures is not None:
            arrays["heldout_curvatures"] = np.asarray(self.heldout_curvatures)
        return arrays, meta

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "HessianJobResult":
        tokens = {prefix: TokenSet.from_arrays(arrays, f"{prefix}/", meta[f"{prefix}_strings"], meta[f"{prefix}_texts"])
                  for prefix in ("train", "heldout") if f"{prefix}_strings" in meta}
        return cls(HessianFeatures.from_arrays(arrays, meta["features"], "features/"), str(meta["model"]), str(meta["description"]),
                   inputs=np.asarray(arrays["inputs"]) if "inputs" in arrays else None, train_tokens=tokens.get("train"),
                   heldout_tokens=tokens.get("heldout"),
                   heldout_curvatures=np.asarray(arrays["heldout_curvatures"]) if "heldout_curvatures" in arrays else None,
                   output=str(meta.get("output", "regression")), timings=dict(meta.get("timings", {})))

    def summary(self) -> dict[str, Any]:
        """The features' summary, the model, and each feature's top sample (held-out for a language model)."""
        which = self.sample_sets()[0]
        top = []
        for j in range(self.features.k):
            rows = self.top_rows(j, 1, which)
            top.append(None if not rows else rows[0].get("token", rows[0].get("input")))
        return {"model": self.model, **self.features.summary(), f"top {which} sample": top,
                "seconds": round(sum(self.timings.values()), 2)}


def toy_parameter_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """A toy's parameter names and shapes, from an untrained copy (nothing is trained)."""
    from featgeom_core.hessian.toys import ToySuperposition, XorNet

    if name not in TOYS:
        raise InvalidParameter(f"toy {name!r}: choose one of {', '.join(TOYS)}")
    module = XorNet() if name == "xor" else ToySuperposition(5, 2)
    return {n: tuple(p.shape) for n, p in module.named_parameters()}


def parse_loss_message(message: str) -> tuple[int, int, float, float] | None:
    """(step, steps, L_steep, L_interference) from a fit's progress message, or None."""
    found = LOSS_MESSAGE.search(message or "")
    if found is None:
        return None
    try:
        return int(found.group(1)), int(found.group(2)), float(found.group(3)), float(found.group(4))
    except ValueError:
        return None


def _run_toy(params: HessianJob, report: Report) -> JobOutput:
    from featgeom_core.hessian.toys import toy_superposition, xor_net

    start = time.perf_counter()
    report(0.0, f"training {params.model}")
    toy = xor_net(params.model_seed) if params.model == "xor" else toy_superposition(seed=params.model_seed)
    block = params.block_names() or toy.default_block
    trained = time.perf_counter() - start
    features = fit_hessian_features(toy.model, block, toy.inputs, params.fit, progress=lambda f, m: report(0.05 + 0.95 * f, m))
    result = HessianJobResult(features, params.model, toy.description, inputs=toy.inputs.numpy(),
                              timings={"model": trained, "fit": features.seconds})
    return JobOutput(result)


def _run_language(params: HessianJob, report: Report) -> JobOutput:
    from featgeom_core.data.registry import corpus_texts
    from featgeom_core.hessian.language import load_language_model, token_curvatures, tokenize

    timings: dict[str, float] = {}
    start = time.perf_counter()
    report(0.0, f"loading {params.model}")
    lm = load_language_model(params.model)
    texts = corpus_texts(None, params.data_seed)
    if params.n_texts + params.heldout_texts > len(texts):
        raise DataError(f"n_texts + heldout_texts = {params.n_texts + params.heldout_texts}, but the packaged corpus has {len(texts)} texts")
    train = tokenize(lm.tokenizer, texts[: params.n_texts], params.max_tokens)
    heldout = tokenize(lm.tokenizer, texts[params.n_texts: params.n_texts + params.heldout_texts], params.max_tokens)
    names = params.block_names() or (lm.default_block(params.layer),)
    block = lm.block(names)
    timings["model and texts"] = time.perf_counter() - start
    report(0.02, f"{lm.name}: {train.n_tokens} training tokens in {params.n_texts} texts, block {', '.join(names)}")
    features = fit_hessian_features(lm.module, block, train.inputs, params.fit, progress=lambda f, m: report(0.02 + 0.88 * f, m),
                                    position_mask=train.mask)
    timings["fit"] = features.seconds
    features = replace(features, curvatures=features.curvatures[train.mask], block=names)
    report(0.9, f"curvatures of {heldout.n_tokens} held-out tokens")
    start = time.perf_counter()
    held = token_curvatures(lm.module, block, heldout, features.U, batch_size=max(16, params.fit.batch_size), method=params.fit.curvature,
                            device=params.fit.device)
    timings["held-out"] = time.perf_counter() - start
    report(1.0, "done")
    result = HessianJobResult(
        features, params.model, f"{lm.n_layers} layers, block {', '.join(names)}; D = {'MSE of the final hidden state' if lm.output == 'hidden' else 'KL of the next-token distribution'} "
                                f"at each token; {params.n_texts} training and {params.heldout_texts} held-out texts of at most {params.max_tokens} tokens",
        train_tokens=_token_set(train), heldout_tokens=_token_set(heldout), heldout_curvatures=held.double().numpy(),
        output=lm.module.featgeom_output, timings=timings)
    return JobOutput(result, fingerprints={"model": lm.fingerprint})


def _token_set(batch: Any) -> TokenSet:
    return TokenSet(batch.token_table(), [list(s) for s in batch.strings], list(batch.texts))


def run_features(params: HessianJob, report: Report) -> JobOutput:
    """Train (toys) or load (language models) the model, learn the features, read them."""
    from featgeom_core.memory import heap_for_large_tensors

    with heap_for_large_tensors():  # a Dask worker's malloc settings would halve the fit's speed
        return _run_language(params, report) if params.is_language_model else _run_toy(params, report)


HESSIAN_FEATURES = register(JobKind(
    "hessian.features", "features as sparse directions of sample-level Hessians in a parameter block (XOR, TMS, a language model)",
    HessianJob, run_features, HessianJobResult, page="pages/hessian_features.py", wants_gpu=True,
    example={"model": "xor", "fit": {"k": 3, "steps": 40, "restarts": 1, "init_iterations": 3}},
))
