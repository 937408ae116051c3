"""The serving engine: batched, streamed, reproducible generation on one worker thread."""

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config
from gestalt_jax.infer import compiles
from gestalt_jax.infer.engine import Delta, Done, Engine, QueueFull, Request, _Reply
from gestalt_jax.infer.generate import generate, generate_text
from gestalt_jax.infer.sampling import Sampling
from gestalt_jax.model.brain import build_brain
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text.bytes import EOS

TIER = config.load_tier("test")
DEC_LEN = TIER.brain.dec_len
CHUNK = 8
PROMPTS = ["what is a mutex?", "hi", "please list the files in src"]
# The engine's greedy rows take the argmax of the n-gram-penalised logits, exactly what `generate`
# does at temperature 0 with config.gen's n-gram settings (top_k and top_p do not act on an argmax).
# With max_new = dec_len, `generate` builds the same RoPE tables and cache length as the engine, so
# both compute the same logits and the comparison is exact, penalty and all.
GREEDY = Sampling(temperature=0.0, ngram=TIER.gen.ngram, ngram_penalty=TIER.gen.ngram_penalty)
WAIT = 120  # seconds any event may take: a broken engine fails a test instead of hanging it
PIECES = [b"\xe2\x82", b"\xac", b"\xc3", b"\xa9", b"a"]  # "€" and "é" cut in two, and "a"


def pieces_decode(ids):
    """A decode whose tokens are mostly parts of characters: a token can end mid-character."""
    ids = [int(i) for i in ids]
    ids = ids[:ids.index(EOS)] if EOS in ids else ids
    return b"".join(PIECES[i % len(PIECES)] for i in ids).decode("utf-8", errors="replace")


class Decode:
    """The engine's decode: `fn` (bytes.decode by default). `hold()` parks the worker in its next call
    until `release` is set; `fail` makes the next call raise."""

    def __init__(self):
        self.fn, self.fail = byte_tok.decode, None
        self.entered, self.release = threading.Event(), threading.Event()
        self.release.set()

    def hold(self):
        self.entered.clear()
        self.release.clear()

    def __call__(self, ids):
        if not self.release.is_set():
            self.entered.set()
            self.release.wait()
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        return self.fn(ids)


@pytest.fixture(scope="module")
def brain_params():
    brain = build_brain(TIER)
    enc = jnp.asarray(byte_tok.encode_left(["x"], TIER.brain.enc_len))
    dec, _, _ = byte_tok.decoder_pair(["y"], DEC_LEN)
    memory = jnp.zeros((1, TIER.brain.mem_k, TIER.brain.d_model))  # creates the memory path's params
    params = nn.meta.unbox(jax.jit(brain.init)(jax.random.key(0), enc, dec, memory)["params"])
    # A trained memory projection has a bias (init: zeros), so the engine's rows without memory must
    # get a zero memory after the projection, not a projected zero: this makes that tell.
    bias = params["memory_proj"]["bias"]
    params["memory_proj"]["bias"] = jax.random.normal(jax.random.key(2), bias.shape, bias.dtype)
    return brain, params


@pytest.fixture(scope="module")
def memory():
    return np.asarray(jax.random.normal(jax.random.key(1), (TIER.brain.mem_k, TIER.brain.d_model)) * 10)


@pytest.fixture(scope="module")
def reference(brain_params, memory):
    """`generate`'s greedy ids [len(PROMPTS), dec_len], and the first prompt's with `memory`."""
    brain, params = brain_params
    plain = generate(brain, params, PROMPTS, DEC_LEN, GREEDY)
    with_memory = generate(brain, params, PROMPTS[:1], DEC_LEN, GREEDY, memory_BxKxD=memory[None])
    return plain, with_memory[0]


@pytest.fixture(scope="module")
def served(brain_params):
    """A warmed-up engine with batch sizes 1 and 4, and its Decode."""
    brain, params = brain_params
    decode = Decode()
    engine = Engine(brain, params, decode, TIER, batch_sizes=(1, 4), max_queue=16, chunk=CHUNK)
    engine.warmup()
    assert engine.compiles == 4  # prefill and chunk, per batch size
    yield engine, decode
    engine.close()


@contextlib.contextmanager
def worker_busy(engine, decode):
    """Park the worker inside a one-row batch: what is submitted meanwhile waits, then goes in
    batches as large as allowed, whatever the timing."""
    decode.hold()
    blocker = engine.submit(Request("hold on", max_tokens=2, temperature=0.0))
    assert decode.entered.wait(60)
    try:
        yield
    finally:
        decode.release.set()
    blocker.result(WAIT)


def _streamed(handle):
    events = list(handle.events(WAIT))
    assert all(isinstance(e, Delta) for e in events[:-1]) and isinstance(events[-1], Done)
    return "".join(e.text for e in events[:-1]), events[-1]


async def _async_streamed(handle):
    events = [e async for e in handle.aevents()]
    return "".join(e.text for e in events[:-1]), events[-1]


def test_a_seeded_request_gives_the_same_text_alone_batched_and_streamed(served):
    engine, decode = served
    request = Request(PROMPTS[0], max_tokens=60, temperature=1.0, top_p=0.9, seed=7)
    alone, done = _streamed(engine.submit(request))
    assert done.finish_reason in ("stop", "length") and alone
    before = engine.stats()
    with worker_busy(engine, decode):
        others = [engine.submit(Request(p, max_tokens=60, temperature=0.7, seed=s)) for s, p in enumerate(PROMPTS[1:])]
        others.append(engine.submit(Request("and one greedy", max_tokens=20, temperature=0.0)))
        mine = engine.submit(request)
    batched, _ = mine.result(WAIT)
    for other in others:
        other.result(WAIT)
    after = engine.stats()
    assert (after["batches"] - before["batches"], after["rows"] - before["rows"]) == (2, 5)  # blocker, then 4
    in_async, _ = asyncio.run(asyncio.wait_for(_async_streamed(engine.submit(request)), WAIT))
    assert alone == batched == in_async
    request.seed = 8
    assert engine.submit(request).result(WAIT)[0] != alone


def test_greedy_replies_are_generate_texts_with_and_without_memory(brain_params, served, reference, memory):
    brain, params = brain_params
    engine, decode = served
    plain, with_memory = reference
    with worker_busy(engine, decode):  # rows with and without memory in one batch
        handles = [engine.submit(Request(p, max_tokens=DEC_LEN, temperature=0.0)) for p in PROMPTS]
        handles.append(engine.submit(Request(PROMPTS[0], max_tokens=DEC_LEN, temperature=0.0, memory=memory)))
    got = [_streamed(h) for h in handles]
    want = (generate_text(brain, params, PROMPTS, DEC_LEN, sampling=GREEDY)
            + generate_text(brain, params, PROMPTS[:1], DEC_LEN, sampling=GREEDY, memory_BxKxD=memory[None]))
    assert [text for text, _ in got] == want
    assert want[0] != want[3], "memory should change the reply"
    for (_, done), ids in zip(got, [*plain, with_memory]):
        ended = EOS in list(ids)
        assert done.finish_reason == ("stop" if ended else "length")
        assert done.completion_tokens == (list(ids).index(EOS) if ended else DEC_LEN)


def test_max_tokens_ends_the_reply_with_length(served, reference):
    engine, _ = served
    plain, _ = reference
    text, done = engine.submit(Request(PROMPTS[1], max_tokens=5, temperature=0.0)).result(WAIT)
    assert done == Done("length", prompt_tokens=len(PROMPTS[1]), completion_tokens=5)
    assert text == byte_tok.decode(plain[1][:5])
    with pytest.raises(ValueError, match="max_tokens"):
        engine.submit(Request("x", max_tokens=0))


def test_a_stop_string_cuts_the_reply(served):
    engine, _ = served
    request = Request(PROMPTS[2], max_tokens=80, temperature=1.0, seed=3)
    full, _ = engine.submit(request).result(WAIT)
    # Three characters from the middle of the reply, none of them a replacement character.
    start = next(i for i in range(20, len(full) - 3) if "\ufffd" not in full[i:i + 3])
    stop = full[start:start + 3]
    request.stop = ["never in it \u2603", stop]
    events = list(engine.submit(request).events(WAIT))
    text = "".join(e.text for e in events[:-1])
    assert text == full[:full.index(stop)] and events[-1].finish_reason == "stop"
    assert events[-1].completion_tokens < 80


def test_cancel_ends_the_request_and_the_worker_serves_the_next(served):
    engine, decode = served
    before = engine.stats()["tokens"]
    decode.hold()
    handle = engine.submit(Request(PROMPTS[0], max_tokens=DEC_LEN, temperature=0.0))
    assert decode.entered.wait(60)  # the worker is past its first chunk
    handle.cancel()
    decode.release.set()
    events = list(handle.events(WAIT))
    assert len(events) == 1 and events[0].finish_reason == "cancelled"
    assert handle.done == events[0]
    text, done = engine.submit(Request(PROMPTS[1], max_tokens=12, temperature=0.0)).result(WAIT)
    assert done.finish_reason == "length" and text
    assert engine.stats()["tokens"] - before == CHUNK + 12  # the cancelled row ran one chunk only


def test_an_error_ends_the_batch_and_the_worker_serves_the_next(served):
    engine, decode = served
    decode.fail = RuntimeError("tokenizer broke")
    text, done = engine.submit(Request(PROMPTS[0], max_tokens=10, temperature=0.0)).result(WAIT)
    assert (text, done.finish_reason, done.error) == ("", "error", "RuntimeError: tokenizer broke")
    assert engine.submit(Request(PROMPTS[0], max_tokens=10, temperature=0.0)).result(WAIT)[1].finish_reason == "length"


def test_a_full_queue_refuses_requests(served):
    engine, decode = served
    with worker_busy(engine, decode):
        waiting = [engine.submit(Request("x", max_tokens=4)) for _ in range(16)]
        with pytest.raises(QueueFull):
            engine.submit(Request("x", max_tokens=4))
        assert engine.stats()["queue"] == 16
        for handle in waiting:
            handle.cancel()
        assert engine.stats()["queue"] == 0
    assert all(h.result(WAIT)[1].finish_reason == "cancelled" for h in waiting)


def test_concurrent_requests_run_in_batches_without_compiling(served):
    engine, decode = served
    before = engine.stats()
    with compiles.counted() as compiled:
        with worker_busy(engine, decode), ThreadPoolExecutor(16) as pool:
            handles = list(pool.map(lambda i: engine.submit(Request(f"question {i}", max_tokens=16, seed=i)),
                                    range(16)))
        results = [h.result(WAIT) for h in handles]
    after = engine.stats()
    assert all(done.finish_reason in ("stop", "length") for _, done in results)
    batches, rows = after["batches"] - before["batches"] - 1, after["rows"] - before["rows"] - 1  # less the blocker
    assert rows == 16 and rows / batches > 1, (rows, batches)
    assert sum(compiled.values()) == 0 and engine.compiles == before["compiles"] == 4, dict(compiled)


def test_deltas_never_split_a_character():
    text = "aé€😀 and a stop: STOP"
    reply = _Reply(lambda ids: bytes(i for i in ids if i < 256).decode("utf-8", errors="replace"), ["STOP"], 100)
    deltas = [reply.feed([b]) for b in text.encode("utf-8")]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == "aé€😀 and a stop: " and reply.finish == "stop"
    assert deltas[:4] == ["a", "", "é", ""]  # each character once its last byte arrived
    assert "".join(deltas[:-3]) == "aé€😀 and a stop: "  # "STO" was held back: it might have begun "STOP"


def test_streamed_characters_cut_between_tokens_come_out_whole(served, reference):
    engine, decode = served
    plain, _ = reference
    decode.fn = pieces_decode
    try:
        events = list(engine.submit(Request(PROMPTS[0], max_tokens=DEC_LEN, temperature=0.0)).events(WAIT))
    finally:
        decode.fn = byte_tok.decode
    deltas = [e.text for e in events[:-1]]
    assert len(deltas) > 2 and "".join(deltas) == pieces_decode(plain[0])
    assert all(not d.endswith("\ufffd") for d in deltas[:-1])  # only the end may hold a cut character


def test_close_cancels_what_waits_and_runs(brain_params):
    brain, _ = brain_params
    enc = jnp.asarray(byte_tok.encode_left(["x"], TIER.brain.enc_len))
    dec, _, _ = byte_tok.decoder_pair(["y"], DEC_LEN)
    params = nn.meta.unbox(jax.jit(brain.init)(jax.random.key(0), enc, dec)["params"])  # no memory path
    decode = Decode()
    engine = Engine(brain, params, decode, TIER, batch_sizes=(1,), chunk=CHUNK)
    with pytest.raises(ValueError, match="no memory path"):
        engine.submit(Request("a", max_tokens=4, memory=np.zeros((1, TIER.brain.d_model))))
    decode.hold()
    running = engine.submit(Request("a", max_tokens=DEC_LEN, temperature=0.0))
    assert decode.entered.wait(120)  # compiled on first use: this engine had no warmup
    waiting = engine.submit(Request("b", max_tokens=4))
    closer = threading.Thread(target=engine.close)
    closer.start()
    assert waiting.result(WAIT)[1].finish_reason == "cancelled"  # close() has begun
    decode.release.set()
    closer.join(WAIT)
    assert running.result(WAIT)[1].finish_reason == "cancelled" and not closer.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        engine.submit(Request("c", max_tokens=4))
