"""Feature sets: knowledge families with data hygiene, text features, user CSVs."""

import numpy as np
import pytest

from featgeom_core.data import feature_set_from_csv, list_feature_sets, load_feature_set
from featgeom_core.data.feature_set import LAST_REAL_TOKEN
from featgeom_core.data.knowledge import dedupe_prompts
from featgeom_core.data.sae_probes_files import read_dataset
from featgeom_core.errors import DataError
from featgeom_core.tokens import encode


def test_catalogue_has_text_features_and_four_knowledge_families() -> None:
    names = {info.name for info in list_feature_sets()}
    assert {"text_features", "athlete_sport", "us_timezone", "world_country", "art_type", "news_topic"} <= names


def test_a_prompted_set_is_its_bare_set_in_a_prompt_probed_at_the_prompts_last_token() -> None:
    bare = load_feature_set("world_country", max_per_class=50)
    prompted = load_feature_set("world_country_prompt", max_per_class=50)
    assert prompted.texts == tuple(f"{name} is a place in the country of" for name in bare.texts)
    np.testing.assert_array_equal(prompted.labels, bare.labels)
    assert (prompted.example_pos == LAST_REAL_TOKEN).all() and prompted.feature_names == bare.feature_names


def test_athlete_prompts_are_deduplicated_before_splitting() -> None:
    raw = read_dataset("108_athlete_sport")
    assert len(raw) == 2658
    fs = load_feature_set("athlete_sport", max_per_class=None)
    assert fs.n_examples == len(dedupe_prompts(raw)) == 1680
    assert len(set(fs.texts)) == fs.n_examples
    assert fs.feature_names == ("baseball", "basketball", "football")
    assert (fs.labels.sum(axis=1) == 1).all() and fs.kind == "multiclass"
    assert (fs.example_pos == LAST_REAL_TOKEN).all()


def test_news_topic_uses_the_true_ag_news_names() -> None:
    """97_news_class shuffles AG News's label names; check each class by what its texts talk about."""
    fs = load_feature_set("news_topic", max_per_class=300)
    assert fs.feature_names == ("Business", "Sci/Tech", "Sports", "World")
    vocabulary = {
        "Business": ("profit", "shares", "stock", "company", "oil", "market", "sales"),
        "Sci/Tech": ("software", "internet", "computer", "microsoft", "web", "space", "scientists"),
        "Sports": ("game", "season", "team", "coach", "win", "cup", "league"),
        "World": ("president", "minister", "killed", "government", "iraq", "police", "election"),
    }
    for topic, words in vocabulary.items():
        rates = {
            name: np.mean([any(w in t.lower() for w in words) for t, yes in zip(fs.texts, fs.labels[:, f]) if yes])
            for f, name in enumerate(fs.feature_names)
        }
        assert max(rates, key=rates.get) == topic, rates


def test_last_real_token_is_before_sep(minilm) -> None:
    encoded = encode(minilm.tokenizer, ["Charlie Garner", "Shin-Soo Choo plays"])
    tokens = [minilm.tokenizer.convert_ids_to_tokens(row) for row in encoded["input_ids"]]
    assert tokens[0][encoded["last_real"][0]] == "garner"
    assert tokens[1][encoded["last_real"][1]] == "plays"
    assert tokens[0][encoded["last_real"][0] + 1] == "[SEP]"


def test_text_features_report_capitals_as_unexpressible_under_an_uncased_tokenizer(minilm) -> None:
    fs = load_feature_set("text_features", tokenizer=minilm.tokenizer, texts_per_source=20, examples_per_feature=200)
    for feature in ("contains_capital", "leading_capital", "all_capitals"):
        assert feature not in fs.feature_names
        assert "uncased" in fs.notes[feature]
    assert "has_leading_space" in fs.feature_names and "contains_digit" in fs.feature_names
    positives = (fs.labels & fs.mask).sum(axis=0) / fs.mask.sum(axis=0)
    assert np.allclose(positives, 0.2, atol=0.02)
    assert fs.example_pos.min() >= 5  # [CLS] + the 4 skipped first tokens


def test_text_feature_positions_carry_their_labels(minilm) -> None:
    fs = load_feature_set("text_features", tokenizer=minilm.tokenizer, texts_per_source=10, examples_per_feature=100)
    from featgeom_core.data.text_features import text_feature_labels
    from featgeom_core.tokens import token_strings

    for i in range(0, fs.n_examples, max(1, fs.n_examples // 50)):
        token = token_strings(minilm.tokenizer, fs.texts[fs.example_text[i]], max_tokens=64)[fs.example_pos[i]]
        labels = text_feature_labels(token)
        assert [labels[f] for f in fs.feature_names] == list(fs.labels[i])


def test_a_valid_csv_becomes_a_feature_set() -> None:
    rows = "\n".join(f"item {i},{'cat' if i % 2 else 'dog'}" for i in range(12))
    fs = feature_set_from_csv(f"text,label\n{rows}\n", name="pets.csv")
    assert fs.feature_names == ("cat", "dog") and fs.n_examples == 12


def test_csv_positions_are_parsed() -> None:
    rows = "\n".join(f"item {i},{'a' if i % 2 else 'b'},{i % 3}" for i in range(12))
    fs = feature_set_from_csv(f"text,label,position\n{rows}\n")
    assert list(fs.example_pos[:3]) == [0, 1, 2]


@pytest.mark.parametrize(
    "content,message",
    [
        ("words,label\nhello,a\n", "missing the column"),
        ("text,label\n" + "hi,a\n" * 10, "only one class"),
        ("text,label\nhello,a\n ,b\nx,a\ny,b\n", "empty text in row"),
        ("text,label\n", "no rows"),
        ("text,label,position\n" + "hi,a,1\nho,b,x\n" * 4, "position must be an integer"),
        ("text,label\n" + "hi,a\n" * 5 + "ho,b\n", "only 1 row"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
    ],
)
def test_malformed_csv_gets_a_message_naming_the_problem(content, message: str) -> None:
    with pytest.raises(DataError, match=message):
        feature_set_from_csv(content)


def test_unknown_feature_set_names_the_choices() -> None:
    with pytest.raises(DataError, match="athlete_sport"):
        load_feature_set("no_such_set")
