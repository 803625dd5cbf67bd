"""One feature of every kind on its page: contexts, histogram, neighbours and typed text, checked
against the numbers each kind's own result holds (planted values for the pure parts)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import open_page
from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.features.contexts import activation_histogram, readable_tokens, top_contexts
from featgeom_core.features.directions import DirectionSet, Space, lib_vectors, space_of_node_layer
from featgeom_core.features.neighbours import chance_largest_cosine, nearest_across
from featgeom_core.features.ref import FeatureRef, parse_ref
from featgeom_core.jobs import manager


def test_top_contexts_take_one_peak_per_text_with_its_neighbours() -> None:
    # two texts of five tokens, rows shuffled; text 1 holds the two largest values
    text = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    position = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    values = np.array([0.1, 0.2, 3.0, 0.0, -5.0, 0.0, 4.0, 3.5, 0.1, 0.0])
    strings = [f"t{t}p{p}" for t, p in zip(text, position)]
    order = np.random.default_rng(0).permutation(10)
    found = top_contexts(values[order], text[order], position[order], [strings[i] for i in order], count=5, before=1, after=1)
    assert [c.text for c in found] == [1, 0]  # one context per text, strongest first
    assert found[0].tokens == ("t1p0", "t1p1", "t1p2") and found[0].focus == 1 and found[0].peak == 4.0
    assert found[0].values == (0.0, 4.0, 3.5)
    assert found[1].peak == 3.0 and found[1].tokens == ("t0p1", "t0p2", "t0p3")
    unranked = top_contexts(values, text, position, strings, count=5, unranked=position == 1)
    assert [c.peak for c in unranked] == [3.5, 3.0]  # text 1's first-ranked token left out; still shown beside 3.5
    assert unranked[0].values == (0.0, 4.0, 3.5, 0.1, 0.0) and unranked[0].focus == 2
    by_size = top_contexts(values, text, position, strings, count=1, by_magnitude=True)
    assert by_size[0].peak == -5.0 and by_size[0].focus == 4  # the text's end: no token after it
    counts, edges = activation_histogram(np.array([0.0, 0.0, 1.0, 2.0]), bins=2, nonzero_only=True)
    assert counts.sum() == 2 and edges[0] == 1.0


def test_tokenizer_pieces_read_as_text() -> None:
    assert readable_tokens(["Ġthe", "Ġcat", "Ċ", "s"]) == [" the", " cat", "\n", "s"]
    assert readable_tokens(["the", "play", "##ing"]) == [" the", " play", "ing"]


def test_a_feature_link_round_trips_and_bad_links_say_why() -> None:
    ref = FeatureRef("atom", 7, model="smollm2", layer="6", job="abc")
    assert parse_ref(ref.query()) == ref
    assert ref.moved(-9).index == 0 and ref.moved(1).index == 8
    with pytest.raises(InvalidParameter) as caught:
        parse_ref({"kind": "neuron", "index": "-1", "hook": "attn"})
    assert len(caught.value.problems) == 3 and "kind 'neuron'" in str(caught.value)


def test_nearest_directions_rank_by_cosine_and_skip_the_own_kind_and_other_widths() -> None:
    rng = np.random.default_rng(0)
    query = rng.normal(size=8)
    others = rng.normal(size=(6, 8))
    others[4] = -2.0 * query  # the same line, opposite sign
    others[2] = query + 0.1 * rng.normal(size=8)
    space = Space("m", "resid_post", 1)

    def made(kind, vectors):
        return DirectionSet(kind, space, vectors, np.zeros(len(vectors)), tuple(map(str, range(len(vectors)))), kind, FeatureRef(kind, 0))

    found = nearest_across(query, [made("atom", others), made("probe", others), made("lib", rng.normal(size=(3, 5)))], 2, "probe")
    assert len(found) == 1  # the probe set is the query's own kind, the LIB set another width
    assert [n.ref.index for n in found[0]] == [4, 2] and found[0][0].cosine == pytest.approx(-1.0)
    # the chance level: random directions against 6 in 8 dimensions reach far more than against 2,000 in 400
    assert found[0][0].chance == pytest.approx(chance_largest_cosine(made("atom", others)))
    few = chance_largest_cosine(made("atom", rng.normal(size=(6, 8))))
    many = rng.normal(size=(2000, 400))
    assert 0.5 < few < 1.0 and chance_largest_cosine(made("atom", many)) == pytest.approx(np.sqrt(2 * np.log(4000) / 400), rel=0.2)
    with pytest.raises(InvalidParameter, match="zero"):
        nearest_across(np.zeros(8), [made("atom", others)])


def test_lib_node_layers_map_to_hook_spaces_and_their_reading_rows() -> None:
    assert space_of_node_layer("m", "blocks.3.hook_resid_pre") == Space("m", "resid_post", 2)
    assert space_of_node_layer("m", "blocks.0.hook_resid_pre") == Space("m", "resid_post", -1)
    assert space_of_node_layer("m", "blocks.3.mlp.hook_post") == Space("m", "mlp_post", 3)
    assert space_of_node_layer("m", "blocks.3.hook_resid_mid") is None
    C = np.arange(7 * 2, dtype=float).reshape(7, 2)  # d_model 5 with the statistic first and the constant last
    assert np.array_equal(lib_vectors(C, "blocks.1.hook_resid_pre", 5, 3), C[1:6].T)
    assert lib_vectors(C, "blocks.1.hook_resid_post", 5, 3) is None  # the block's output is the stream alone: width 5
    C = np.ones((3 + 5 + 1, 4))
    assert lib_vectors(C, "blocks.1.mlp.hook_post", 5, 3).shape == (4, 3)


@pytest.fixture(scope="module")
def tiny():
    from featgeom_core.models import load_model

    return load_model("tiny-native")


def test_a_probe_direction_reads_the_same_on_its_corpus_and_on_typed_text(tiny, tmp_path) -> None:
    from featgeom_core.activations import token_activations
    from featgeom_core.features.jobs import FEATURE_CORPUS
    from featgeom_core.features.sources import probe_directions
    from featgeom_core.features.text import read_direction
    from featgeom_core.features.view import probe_feature
    from featgeom_core.store import Store

    store = Store(tmp_path)
    ref = FeatureRef("probe", 1, model="tiny-native", layer="1", features="art_type", hook="resid_post")
    directions = probe_directions(tiny, ref, store)
    params = FEATURE_CORPUS.validate({"model": "tiny-native", "layer": 1, "n_texts": 12, "max_tokens": 32})
    record = manager.run_here(FEATURE_CORPUS.name, params, store)
    corpus = FEATURE_CORPUS.load(record.job_id, store)
    again = FEATURE_CORPUS.load(manager.run_here(FEATURE_CORPUS.name, params, store).job_id, store)  # from the store
    assert np.array_equal(corpus.values, again.values) and corpus.strings == again.strings
    assert corpus.values.shape[0] == len(corpus.strings) and corpus.summary()["texts"] == 12
    from featgeom_core.errors import JobCancelled
    from featgeom_core.features.corpus import corpus_tokens
    from featgeom_core.features.params import CorpusParams

    heard: list[str] = []

    def cancelled_after_one_batch(fraction: float, message: str, *_: object) -> None:
        heard.append(message)
        if len(heard) > 1:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):  # a cancelled corpus read stops at its next batch
        corpus_tokens(tiny, CorpusParams.model_validate({**params, "n_texts": 70}), cancelled_after_one_batch)
    assert heard[0].startswith("forward pass: texts 1-32 of 70")
    data = probe_feature(ref, directions, corpus)
    expected = corpus.values.astype(np.float64) @ directions.vectors[1] + directions.offsets[1]
    assert np.allclose(data.values, expected) and data.count == 3 and data.direction is directions
    # a random model does not encode art types: the page says the geometry is the probing construction's
    assert "held-out balanced accuracy" in data.facts and "do not beat the chance baseline" in data.warning
    assert data.contexts[0].peak == pytest.approx(expected.max())
    # the typed-text box reads what the page ranks: text 0 of the corpus, typed, gives its corpus values
    first = corpus.texts[int(corpus.text[0])]
    short = " ".join(first.split()[:12])
    reading = read_direction(tiny, directions, 1, short)
    direct = token_activations(tiny, [short], [1], "resid_post")
    assert np.allclose(reading.values, direct.values[1].astype(np.float64) @ directions.vectors[1] + directions.offsets[1])
    assert "".join(reading.tokens).strip().lower() == short.lower()
    with pytest.raises(DataError):
        read_direction(tiny, directions, 1, "   ")
    with pytest.raises(InvalidParameter, match="no 3"):
        probe_feature(FeatureRef("probe", 3, model="tiny-native", layer="1", features="art_type"), directions, corpus)


@pytest.fixture(scope="module")
def sparsity_job() -> str:
    from featgeom_core.sparsity.jobs import SPARSITY_MODEL

    params = {"model": "tiny-native", "layers": [1], "tokens": 512, "calibrate": False, "max_tokens_per_text": 32}
    record = manager.run_here(SPARSITY_MODEL.name, SPARSITY_MODEL.validate(params))
    assert record.status == "done", record.error
    return record.job_id


def test_an_atoms_page_is_its_own_codes_and_typed_text_is_coded_alike(tiny, sparsity_job) -> None:
    from featgeom_core.features.sources import atom_directions
    from featgeom_core.features.text import read_atom
    from featgeom_core.features.view import atom_feature
    from featgeom_core.sparsity.jobs import SPARSITY_MODEL

    result = SPARSITY_MODEL.load(sparsity_job)
    chosen = result.set("layer 1")
    atom = int(np.argmax(chosen.usage))
    directions = atom_directions(result, sparsity_job, "tiny-native", "layer 1")
    data = atom_feature(FeatureRef("atom", atom, model="tiny-native", layer="1", job=sparsity_job), result, directions, "layer 1")
    codes = chosen.code.codes.toarray()[:, atom]
    assert np.array_equal(data.values, codes) and data.nonzero_only and data.contexts[0].peak == pytest.approx(codes.max())
    assert np.allclose(directions.vectors, chosen.code.dictionary.T)
    # a held-out text typed into the box is coded as the sweep coded it
    text = int(data.contexts[0].text)
    rows = np.flatnonzero(result.token_text == text)
    rows = rows[np.argsort(result.token_position[rows])]
    params = SPARSITY_MODEL.params_of(sparsity_job)
    reading = read_atom(tiny, result, "layer 1", params.effective_coding(), atom, result.texts[text])
    assert len(reading.values) >= len(rows)
    assert np.allclose(reading.values[: len(rows)], codes[rows], atol=1e-4)


def test_the_feature_page_opens_an_atom_reads_typed_text_and_finds_probe_neighbours(tiny, sparsity_job) -> None:
    from featgeom_core.features.sources import probe_directions
    from ui.resources import cached_store

    # probes stored at the same layer and hook: the atom's neighbours of another kind
    probe_directions(tiny, FeatureRef("probe", 0, model="tiny-native", layer="1", features="art_type", hook="resid_post"), cached_store())
    at = open_page("pages/feature.py", kind="atom", model="tiny-native", layer="1", index="0", job=sparsity_job)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith("dictionary atom 0")
    assert at.get("plotly_chart"), "no histogram"
    assert any("art_type probes" in m.value for m in at.markdown), "no probe neighbours"
    at.text_area(key="feature_text").set_value("the painting hangs in the museum")
    at.button(key="feature_read").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["token"]).__len__() >= 5 and (table["activation"] >= 0).all()


def test_the_feature_page_opens_a_probe_and_says_what_is_wrong_with_a_bad_link() -> None:
    at = open_page("pages/feature.py", kind="probe", model="tiny-native", layer="1", index="2", features="art_type", hook="resid_post")
    assert not at.error, [e.value for e in at.error]
    assert "song" in at.title[0].value
    kinds = [node.type for node in at.main.children.values()]
    assert kinds.index("title") < kinds.index("toggle") and at.toggle(key="feature_skip_first").value  # the title first
    assert any("do not beat the chance baseline" in w.value for w in at.warning)
    assert "held-out balanced accuracy" in " ".join(c.value for c in at.caption)
    links = " ".join(m.value for m in at.markdown)  # outside st.navigation a page link is a markdown link
    assert "Prev: probe direction 1" in links and "index=1" in links and "Next:" not in links  # the last of 3 classes
    bad = open_page("pages/feature.py", kind="probe", model="tiny-native", layer="9", index="0", features="art_type")
    assert bad.error and "layers 0..1" in bad.error[0].value
    worse = open_page("pages/feature.py", kind="atom", index="0", job="nope")
    assert worse.error and "no finished sparsity-by-layer job 'nope'" in worse.error[0].value
    landing = open_page("pages/feature.py")
    assert landing.title[0].value == "Feature" and not landing.error


def test_the_feature_page_of_a_toy_lib_direction_is_its_node_panel_and_a_hessian_feature_its_samples() -> None:
    from featgeom_core.hessian.jobs import HESSIAN_FEATURES
    from featgeom_core.interaction.jobs import LIB_GRAPH

    graph = manager.run_here(LIB_GRAPH.name, LIB_GRAPH.validate(LIB_GRAPH.example))
    assert graph.status == "done", graph.error
    at = open_page("pages/feature.py", kind="lib", layer="1", index="2", job=graph.job_id)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "LIB direction 2"
    assert any("direction 2" in h.value for h in at.subheader), [h.value for h in at.subheader]
    assert at.get("plotly_chart"), "no images of the digits that move the direction"
    assert not any(b.label == "Pin to the subgraph" for b in at.button)
    links = " ".join(m.value for m in at.markdown)
    assert "Prev: LIB direction 1" in links and "Next: LIB direction 3" in links

    hessian = manager.run_here(HESSIAN_FEATURES.name, HESSIAN_FEATURES.validate(HESSIAN_FEATURES.example))
    assert hessian.status == "done", hessian.error
    at = open_page("pages/feature.py", kind="hessian", index="1", job=hessian.job_id)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith("Hessian feature 1")
    result = HESSIAN_FEATURES.load(hessian.job_id)
    assert f"{len(result.curvatures()):,} samples" in " ".join(c.value for c in at.caption)
    assert any("not text" in c.value for c in at.caption)
    shown = at.dataframe[0].value  # the inputs that curve most along the feature, as the result ranks them
    assert list(shown["curvature"]) == [r["value"] for r in result.top_rows(1, 8)]
    missing = open_page("pages/feature.py", kind="hessian", index="9", job=hessian.job_id)
    assert missing.error and "features 0..2" in missing.error[0].value


def test_a_llama_blocks_lib_directions_read_in_hook_space_as_the_graph_reads_them() -> None:
    """The activation-space rows ``lib_vectors`` takes from a Llama block's LIB basis are the
    stream (resid_pre, resid_post) and the MLP's hidden units (mlp_post): read on the model's own
    hidden states they give the graph's coordinates, up to the rows left out (the norm's statistic
    and the constant)."""
    import torch
    from test_interaction_language import tiny_llama, tokens

    from featgeom_core.interaction import build_graph
    from featgeom_core.interaction.language import LanguageBlock
    from featgeom_core.interaction.nodes import direction_values

    model = tiny_llama().double()
    block = LanguageBlock(model, 0)  # not the last block: HF's last hidden state has the final norm applied
    inputs = tokens(24, 6)
    graph = build_graph(block, inputs, {"basis": "lib"})
    d, d_mlp = model.config.hidden_size, model.config.intermediate_size
    with torch.no_grad():
        hidden = model(input_ids=inputs, output_hidden_states=True).hidden_states
    acts = block.sequential(torch.float64).activations(inputs)
    j = 1
    pre = lib_vectors(graph.bases[0].C.numpy(), graph.node_layers[0], d, d_mlp)
    C0 = graph.bases[0].C.numpy()[:, j]
    rest = acts[0][..., 0].numpy() * C0[0] + C0[-1]  # the statistic's and the constant's share
    assert np.allclose(direction_values(block, graph, 0, j, inputs), hidden[0].numpy() @ pre[j] + rest, atol=1e-5)
    post = lib_vectors(graph.bases[3].C.numpy(), graph.node_layers[3], d, d_mlp)
    assert np.allclose(direction_values(block, graph, 3, j, inputs), hidden[1].numpy() @ post[j], atol=1e-5)
    mlp = model.layers[0].mlp
    with torch.no_grad():
        normed = model.layers[0].post_attention_layernorm(acts[1][..., 1 : d + 1] if acts[1].shape[-1] == d + 2 else acts[1][..., :d])
        units = (mlp.act_fn(mlp.gate_proj(normed)) * mlp.up_proj(normed)).numpy()
    assert np.allclose(acts[2][..., :d_mlp].numpy(), units, atol=1e-5)  # the MLP node layer's first d_mlp coordinates are its hidden units
    assert lib_vectors(graph.bases[2].C.numpy(), graph.node_layers[2], d, d_mlp).shape[1] == d_mlp


def test_a_language_models_hessian_feature_reads_typed_text_as_its_job_read_the_held_out_texts(tmp_path) -> None:
    """A held-out text of the job, typed into the feature page's box, gives the curvatures the job
    stored for its tokens; the page ranks those same values."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from featgeom_core.features.text import read_hessian
    from featgeom_core.features.view import hessian_feature
    from featgeom_core.hessian.jobs import HESSIAN_FEATURES
    from featgeom_core.models.registry import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    params = {"model": str(tmp_path), "layer": 1, "n_texts": 4, "heldout_texts": 2, "max_tokens": 12, "fit": {"k": 2, "steps": 3}}
    record = manager.run_here(HESSIAN_FEATURES.name, HESSIAN_FEATURES.validate(params))
    assert record.status == "done", record.error
    result = HESSIAN_FEATURES.load(record.job_id)
    data = hessian_feature(FeatureRef("hessian", 1, job=record.job_id), result, "held-out")
    assert np.array_equal(data.values, result.heldout_curvatures[:, 1]) and data.direction is None
    assert data.contexts[0].peak == pytest.approx(result.heldout_curvatures[:, 1].max())
    tokens = result.heldout_tokens
    rows = np.flatnonzero(tokens.table["text"] == 0)
    reading = read_hessian(result, str(tmp_path), 1, tokens.texts[0])
    assert np.allclose(reading.values[: len(rows)], result.heldout_curvatures[rows, 1], rtol=1e-4, atol=1e-10)


def test_each_texts_first_token_is_its_smallest_position_even_when_left_padded() -> None:
    from featgeom_core.features.view import first_tokens

    text = np.array([0, 0, 0, 1, 1, 2])
    position = np.array([3, 4, 5, 0, 1, 7])  # text 0 left-padded by 3, text 2 a single token
    assert first_tokens(text, position, True).tolist() == [True, False, False, True, False, True]
    assert first_tokens(text, position, False) is None
