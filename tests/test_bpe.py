"""BPE tokenizer: exact round trip, the byte id layout, determinism, compression, I/O errors."""

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from gestalt_jax.text import bpe
from gestalt_jax.text import bytes as byte_tok

REPO = Path(__file__).resolve().parents[1]
MERGES = 200

SUBJECTS = [
    "The build", "Our test suite", "The new parser", "This function", "The memory index",
    "The planner", "A small patch", "The release branch", "The training run", "The server",
    "Every request", "The documentation", "The search tool", "The last commit", "The config file",
]
PREDICATES = [
    "failed again after the last change", "passes on every platform we support",
    "is slower than it should be", "needs a careful review before merging",
    "handles empty input without crashing", "was rewritten from scratch last week",
    "depends on a library nobody maintains", "returns the wrong answer for negative numbers",
    "should be split into smaller pieces", "works, but only on Tuesdays",
    "prints a warning that nobody reads", "reads the whole file into memory",
    "is finally covered by a regression test", "keeps the old behaviour for now",
]
ENDINGS = ["", " Let me know what you think.", " I will look into it tomorrow.", " Thanks for checking!"]
# 15 x 14 x 4 = 840 English-like sentences; every other one trains, the rest measure.
CORPUS = [f"{s} {p}.{e}" for s, p, e in itertools.product(SUBJECTS, PREDICATES, ENDINGS)]
TRAIN, HELD_OUT = CORPUS[::2], CORPUS[1::2]

VARIED = [
    "hello, world",
    "Ça va? Déjà vu, naïve façade, Zürich, smørrebrød",
    "ship it 🚀🎉 now 👩‍💻🏳️‍🌈",
    "修复测试 and 日本語のテキスト, 한국어",
    "def f(x):\n\treturn x + 1  # tab\r\n",
    "trailing spaces   \n\n\n   leading and \t\t mixed \x0b\x0c whitespace   ",
    "",
    " ",
    "<|eos|>",
    "<|pad|>",
    "say <|bos|>hi<|eos|> then <|pad|><|pad|>",
    "\x00\x01\x7f control bytes",
    "The build failed again after the last change. Thanks for checking!",
]


@pytest.fixture(scope="module")
def tok() -> bpe.BpeTokenizer:
    return bpe.train(TRAIN, MERGES)


@pytest.fixture(scope="module")
def reloaded(tok, tmp_path_factory) -> bpe.BpeTokenizer:
    return bpe.load(tok.save(tmp_path_factory.mktemp("tok")).parent)


@pytest.mark.parametrize("text", VARIED)
def test_round_trip_is_exact_before_and_after_save(tok, reloaded, text):
    for t in (tok, reloaded):
        ids = t.encode(text)
        assert t.decode(ids) == text
        assert all(0 <= i < t.vocab_size for i in ids)
    assert reloaded.encode(text) == tok.encode(text)


def test_special_strings_in_text_are_not_special_ids(tok, reloaded):
    for t in (tok, reloaded):
        for text in ("<|eos|>", "<|pad|>", "<|bos|>"):
            ids = t.encode(text)
            assert not {byte_tok.PAD, byte_tok.BOS, byte_tok.EOS} & set(ids)
            assert t.decode(ids) == text


def test_batch_encode_matches_single(tok):
    assert tok.encode_batch(VARIED) == [tok.encode(t) for t in VARIED]


def test_byte_ids_are_bytes_and_merges_follow_specials(tok, reloaded):
    for t in (tok, reloaded):
        assert t.vocab_size == byte_tok.VOCAB_SIZE + MERGES
        # Rare characters the corpus never merged fall back to their UTF-8 bytes.
        for text in ("\x00", "\x7f", "~", "\U0001F9EA"):
            assert t.encode(text) == byte_tok.encode(text)
        assert t.decode(range(256)) == byte_tok.decode(range(256))
        ids = t.encode(" ".join(HELD_OUT[:20]))
        learned = [i for i in ids if i >= 256]
        assert learned and all(byte_tok.VOCAB_SIZE <= i < t.vocab_size for i in learned)


def test_decode_skips_pad_bos_and_stops_at_eos(tok):
    ids = tok.encode("ship it")
    assert tok.decode([byte_tok.BOS, *ids, byte_tok.PAD, byte_tok.EOS, *tok.encode("junk")]) == "ship it"
    # Ids past the vocabulary (a head sized for more merges) are skipped, not fatal.
    assert tok.decode(np.array([*ids, tok.vocab_size + 5])) == "ship it"


def test_compression_on_held_out_english(tok):
    ratio = tok.compression(HELD_OUT)
    assert ratio > 1.5
    assert bpe.train(TRAIN, 0).compression(HELD_OUT) == 1.0


def test_deterministic_across_processes(tmp_path):
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(TRAIN))
    script = (
        "import json, sys\n"
        "from gestalt_jax.text import bpe\n"
        "bpe.train(json.load(open(sys.argv[1])), int(sys.argv[2])).save(sys.argv[3])\n"
    )
    saved = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, str(corpus), str(MERGES), str(out)],
                       check=True, env=env, cwd=REPO)
        saved.append((out / bpe.FILENAME).read_bytes())
    assert saved[0] == saved[1]
    assert len(json.loads(saved[0])["model"]["merges"]) >= MERGES


def test_small_corpus_warns_and_keeps_what_it_learned():
    with pytest.warns(UserWarning, match=r"learned \d+ of 500 merges"):
        small = bpe.train(["abab abab", "cdcd"], 500)
    assert byte_tok.VOCAB_SIZE < small.vocab_size < byte_tok.VOCAB_SIZE + 500
    assert small.decode(small.encode("abab cdcd")) == "abab cdcd"


def test_decoder_pair_shifts_and_weights(tok):
    texts = ["ship it", "", " ".join(HELD_OUT[:3])]
    length = 16
    inputs, targets, weights = bpe.decoder_pair(tok, texts, length)
    assert inputs.shape == targets.shape == weights.shape == (3, length)
    assert inputs.dtype == targets.dtype == np.int32 and weights.dtype == np.float32

    ids = tok.encode("ship it")
    n = len(ids)
    assert list(inputs[0, : n + 1]) == [byte_tok.BOS, *ids]
    assert list(targets[0, : n + 1]) == [*ids, byte_tok.EOS]
    assert (inputs[0, n + 1 :] == byte_tok.PAD).all() and (targets[0, n + 1 :] == byte_tok.PAD).all()
    assert list(weights[0]) == [1.0] * (n + 1) + [0.0] * (length - n - 1)
    np.testing.assert_array_equal(inputs[:, 1:], np.where(targets[:, :-1] == byte_tok.EOS, byte_tok.PAD,
                                                          targets[:, :-1]))

    # Empty text: BOS predicts EOS, nothing else is weighted.
    assert inputs[1, 0] == byte_tok.BOS and targets[1, 0] == byte_tok.EOS and weights[1].sum() == 1.0

    # Too long: truncated at the end, no EOS, every position weighted.
    long_ids = tok.encode(texts[2])
    assert len(long_ids) > length
    assert list(targets[2]) == long_ids[:length] and weights[2].sum() == length


def test_load_missing_or_foreign_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere" / bpe.FILENAME))):
        bpe.load(tmp_path / "nowhere")

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / bpe.FILENAME).write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(garbage / bpe.FILENAME))):
        bpe.load(garbage)

    # A stock byte-level BPE: valid tokenizer.json, but its ids 0-255 are not the bytes.
    stock = Tokenizer(models.BPE())
    stock.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    stock.train_from_iterator(TRAIN, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    stock.save(str(foreign / bpe.FILENAME))
    message = f"{foreign / bpe.FILENAME} is not a gestalt BPE tokenizer"
    with pytest.raises(ValueError, match=re.escape(message)):
        bpe.load(foreign)
