"""The 11 token-level labellers on a table of token strings."""

import pytest

from featgeom_core.data import TEXT_FEATURES, text_feature_labels

# token -> the set of features that are True for it (every other feature must be False)
CASES: dict[str, set[str]] = {
    " the": {"contains_whitespace", "has_leading_space"},
    "the": {"no_leading_space_and_loweralpha"},
    "ing": {"no_leading_space_and_loweralpha"},
    " The": {"contains_capital", "leading_capital", "contains_whitespace", "has_leading_space"},
    "The": {"contains_capital", "leading_capital"},
    " NASA": {"contains_capital", "leading_capital", "all_capitals", "contains_whitespace", "has_leading_space"},
    "USA": {"contains_capital", "leading_capital", "all_capitals"},
    " I": {"contains_capital", "leading_capital", "contains_whitespace", "has_leading_space"},
    "A": {"contains_capital", "leading_capital"},
    "42": {"contains_digit", "all_digits"},
    " 1999": {"contains_digit", "all_digits", "contains_whitespace", "has_leading_space"},
    "3rd": {"contains_digit"},
    " 3D": {"contains_digit", "contains_capital", "contains_whitespace", "has_leading_space"},
    " ": {"contains_whitespace", "has_leading_space", "contains_all_whitespace", "is_not_alphanumeric"},
    "\n\n": {"contains_whitespace", "contains_all_whitespace", "is_not_alphanumeric"},
    ".": {"is_not_alphanumeric"},
    " (": {"contains_whitespace", "has_leading_space", "is_not_alphanumeric"},
    "café": {"no_leading_space_and_loweralpha", "is_not_ascii"},
    " é": {"contains_whitespace", "has_leading_space", "is_not_ascii"},  # é is a word character
    "—": {"is_not_alphanumeric", "is_not_ascii"},
    "x_1": {"contains_digit"},
    "McDonald": {"contains_capital", "leading_capital"},
}


@pytest.mark.parametrize("token,expected", list(CASES.items()), ids=[repr(t) for t in CASES])
def test_labels_match_table(token: str, expected: set[str]) -> None:
    labels = text_feature_labels(token)
    assert set(labels) == set(TEXT_FEATURES)
    assert {name for name, value in labels.items() if value} == expected


def test_there_are_the_eleven_thesis_features() -> None:
    assert list(TEXT_FEATURES) == [
        "contains_digit",
        "all_digits",
        "contains_capital",
        "leading_capital",
        "all_capitals",
        "contains_whitespace",
        "has_leading_space",
        "no_leading_space_and_loweralpha",
        "contains_all_whitespace",
        "is_not_alphanumeric",
        "is_not_ascii",
    ]


def test_empty_token_has_no_feature() -> None:
    assert not any(text_feature_labels("").values())
