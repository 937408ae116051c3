"""The hashed character n-gram bag of planner and policy (model/ngrams.py)."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config
from gestalt_jax.model import ngrams
from gestalt_jax.model.policy import build_policy
from gestalt_jax.text import bytes as byte_tok

BUCKETS = 1000


def _reference(text: str, n: int) -> collections.Counter:
    """fastText-style n-grams of " " + lowercased text + " ", hashed with FNV-1a seeded by n."""
    framed = b" " + text.lower().encode("utf-8") + b" "
    out = collections.Counter()
    for i in range(len(framed) - n + 1):
        h = (0x811C9DC5 + n) & 0xFFFFFFFF
        for byte in framed[i: i + n]:
            h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
        out[h % BUCKETS] += 1
    return out


def _device(ids_BxL, n):
    ids = jnp.asarray(ids_BxL)
    buckets, counts, _ = ngrams.ngram_buckets(jnp.pad(ids, ((0, 0), (0, 1))), jnp.pad(ids < 256, ((0, 0), (0, 1))),
                                           n, BUCKETS)
    return [collections.Counter(np.asarray(b)[np.asarray(c)].tolist()) for b, c in zip(buckets, counts)]


@pytest.mark.parametrize("n", ngrams.ORDERS)
def test_buckets_match_a_reference_and_ignore_padding(n):
    texts = ["grep for parse_config", "Hi", "ünïcode & emoji 🚀 in ./src/a.py"]
    got = _device(byte_tok.encode_left(texts, 48), n)
    for text, counter in zip(texts, got):
        assert counter == _reference(text, n), text


def test_buckets_fold_ascii_case():
    upper, lower = _device(byte_tok.encode_left(["RUN THE Tests", "run the tests"], 20), 4)
    assert upper == lower


def _bag(pool):
    c = config.base()
    return ngrams.NgramBag(BUCKETS, build_policy(c).cfg, pool=pool)


def test_bag_depends_on_the_text_only_and_sees_each_ngram():
    bag = _bag("row")
    short = byte_tok.encode_left(["list the files in src"], 32)
    long = byte_tok.encode_left(["list the files in src"], 64)
    other = byte_tok.encode_left(["list the files in lib"], 32)
    params = bag.init(jax.random.key(0), jnp.asarray(short), jnp.asarray(short) < 256)
    out = [bag.apply(params, jnp.asarray(x), jnp.asarray(x) < 256) for x in (short, long, other)]
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)
    assert not np.allclose(out[0], out[2], atol=1e-3)


@pytest.mark.parametrize("pool", ["prefix", "position"])
def test_bag_at_each_position_ignores_what_follows(pool):
    bag = _bag(pool)
    a = np.array([list(b"search for foo then read it".ljust(40, b" "))])
    b = a.copy()
    b[0, 20:] = ord("x")
    text_a, text_b = jnp.asarray(a < 256), jnp.asarray(b < 256)
    params = bag.init(jax.random.key(0), jnp.asarray(a), text_a)
    out_a = bag.apply(params, jnp.asarray(a), text_a)
    out_b = bag.apply(params, jnp.asarray(b), text_b)
    np.testing.assert_allclose(out_a[:, :20], out_b[:, :20], atol=1e-5)
    assert not np.allclose(out_a[:, 25:], out_b[:, 25:], atol=1e-3)
