"""chrF (Popović 2015), matching sacrebleu's `CHRF()` with its defaults, on its 0-100 scale.

Character n-grams of orders 1-6 with all whitespace removed first, no word n-grams (plain chrF,
not chrF++), beta = 2, case kept, one reference per hypothesis. Precision and recall are each
averaged over the "effective" orders -- those where both sides have at least one n-gram -- and
only then combined into one F-beta; this is sacrebleu's default (eps_smoothing=False), not the
per-order F averaging of chrF++.py. A corpus score sums the per-order counts over all
sentences before computing that single F, so it is not a mean of sentence scores.
"""

from collections import Counter
from typing import Sequence

CHAR_ORDER = 6
BETA = 2


def _char_ngrams(text: str) -> list[Counter]:
    """Counters of the character n-grams of orders 1..CHAR_ORDER, whitespace dropped."""
    # str.split() with no argument splits on every Unicode whitespace, as sacrebleu's does.
    chars = "".join(text.split())
    return [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, CHAR_ORDER + 1)]


def _statistics(hypothesis: str, reference: str) -> list[int]:
    """[hyp n-grams, ref n-grams, matched n-grams] for each order, flattened: 3 * CHAR_ORDER ints."""
    stats = []
    for hyp, ref in zip(_char_ngrams(hypothesis), _char_ngrams(reference)):
        matched = sum(min(count, ref[gram]) for gram, count in hyp.items() if gram in ref)
        # sacrebleu counts no hypothesis n-grams of an order the reference is too short to have;
        # summed over a corpus this keeps such sentences out of that order's precision.
        stats += [sum(hyp.values()) if ref else 0, sum(ref.values()), matched]
    return stats


def _f_score(stats: Sequence[int]) -> float:
    """F-beta of the precision and recall averaged over the orders both sides reach, times 100."""
    precision = recall = 0.0
    effective_order = 0
    for i in range(CHAR_ORDER):
        n_hyp, n_ref, n_match = stats[3 * i:3 * i + 3]
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            effective_order += 1
    if effective_order == 0:
        return 0.0
    precision /= effective_order
    recall /= effective_order
    if precision + recall == 0:
        return 0.0
    factor = BETA ** 2
    # Same operation order as sacrebleu, so scores agree to the last bit rather than to 1e-15.
    score = (1 + factor) * precision * recall / (factor * precision + recall)
    return 100 * score


def sentence_chrf(hypothesis: str, reference: str) -> float:
    """chrF of one hypothesis against one reference, 0-100."""
    return _f_score(_statistics(hypothesis, reference))


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """chrF of a corpus: n-gram counts summed over the aligned sentence pairs, then one F, 0-100."""
    if len(hypotheses) != len(references):
        raise ValueError(f"corpus_chrf: {len(hypotheses)} hypotheses but {len(references)} references; "
                         "they must be aligned one to one")
    totals = [0] * (3 * CHAR_ORDER)
    for hypothesis, reference in zip(hypotheses, references):
        totals = [t + s for t, s in zip(totals, _statistics(hypothesis, reference))]
    return _f_score(totals)
