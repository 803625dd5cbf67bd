"""The modular-addition transformer of the LIB paper (Appendix A.1, after Nanda et al. 2023): one
layer, residual width 128, 4 heads of 32, an MLP of 512 ReLU units, no LayerNorm, inputs
``[x, y, =]`` with the answer (x + y) mod 113 read at the last position.

Parameters use TransformerLens's names and shapes, so a checkpoint of that architecture (the
peer's ``model_epoch_60000.pt``) loads as a plain state dict with ``weights_only=True``. The data
split is the peer's: all 113 x 113 pairs in (x, y) order, permuted by ``torch.randperm`` with the
seed, the first 30% for training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from featgeom_core.errors import DataError
from featgeom_core.interaction.checkpoints import read_state_dict
from featgeom_core.interaction.cores import LastQueryAttention, Positionwise
from featgeom_core.interaction.params import ModAddConfig, ModAddTrainParams
from featgeom_core.interaction.sequential import (
    Section,
    SequentialModel,
    affine,
    with_constant,
)
from featgeom_core.progress import Progress, silent


class ModAddTransformer(torch.nn.Module):
    """The one-layer transformer; ``forward(tokens (N, 3))`` returns the logits at the last
    position (N, p + 1). Parameters are held under TransformerLens names (see ``weight``)."""

    def __init__(self, config: ModAddConfig = ModAddConfig(), seed: int = 0) -> None:
        super().__init__()
        self.config = config
        shapes = parameter_shapes(config)
        generator = torch.Generator().manual_seed(seed)
        self.params = torch.nn.ParameterDict()
        for name, shape in shapes.items():
            if ".b_" in name:
                value = torch.zeros(shape)
            else:  # TransformerLens's default: N(0, (0.8 / sqrt(d_model))^2)
                value = torch.randn(shape, generator=generator) * (0.8 / math.sqrt(config.d_model))
            self.params[_key(name)] = torch.nn.Parameter(value)

    def weight(self, name: str) -> torch.Tensor:
        """A parameter by its TransformerLens name."""
        return self.params[_key(name)]

    def tl_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters under TransformerLens names (what ``load_modular_addition`` reads)."""
        return {name: self.weight(name).detach().clone() for name in parameter_shapes(self.config)}

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at the last position, computed directly (unfolded): keys and values come from
        per-position tables over the vocabulary, since each position's residual is a function of
        its token; the sequential view computes the same numbers the folded way."""
        c, W = self.config, self.weight
        n, p = tokens.shape
        vocab = c.modulus + 1
        table = (W("embed.W_E")[None, :, :] + W("pos_embed.W_pos")[:p, None, :]).reshape(p * vocab, c.d_model)  # (P vocab, d)
        rows = tokens + vocab * torch.arange(p)[None, :]  # each (position, token) pair's row of the tables
        keys = (table @ heads(W("blocks.0.attn.W_K"))).reshape(p * vocab, c.n_heads, c.d_head) + W("blocks.0.attn.b_K")
        values = (table @ heads(W("blocks.0.attn.W_V"))).reshape(p * vocab, c.n_heads, c.d_head) + W("blocks.0.attn.b_V")
        last = torch.nn.functional.embedding(rows[:, -1], table)  # (N, d)
        q = (last @ heads(W("blocks.0.attn.W_Q"))).reshape(n, c.n_heads, c.d_head) + W("blocks.0.attn.b_Q")
        k = torch.nn.functional.embedding(rows, keys.reshape(p * vocab, -1)).reshape(n, p, c.n_heads, c.d_head)
        v = torch.nn.functional.embedding(rows, values.reshape(p * vocab, -1)).reshape(n, p, c.n_heads, c.d_head)
        pattern = torch.softmax((q[:, None] * k).sum(-1) / math.sqrt(c.d_head), dim=1)  # (N, P, H): the last query sees every position
        z = (pattern[..., None] * v).sum(1).reshape(n, c.n_heads * c.d_head)
        mid = last + z @ W("blocks.0.attn.W_O").reshape(-1, c.d_model) + W("blocks.0.attn.b_O")
        hidden = torch.relu(mid @ W("blocks.0.mlp.W_in") + W("blocks.0.mlp.b_in"))
        post = mid + hidden @ W("blocks.0.mlp.W_out") + W("blocks.0.mlp.b_out")
        return post @ W("unembed.W_U") + W("unembed.b_U")

    def sequential(self, dtype: torch.dtype = torch.float64) -> SequentialModel:
        """The folded sequential view (see ``modadd_sequential``)."""
        return modadd_sequential(self, dtype)


def heads(weight: torch.Tensor) -> torch.Tensor:
    """(n_heads, d_model, d_head) -> (d_model, n_heads * d_head), heads side by side."""
    return weight.permute(1, 0, 2).reshape(weight.shape[1], -1)


def _key(name: str) -> str:
    return name.replace(".", "__")


def parameter_shapes(c: ModAddConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's TransformerLens name and shape."""
    vocab = c.modulus + 1
    return {
        "embed.W_E": (vocab, c.d_model),
        "pos_embed.W_pos": (3, c.d_model),
        "blocks.0.attn.W_Q": (c.n_heads, c.d_model, c.d_head),
        "blocks.0.attn.W_K": (c.n_heads, c.d_model, c.d_head),
        "blocks.0.attn.W_V": (c.n_heads, c.d_model, c.d_head),
        "blocks.0.attn.W_O": (c.n_heads, c.d_head, c.d_model),
        "blocks.0.attn.b_Q": (c.n_heads, c.d_head),
        "blocks.0.attn.b_K": (c.n_heads, c.d_head),
        "blocks.0.attn.b_V": (c.n_heads, c.d_head),
        "blocks.0.attn.b_O": (c.d_model,),
        "blocks.0.mlp.W_in": (c.d_model, c.d_mlp),
        "blocks.0.mlp.b_in": (c.d_mlp,),
        "blocks.0.mlp.W_out": (c.d_mlp, c.d_model),
        "blocks.0.mlp.b_out": (c.d_model,),
        "unembed.W_U": (c.d_model, vocab),
        "unembed.b_U": (vocab,),
    }


def load_modular_addition(path_or_state_dict: str | Path | Mapping[str, torch.Tensor]) -> ModAddTransformer:
    """A model from a state dict (TransformerLens names) or a file holding one, read with
    ``torch.load(weights_only=True)``: a pickled object is refused, and so is a checkpoint of
    another architecture (missing, unexpected or mis-shaped parameters are named)."""
    state = dict(path_or_state_dict) if isinstance(path_or_state_dict, Mapping) else read_state_dict(path_or_state_dict)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError("the checkpoint is not a state dict of tensors")
    state = {k: v for k, v in state.items() if not k.endswith(("attn.mask", "attn.IGNORE"))}  # TransformerLens buffers
    config = _infer_config(state)
    expected = parameter_shapes(config)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})" for k in expected if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        parts = [
            f"missing {missing[:6]}" if missing else "",
            f"unexpected {unexpected[:6]}" if unexpected else "",
            f"mis-shaped {wrong[:4]}" if wrong else "",
        ]
        raise DataError(
            "not a modular-addition transformer of this architecture (one layer, no LayerNorm, inputs [x, y, =]): "
            + "; ".join(p for p in parts if p)
        )
    model = ModAddTransformer(config)
    with torch.no_grad():
        for name in expected:
            model.weight(name).copy_(state[name].to(torch.float32))
    return model


def _infer_config(state: Mapping[str, torch.Tensor]) -> ModAddConfig:
    try:
        vocab, d_model = state["embed.W_E"].shape
        n_heads, _, d_head = state["blocks.0.attn.W_Q"].shape
        d_mlp = state["blocks.0.mlp.W_in"].shape[1]
    except (KeyError, ValueError) as exc:
        raise DataError(f"not a modular-addition transformer checkpoint: cannot read its shapes ({exc})") from None
    return ModAddConfig(modulus=int(vocab) - 1, d_model=int(d_model), n_heads=int(n_heads), d_head=int(d_head), d_mlp=int(d_mlp))


@dataclass(frozen=True)
class ModAddData:
    """Inputs (N, 3) = [x, y, p] and labels (x + y) mod p, split as the peer splits them."""

    train_tokens: torch.Tensor
    train_labels: torch.Tensor
    test_tokens: torch.Tensor
    test_labels: torch.Tensor


def all_pairs(modulus: int) -> torch.Tensor:
    """Every input [x, y, p] (p^2, 3), int64, in row-major order: row x * p + y."""
    xs, ys = torch.meshgrid(torch.arange(modulus), torch.arange(modulus), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.full((modulus * modulus,), modulus)], dim=1)


def modular_addition_data(modulus: int = 113, frac_train: float = 0.3, seed: int = 0) -> ModAddData:
    """Every pair (x, y) in row-major order, permuted by ``torch.randperm`` seeded with ``seed``;
    the first ``int(frac_train * p^2)`` for training (``torch.utils.data.random_split``'s order)."""
    tokens = all_pairs(modulus)
    labels = (tokens[:, 0] + tokens[:, 1]) % modulus
    order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed))
    n_train = int(len(tokens) * frac_train)
    train, test = order[:n_train], order[n_train:]
    return ModAddData(tokens[train], labels[train], tokens[test], labels[test])


NODE_LAYERS = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.mlp.hook_post", "blocks.0.hook_resid_post", "logits")
PEER_NODE_LAYERS = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post", "logits")
PEER_NAMES = {
    "blocks.0.hook_resid_pre": "ln1.0",
    "blocks.0.hook_resid_mid": "ln2.0",
    "blocks.0.hook_resid_post": "unembed",
    "logits": "output",
}


def modadd_sequential(model: ModAddTransformer, dtype: torch.dtype = torch.float64, trainable: bool = False) -> SequentialModel:
    """The sequential view, node layers named by TransformerLens hooks:

    - ``blocks.0.hook_resid_pre`` (the peer's ``ln1.0``): the residual after the embedding, 3 positions;
    - ``blocks.0.hook_resid_mid`` (``ln2.0``): after attention, last position only;
    - ``blocks.0.mlp.hook_post``: the residual and the MLP's ReLU outputs, side by side;
    - ``blocks.0.hook_resid_post`` (``unembed``): after the MLP;
    - ``logits`` (``output``): the logits at the last position (no constant coordinate).

    Folded biases as the peer folds them: b_V rides on a per-head copy of the constant, so b_O
    enters weighted by the attention pattern; b_in, b_out and b_U multiply the constant. With the
    constant at 1 this is the model itself; ``trainable`` keeps the parameters in the graph.
    """
    W = {name: (model.weight(name) if trainable else model.weight(name).detach()).to(dtype) for name in parameter_shapes(model.config)}
    c = model.config
    width = c.n_heads * c.d_head

    def embed(tokens: torch.Tensor) -> torch.Tensor:
        resid = W["embed.W_E"][tokens] + W["pos_embed.W_pos"][: tokens.shape[1]]
        return with_constant(resid, torch.ones(*resid.shape[:-1], 1, dtype=dtype))

    identity = torch.eye(c.d_model + 1, dtype=dtype)
    qkv = [affine(heads(W[f"blocks.0.attn.W_{x}"]), W[f"blocks.0.attn.b_{x}"].reshape(-1), keep_constant=False) for x in "QKV"]
    attention_out = torch.zeros(width + c.n_heads + c.d_model + 1, c.d_model + 1, dtype=dtype)
    attention_out = attention_out.index_put(
        (torch.arange(width)[:, None], torch.arange(c.d_model)[None, :]), W["blocks.0.attn.W_O"].reshape(width, c.d_model)
    )
    attention_out = attention_out.index_put(
        (torch.arange(width, width + c.n_heads)[:, None], torch.arange(c.d_model)[None, :]),
        (W["blocks.0.attn.b_O"] / c.n_heads).expand(c.n_heads, c.d_model),
    )
    attention_out = attention_out.index_put(
        (torch.arange(width + c.n_heads, width + c.n_heads + c.d_model + 1)[:, None], torch.arange(c.d_model + 1)[None, :]), identity
    )
    attention = Section(LastQueryAttention(c.n_heads, c.d_head), torch.cat([*qkv, identity], dim=1), attention_out)

    mlp_in_map = torch.cat(
        [identity[:, : c.d_model], affine(W["blocks.0.mlp.W_in"], W["blocks.0.mlp.b_in"], keep_constant=False), identity[:, c.d_model :]],
        dim=1,
    )
    mlp_in = Section(Positionwise(c.d_model, c.d_model + c.d_mlp), mlp_in_map)
    mlp_out_map = torch.cat(
        [torch.cat([identity[: c.d_model, : c.d_model], W["blocks.0.mlp.W_out"]], dim=0), W["blocks.0.mlp.b_out"][None, :]], dim=0
    )
    mlp_out = Section(
        linear_in=torch.cat(
            [mlp_out_map, torch.cat([torch.zeros(c.d_model + c.d_mlp, 1, dtype=dtype), torch.ones(1, 1, dtype=dtype)])], dim=1
        )
    )
    unembed = Section(linear_in=affine(W["unembed.W_U"], W["unembed.b_U"], keep_constant=False))
    return SequentialModel(
        "modular addition",
        list(NODE_LAYERS),
        embed,
        [attention, mlp_in, mlp_out, unembed],
        [True, True, True, True, False],
        default_node_layers=list(PEER_NODE_LAYERS),
        metric="accuracy",
    )


def train_modular_addition(
    params: ModAddTrainParams = ModAddTrainParams(), progress: Progress | None = None, report_every: int = 200
) -> tuple[ModAddTransformer, dict[str, list[float]]]:
    """Train with the peer's recipe (AdamW, full batch, weight decay 1); returns the model and the
    history (epoch, train loss, test loss, test accuracy every ``report_every`` epochs)."""
    report = progress or silent
    torch.manual_seed(params.seed)
    config = params.model
    data = modular_addition_data(config.modulus, params.frac_train, params.seed)
    model = ModAddTransformer(config, params.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / max(params.warmup, 1)))
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "test_loss": [], "test_accuracy": []}
    for epoch in range(params.epochs):
        logits = model(data.train_tokens)
        loss = torch.nn.functional.cross_entropy(logits, data.train_labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if epoch % report_every and epoch != params.epochs - 1:
            report((epoch + 1) / params.epochs, f"epoch {epoch + 1}/{params.epochs}")  # every epoch: how a cancel is heard
            continue
        with torch.no_grad():
            test_logits = model(data.test_tokens)
            history["epoch"].append(epoch)
            history["train_loss"].append(float(loss.detach()))
            history["test_loss"].append(float(torch.nn.functional.cross_entropy(test_logits, data.test_labels)))
            history["test_accuracy"].append(float((test_logits.argmax(-1) == data.test_labels).float().mean()))
        report(
            (epoch + 1) / params.epochs,
            f"epoch {epoch + 1}/{params.epochs}: train loss {float(loss.detach()):.3g}, test accuracy {history['test_accuracy'][-1]:.3f}",
            {"epoch": epoch + 1, "train_loss": history["train_loss"][-1], "test_accuracy": history["test_accuracy"][-1]},
        )
        if params.stop_at_accuracy < 1.0 and history["test_accuracy"][-1] >= params.stop_at_accuracy:
            report(1.0, f"test accuracy {history['test_accuracy'][-1]:.4f} at epoch {epoch + 1}: stopped (grokked)")
            break
    return model, history
