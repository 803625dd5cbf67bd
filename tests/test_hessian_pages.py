"""Hessian features beyond the core: the language-model adapter (per-token curvature equals the
explicit uᵀHu of each token's divergence on a tiny BERT, padding never leaks or counts), token
contexts, the job's progress messages, and the page in AppTest (renders with no job, learns XOR as
a job and shows it, bad links give messages)."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch.autograd.functional import hessian
from torch.func import functional_call

from conftest import open_page
from featgeom_core import jobs
from featgeom_core.hessian import fit_hessian_features
from featgeom_core.hessian.jobs import HESSIAN_FEATURES
from featgeom_core.hessian.language import (
    PREFIX,
    TokenBatch,
    TokenOutputs,
    token_curvatures,
    tokenize,
)
from featgeom_core.hessian.reading import (
    interference_matrix,
    token_context,
    top_indices,
)

KEY = "encoder.layer.1.attention.self.key.weight"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        initializer_range=0.5,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    return BertModel(config, add_pooling_layer=False).double().eval()


def padded_batch() -> TokenBatch:
    """Two texts of 5 and 3 tokens, the second padded (ids 0) to 5."""
    ids = torch.tensor([[1, 7, 12, 30, 2], [1, 25, 2, 0, 0]])
    mask = ids != 0
    mask[0] = True
    return TokenBatch(
        ids,
        mask,
        torch.zeros(2, 5, 2, dtype=torch.long),
        torch.zeros(2, 5, dtype=torch.bool),
        (("a",) * 5, ("b",) * 3),
        ("text a", "text b"),
    )


def explicit_token_curvatures(model, ids: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """uᵀH u of each token's MSE of the final hidden state, from the full Hessian over the key
    weight, running the text alone (no padding anywhere): (tokens, k)."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    shape = params[KEY].shape
    x = ids[None]
    reference = functional_call(model, params, (x,)).last_hidden_state

    rows = []
    for position in range(len(ids)):

        def divergence(w: torch.Tensor) -> torch.Tensor:
            out = functional_call(model, {**params, KEY: w.view(shape)}, (x,)).last_hidden_state
            return ((out[0, position] - reference[0, position]) ** 2).mean()

        H = hessian(divergence, params[KEY].reshape(-1))
        rows.append(torch.einsum("kp,pq,kq->k", U, H, U))
    return torch.stack(rows)


@pytest.mark.parametrize("method", ["output_jvp", "nested_jvp"])
def test_token_curvature_equals_explicit_hessian_and_padding_is_excluded(tiny_bert, method):
    batch = padded_batch()
    U = torch.nn.functional.normalize(torch.randn(3, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64), dim=1)
    module = TokenOutputs(tiny_bert, "hidden")
    ours = token_curvatures(module, [PREFIX + KEY], batch, U, batch_size=2, method=method)
    assert ours.shape == (5 + 3, 3)  # real tokens only: the two padding positions are no samples
    truth = torch.cat([explicit_token_curvatures(tiny_bert, batch.ids[0], U), explicit_token_curvatures(tiny_bert, batch.ids[1, :3], U)])
    assert truth.abs().max() > 1e-4
    assert (ours - truth).abs().max() < 1e-8  # the padded text curves as if alone: padding does not leak
    assert list(batch.token_table()["text"]) == [0] * 5 + [1] * 3


def test_fit_on_a_language_model_leaves_padding_out(tiny_bert):
    batch = padded_batch()
    module = TokenOutputs(tiny_bert, "hidden")
    result = fit_hessian_features(
        module,
        PREFIX + KEY,
        batch.inputs,
        {"k": 2, "steps": 3, "positions": "each", "restarts": 1, "init_iterations": 2, "curvature": "output_jvp", "device": "cpu"},
        position_mask=batch.mask,
    )
    assert result.curvatures.shape == (2, 5, 2)
    assert (result.curvatures[1, 3:] == 0).all()  # padding curves 0 by construction and counted nowhere
    assert torch.isfinite(result.U).all() and len(result.steep_loss) == 3


def test_token_contexts_come_from_the_text(minilm_tokenizer):
    batch = tokenize(minilm_tokenizer, ["Hello worldly things, ok", "a"], max_tokens=8)
    assert batch.mask.sum(dim=1).tolist() == [8, 3] and batch.n_tokens == 11
    table = batch.token_table()
    rows = [i for i in range(len(table["text"])) if table["text"][i] == 0]
    strings = batch.strings[0]
    left, token, right = token_context(batch.texts[0], table["offsets"][rows], table["special"][rows], strings, 2, window=2)
    assert (left, token, right) == ("Hello ", "world", "ly things")
    assert token_context(batch.texts[0], table["offsets"][rows], table["special"][rows], strings, 0, window=2) == (
        "",
        "[CLS]",
        "Hello world",
    )


def test_reading_helpers():
    values = torch.tensor([0.5, float("nan"), 2.0, 1.0]).numpy()
    assert top_indices(values, 2).tolist() == [2, 3]
    assert top_indices(values, 5, among=values < 1.5).tolist() == [3, 0]
    U = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]).numpy()
    c = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]).numpy()
    M = interference_matrix(U, c)
    assert M[0, 0] == pytest.approx(1.0) and M[0, 2] == 0.0  # orthogonal directions never interfere
    assert M[0, 1] == pytest.approx(2**-0.5 * 2**-0.5)  # |cos| 1/sqrt2, co-activation 1/sqrt2


def test_the_fits_progress_reports_carry_both_losses_as_metrics():
    from featgeom_core.hessian import xor_net
    from featgeom_core.jobs.records import JobRecord
    from ui.hessian_jobs import loss_history

    toy = xor_net(0)
    record = JobRecord("id", "hessian.features", {}, "running")
    result = fit_hessian_features(
        toy.model,
        toy.default_block,
        toy.inputs,
        {"k": 3, "steps": 20, "restarts": 1, "device": "cpu"},
        progress=lambda f, m, metrics=None: record.add_metrics(dict(metrics or {})),
    )
    history = loss_history(record)
    assert sorted(history) == list(range(1, 21))
    for step, (steep, interference) in history.items():
        assert steep == pytest.approx(result.steep_loss[step - 1], rel=1e-6)
        assert interference == pytest.approx(result.interference_loss[step - 1], rel=1e-6, abs=1e-12)


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from featgeom_core.models.registry import minilm_dir

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


# -- the page ---------------------------------------------------------------------------------------


def page(**query: str) -> AppTest:
    return open_page("pages/hessian_features.py", **{"model": "tiny-native", **query})


def test_page_renders_with_no_job():
    at = page()
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="hx_model").value == "xor"
    assert at.multiselect(key="hx_toy_block").value == ["hidden.weight", "hidden.bias"]
    assert at.button(key="hx_run")
    assert any("XOR net takes seconds" in i.value for i in at.info)


def test_bad_links_give_messages_not_tracebacks():
    at = page(k="0", lam="lots", block="no.such.weight", job="0123456789abcdef0123")
    errors = " | ".join(e.value for e in at.error)
    assert "k='0' is not usable" in errors and "greater than or equal to 1" in errors
    assert "lam='lots' is not usable" in errors
    assert "block 'no.such.weight'" in errors
    assert "No job '0123456789abcdef0123'" in errors
    assert at.number_input(key="hx_k").value == 3  # the defaults are used instead
    assert at.multiselect(key="hx_toy_block").value == ["hidden.weight", "hidden.bias"]


@pytest.mark.slow
def test_xor_features_are_learned_as_a_job_from_the_page_and_shown(local_backend: None):
    at = page(hmodel="xor", k="3", steps="60")
    assert at.number_input(key="hx_k").value == 3 and at.number_input(key="hx_steps").value == 60
    at.button(key="hx_run").click().run()
    record = jobs.wait(at.session_state["hx_job"], timeout_s=300)
    assert record.status == "done", record.error
    target = HESSIAN_FEATURES.params_of(record.job_id).target
    assert target.fit.k == 3 and target.block_names() == ("hidden.weight", "hidden.bias")
    at.run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    assert len(at.get("plotly_chart")) == 4  # losses, spectrum, interference, the direction's six numbers
    assert len(at.get("download_button")) == 3
    top = at.dataframe[0].value
    assert len(top) == 4 and set(top["input"]) == {"[0.0, 0.0]", "[0.0, 1.0]", "[1.0, 0.0]", "[1.0, 1.0]"}
    result = jobs.load_result(record.job_id)
    tops = {tuple(result.top_rows(j, 1)[0]["input"]) for j in range(3)}
    assert len(tops) == 3  # three features, three different top points (the write-up's XOR table)
    at.selectbox(key="hx_feature").set_value(2).run()
    assert not at.exception
    assert at.query_params["feature"] in ("2", ["2"])


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, tiny_bert, minilm_tokenizer):
    """A local Hugging Face checkpoint directory: the tiny BERT (float32, its vocabulary the
    MiniLM tokenizer's first 40 ids are enough for random weights) with the MiniLM tokenizer."""
    from transformers import BertConfig, BertModel

    directory = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
        architectures=["BertModel"],
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    minilm_tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.mark.slow
def test_a_language_model_run_shows_top_tokens_in_context(tiny_bert_dir, local_backend: None):
    params = {
        "model": tiny_bert_dir,
        "layer": 1,
        "n_texts": 6,
        "heldout_texts": 3,
        "max_tokens": 12,
        "fit": {"k": 2, "steps": 4, "init_iterations": 2},
    }
    job_id = jobs.submit("hessian.features", params)
    record = jobs.wait(job_id, timeout_s=300)
    assert record.status == "done", record.error
    result = jobs.load_result(job_id)
    assert result.features.block == ("encoder.layer.1.attention.self.key.weight",)
    assert result.features.curvatures.shape == (len(result.train_tokens), 2)  # real tokens only
    assert int(result.train_tokens.table["special"].sum()) == 2 * 6  # [CLS] and [SEP] of each text, no padding
    assert result.heldout_curvatures.shape == (len(result.heldout_tokens), 2)
    row = result.top_rows(0, 1, "held-out")[0]
    text = result.heldout_tokens.texts[row["text"]]
    assert row["token"] in text or row["token"] in ("[CLS]", "[SEP]")
    at = page(job=job_id)
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="hx_model").value == "other" and at.text_input(key="hx_custom").value == tiny_bert_dir
    assert at.selectbox(key="hx_set").value == "held-out"
    assert len(at.get("plotly_chart")) == 4
    assert any("<mark" in h.proto.body for h in at.get("html"))
