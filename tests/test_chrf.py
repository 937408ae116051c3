"""chrF: the fixed points (identical, disjoint, empty) and agreement with sacrebleu's numbers."""

import pytest

from gestalt_jax.evals.chrf import corpus_chrf, sentence_chrf

# Reference scores from sacrebleu 2.6.0, `from sacrebleu.metrics import CHRF; chrf = CHRF()` (defaults:
# char_order=6, word_order=0, beta=2, whitespace=False, eps_smoothing=False), computed as
# `chrf.sentence_score(hyp, [ref]).score` and `chrf.corpus_score(hyps, [refs]).score`.
SENTENCES = [
    ("The cat sat on the mat.", "The cat is sitting on the mat.", 49.6485170311433),
    ("Grüße aus Köln, schöne Straße!", "Grüße aus Köln — schöne Straßen!", 78.20442952197817),
    ("東京は日本の首都です", "日本の首都は東京です", 41.56746031746031),
    ("the the the the the", "the cat", 16.360086578466408),
    ("Hi!", "Hi there!", 19.863013698630134),
    # By hand: orders 1-3 give P = R = 2/3, 1/2, 0 and orders 4-6 have no n-grams, so P = R = 7/18.
    ("abc", "abd", 38.888888888888886),
    ("Well... okay?! (maybe)", "Well, okay (maybe).", 49.988963689108644),
    ("A much longer hypothesis that keeps going and going past the reference.", "A short reference.",
     37.36038362053149),
    ("tab\tand  newline\nspaces", "tab and newline spaces", 100.0),
    ("ab", "abcdefgh", 23.404255319148938),
]
CORPUS_HYPS = ["Hello world!", "It is raining today.", "ok", "Die Katze schläft.", "numbers 1 2 3 4"]
CORPUS_REFS = ["Hello, world!", "Today it rains.", "okay", "Die Katze schläft gerade.", "numbers 1 2 3"]
CORPUS_SCORE = 61.56102770979969


@pytest.mark.parametrize("text", ["The cat sat on the mat.", "Grüße, 東京!", "a", "ab cd"])
def test_identical_strings_score_100(text):
    assert sentence_chrf(text, text) == pytest.approx(100.0, abs=1e-9)
    assert corpus_chrf([text, text], [text, text]) == pytest.approx(100.0, abs=1e-9)


def test_disjoint_strings_score_0():
    assert sentence_chrf("abc def", "xyz uvw") == 0.0
    assert corpus_chrf(["abc", "def"], ["xyz", "uvw"]) == 0.0


def test_empty_hypothesis_or_reference_scores_0():
    assert sentence_chrf("", "a reference") == 0.0
    assert sentence_chrf("a hypothesis", "") == 0.0
    assert sentence_chrf("", "") == 0.0
    assert sentence_chrf("   \t\n", "a reference") == 0.0


@pytest.mark.parametrize("hyp, ref, expected", SENTENCES)
def test_sentence_matches_sacrebleu(hyp, ref, expected):
    assert sentence_chrf(hyp, ref) == pytest.approx(expected, abs=1e-6)


def test_corpus_matches_sacrebleu():
    score = corpus_chrf(CORPUS_HYPS, CORPUS_REFS)
    assert score == pytest.approx(CORPUS_SCORE, abs=1e-6)
    # Statistics are pooled before the F-score, so the corpus score is not the sentence mean.
    mean = sum(map(sentence_chrf, CORPUS_HYPS, CORPUS_REFS)) / len(CORPUS_HYPS)
    assert abs(score - mean) > 0.5  # 61.56 pooled against a 60.80 mean


def test_corpus_pools_an_empty_hypothesis_into_recall():
    # Recall halves and precision stays 1, where the sentence mean would be 50. sacrebleu 2.6.0:
    # chrf.corpus_score(["", "abc"], [["abc", "abc"]]).score
    assert corpus_chrf(["", "abc"], ["abc", "abc"]) == pytest.approx(55.55555555555556, abs=1e-6)


def test_corpus_ignores_hypothesis_ngrams_of_orders_a_short_reference_lacks():
    # "xyzxyzxyz" against "xy" adds no 3- to 6-gram hypothesis counts, as in sacrebleu, so precision at
    # those orders comes from the first pair alone. sacrebleu 2.6.0:
    # chrf.corpus_score(["abcdefghij", "xyzxyzxyz"], [["abcdefghij", "xy"]]).score
    assert corpus_chrf(["abcdefghij", "xyzxyzxyz"], ["abcdefghij", "xy"]) == pytest.approx(
        97.09744298548722, abs=1e-6)


def test_corpus_rejects_misaligned_lists():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_chrf(["a", "b"], ["a"])
