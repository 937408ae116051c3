"""The generation engine an OpenAI-compatible server drives: one JAX worker thread batches the
waiting requests and streams each reply's text back as it is decoded.

Callers never wait on JAX: `submit` only queues, and events come back through a thread-safe queue
(`Handle.events`) or the caller's asyncio loop (`Handle.aevents`). A batch is padded to the
smallest of `batch_sizes` that holds it, every program decodes up to dec_len tokens (its static
max_new) and each row's temperature, top_p, max_tokens and seed are arrays, so one prefill and one
chunk program per batch size serve every request (`warmup` compiles them up front). The cached
decode of infer/generate.py runs `chunk` tokens per device call; between calls the host decodes the
new text, matches stop strings and drops finished or cancelled rows. A batch runs until all its
rows have finished; requests that arrive meanwhile join the next one. A row draws token t with
fold_in(key(seed), t) from its own logits: a seeded request gets the same text alone or batched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import queue
import secrets
import threading
import time
from typing import AsyncIterator, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gestalt_jax.config import GREEDY_BELOW
from gestalt_jax.infer.generate import _cached, _conditioned
from gestalt_jax.infer.sampling import Sampling, _mask_pad, _penalise, _top_k, _top_p, repeated_ngram_tokens
from gestalt_jax.model.brain import Brain, LanguageDecoder
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text.bytes import EOS, PAD

REPLACEMENT = "\ufffd"  # what decoding puts for invalid UTF-8, and for a character cut between tokens


@dataclasses.dataclass
class Request:
    """One completion. `stop`: strings that end the reply (cut before them); `memory`: raw concept
    vectors [K, D] for the decoder's cross-attention (None: none). max_tokens is capped at dec_len."""
    prompt: str
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = dataclasses.field(default_factory=list)
    memory: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Delta:
    """New reply text: whole characters, and none that might begin a stop string."""
    text: str


@dataclasses.dataclass(frozen=True)
class Done:
    """A request's last event. finish_reason: "stop" (EOS or a stop string), "length" (max_tokens or
    dec_len), "cancelled" or "error" (`error` says why). Tokens: prompt bytes the encoder read and
    reply tokens decoded (EOS not counted)."""
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None


class QueueFull(RuntimeError):
    """max_queue requests already wait: the server should answer 429 / 503."""


class Handle:
    """A submitted request's events, Delta* then exactly one Done. Consume them once: `events`
    (blocking), `aevents` (asyncio) or `result`. Leaving either iterator early cancels the request."""

    def __init__(self, request: Request, prompt_tokens: int, seed: int, on_cancel: Callable[[Handle], None]):
        self.request, self.prompt_tokens, self.seed = request, prompt_tokens, seed
        self.completion_tokens = 0  # the worker's count so far: what Done("cancelled") reports
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._loop = None  # (loop, asyncio.Queue) once `aevents` runs: events go there instead
        self.done: Done | None = None  # the Done sent, once sent

    def _emit(self, event: Delta | Done) -> bool:
        """Deliver `event` unless Done went out already (False then: nobody wants more)."""
        with self._lock:
            if self.done is not None:
                return False
            if isinstance(event, Done):
                self.done = event
            if self._loop is None:
                self._events.put(event)
            else:
                loop, events = self._loop
                with contextlib.suppress(RuntimeError):  # a closed loop: its consumer is gone
                    loop.call_soon_threadsafe(events.put_nowait, event)
            return True

    def _finish(self, reason: str, error: str | None = None) -> bool:
        return self._emit(Done(reason, self.prompt_tokens, self.completion_tokens, error))

    def cancel(self) -> None:
        """Done("cancelled") now and nothing after it; the worker drops the row at its next chunk
        boundary (a waiting request leaves the queue). Nothing happens once the request is done."""
        if self._finish("cancelled"):
            self._on_cancel(self)

    def events(self, timeout: float | None = None) -> Iterator[Delta | Done]:
        """Blocking; TimeoutError (and the request cancelled) after `timeout` s without an event."""
        try:
            while True:
                try:
                    event = self._events.get(timeout=timeout)
                except queue.Empty:
                    raise TimeoutError(f"no event for {timeout} s") from None
                yield event
                if isinstance(event, Done):
                    return
        finally:
            self.cancel()

    async def aevents(self) -> AsyncIterator[Delta | Done]:
        """`events` for the asyncio loop running when this is first iterated."""
        events: asyncio.Queue = asyncio.Queue()
        with self._lock:
            while not self._events.empty():
                events.put_nowait(self._events.get_nowait())
            self._loop = (asyncio.get_running_loop(), events)
        try:
            while True:
                event = await events.get()
                yield event
                if isinstance(event, Done):
                    return
        finally:
            self.cancel()

    def result(self, timeout: float | None = None) -> tuple[str, Done]:
        """The whole reply and its Done (blocking; `timeout` as in `events`)."""
        events = list(self.events(timeout))
        return "".join(e.text for e in events[:-1]), events[-1]


class _Reply:
    """A row's text as its tokens arrive, and how much of it may be sent.

    New ids are decoded from the last point where the text ended on a whole character (`settled`):
    a tail ending in U+FFFD may be a character cut between tokens, so it waits for more tokens or
    the end of the reply. Stop strings are matched after every token, so the cut is the same for
    any chunk size; settled text that might begin a stop string waits until that is decided.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str], max_tokens: int):
        self.decode, self.stops, self.max_tokens = decode, [s for s in stops if s], max_tokens
        self.ids: list[int] = []
        self.settled, self.boundary, self.sent = "", 0, 0  # text of ids[:boundary]; chars sent
        self.finish: str | None = None

    def feed(self, ids_T) -> str:
        """The text to send after new tokens ids_T: all that is left once the reply has finished."""
        for token in ids_T:
            if self.finish is not None:
                break
            if token == EOS:
                self.finish = "stop"
                break
            self.ids.append(int(token))
            tail = self.decode(self.ids[self.boundary:])
            if not tail.endswith(REPLACEMENT):
                checked = len(self.settled)
                self.settled, self.boundary = self.settled + tail, len(self.ids)
                self._cut_at_stop(checked)
            if self.finish is None and len(self.ids) >= self.max_tokens:
                self.finish = "length"
        if self.finish is not None:  # the end: an unsettled tail goes out as decoded
            self.settled, self.boundary = self.settled + self.decode(self.ids[self.boundary:]), len(self.ids)
        end = len(self.settled) - (0 if self.finish else self._held())
        text, self.sent = self.settled[self.sent:end], end
        return text

    def _cut_at_stop(self, checked: int) -> None:
        """End the reply before the first stop string that text after `checked` completed."""
        found = [i for s in self.stops if (i := self.settled.find(s, max(0, checked - len(s) + 1))) >= 0]
        if found:
            self.settled, self.finish = self.settled[:min(found)], "stop"

    def _held(self) -> int:
        """Length of the longest end of the settled text that begins a stop string."""
        return max((k for s in self.stops for k in range(1, len(s)) if self.settled.endswith(s[:k])), default=0)


def _choose(logits_BxV, history_BxM, t, temperature_B, top_p_B, seeds_B, s: Sampling):
    """Next ids [B]: `sample`'s rule and order (n-gram penalty on the raw logits, temperature, top-k,
    top-p, PAD mask) with each row's own temperature, top_p and key fold_in(key(seed), t), so that a
    row's choice depends on nothing else in its batch: `sample` takes one key and a static top_p for
    the whole batch. Uses s.top_k, s.ngram and s.ngram_penalty; rows below GREEDY_BELOW take the
    argmax of the penalised logits, as `sample` does."""
    logits_BxV = logits_BxV.astype(jnp.float32)
    V = logits_BxV.shape[-1]
    if s.ngram >= 1 and s.ngram_penalty != 1.0:
        logits_BxV = _penalise(logits_BxV, repeated_ngram_tokens(history_BxM, t, s.ngram, V), s.ngram_penalty)
    best_B = jnp.argmax(_mask_pad(logits_BxV), axis=-1).astype(jnp.int32)
    logits_BxV = logits_BxV / jnp.maximum(temperature_B, GREEDY_BELOW)[:, None]
    sorted_BxV = -jnp.sort(-logits_BxV, axis=-1)
    if s.top_k >= 1:
        logits_BxV, sorted_BxV = _top_k(logits_BxV, sorted_BxV, min(s.top_k, V))
    logits_BxV = jnp.where(top_p_B[:, None] < 1.0, _top_p(logits_BxV, sorted_BxV, top_p_B[:, None]), logits_BxV)
    logits_BxV = _mask_pad(logits_BxV)
    keys_B = jax.vmap(lambda seed: jax.random.fold_in(jax.random.key(seed), t))(seeds_B)
    sampled_B = jax.vmap(jax.random.categorical)(keys_B, logits_BxV).astype(jnp.int32)
    sampled_B = jnp.where(jnp.all(logits_BxV == -jnp.inf, axis=-1), best_B, sampled_B)  # as `sample`
    return jnp.where(temperature_B < GREEDY_BELOW, best_B, sampled_B)


def _prefill(brain: Brain, max_new: int, params, enc_ids_BxL, memory_BxMxD, has_memory_B, seeds_B,
             temperature_B, top_p_B, max_tokens_B):
    """A new batch's decode state: the KV cache holding each row's concept prefix and BOS, the
    logits for token 0, and the rows' settings. A row with max_tokens 0 (padding) is done already."""
    prefix_BxNxD, memory_BxMxD, decoder = _conditioned(brain, params, enc_ids_BxL, memory_BxMxD)
    if memory_BxMxD is not None:
        # Cross-attention has no biases: all-zero projected memory adds exactly 0, as no memory does.
        memory_BxMxD = jnp.where(has_memory_B[:, None, None], memory_BxMxD, 0.0)
    cache, logits_BxV, _ = _cached(decoder, params["decoder"], prefix_BxNxD, memory_BxMxD, max_new)
    B = enc_ids_BxL.shape[0]
    return dict(cache=cache, logits_BxV=logits_BxV, prefix_BxNxD=prefix_BxNxD, memory_BxMxD=memory_BxMxD,
                out_BxM=jnp.full((B, max_new), PAD, jnp.int32), t=jnp.int32(0), done_B=max_tokens_B < 1,
                seeds_B=seeds_B, temperature_B=temperature_B, top_p_B=top_p_B, max_tokens_B=max_tokens_B)


def _chunk(brain: Brain, sampling: Sampling, max_new: int, chunk: int, params, state, finished_B):
    """Up to `chunk` more tokens (fewer once every row is done or at max_new): the new state, the
    tokens [B, chunk] (PAD for done rows and past the last step) and the tokens decoded so far.
    finished_B: rows the host ended (stop string, cancel, padding)."""
    # Only _cached's step is wanted here; the prefill it also builds is unused, and XLA drops it.
    _, _, step = _cached(LanguageDecoder(brain.dec, brain.dec_vocab), params["decoder"], state["prefix_BxNxD"],
                         state["memory_BxMxD"], max_new)

    def running(carry):
        i, s, _ = carry
        return (i < chunk) & (s["t"] < max_new) & ~jnp.all(s["done_B"])

    def body(carry):
        i, s, new_BxC = carry
        t = s["t"]
        chosen_B = _choose(s["logits_BxV"], s["out_BxM"], t, s["temperature_B"], s["top_p_B"], s["seeds_B"], sampling)
        token_B = jnp.where(s["done_B"], PAD, chosen_B)
        cache, logits_BxV = step(s["cache"], token_B, t)
        done_B = s["done_B"] | (token_B == EOS) | (t + 1 >= s["max_tokens_B"])
        s = dict(s, cache=cache, logits_BxV=logits_BxV, out_BxM=s["out_BxM"].at[:, t].set(token_B), t=t + 1,
                 done_B=done_B)
        return i + 1, s, new_BxC.at[:, i].set(token_B)

    state = dict(state, done_B=state["done_B"] | finished_B)
    new_BxC = jnp.full((finished_B.shape[0], chunk), PAD, jnp.int32)
    _, state, new_BxC = jax.lax.while_loop(running, body, (jnp.int32(0), state, new_BxC))
    return state, new_BxC, state["t"]


class Engine:
    """Batched, streamed generation on one worker thread (see the module docstring).

    brain/params: the Brain and its parameters (memory is accepted when they hold memory_proj);
    decode: the decoder tokenizer's ids -> text (TrainedBrain.decode, bytes.decode); config:
    top_k, ngram and ngram_penalty from config.gen, the reply length bound from config.brain.dec_len
    and the memory slots from config.brain.mem_k. batch_sizes: the compiled batch sizes; window_ms:
    how long the worker waits for more requests before starting a batch that is not full;
    max_queue: waiting requests beyond which `submit` raises QueueFull; chunk: tokens per device call.
    """

    def __init__(self, brain: Brain, params, decode: Callable[[Sequence[int]], str], config: ml_collections.ConfigDict,
                 *, batch_sizes: Sequence[int] = (1, 2, 4, 8, 16), window_ms: float = 5.0, max_queue: int = 256,
                 chunk: int = 8):
        if not batch_sizes or min(batch_sizes) < 1 or chunk < 1:
            raise ValueError(f"batch_sizes={batch_sizes}, chunk={chunk}: both must be >= 1")
        g = config.gen
        sampling = Sampling(top_k=g.top_k, ngram=g.ngram, ngram_penalty=g.ngram_penalty)
        self.max_new, self.max_queue, self.window_s = config.brain.dec_len, max_queue, window_ms / 1000
        self.batch_sizes = tuple(sorted(set(batch_sizes)))
        self._params, self._decode, self._brain = params, decode, brain
        self._memory_slots = config.brain.mem_k if "memory_proj" in params else None  # None: no memory path
        self._prefill = jax.jit(functools.partial(_prefill, brain, self.max_new))
        self._chunk = jax.jit(functools.partial(_chunk, brain, sampling, self.max_new, chunk), donate_argnums=1)
        self._programs: dict[tuple[int, int | None], tuple] = {}
        self._compile_lock = threading.Lock()
        self.compiles = 0  # XLA programs compiled: 2 per (batch size, memory slots)
        self._waiting: collections.deque[Handle] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._batches = self._rows = self._tokens = 0
        self._worker = threading.Thread(target=self._serve, name="gestalt-engine", daemon=True)
        self._worker.start()

    def warmup(self) -> None:
        """Compile every batch size now, so that no request waits on compilation. (Memory of another
        K than config.brain.mem_k compiles its own programs when it first comes.)"""
        for B in self.batch_sizes:
            self._program(B, self._memory_slots)

    def submit(self, request: Request) -> Handle:
        """Queue `request` (any thread; never blocks). ValueError for settings out of range,
        QueueFull when max_queue requests wait."""
        if request.max_tokens < 1 or request.temperature < 0 or not 0 < request.top_p <= 1:
            raise ValueError(f"max_tokens={request.max_tokens} (>= 1), temperature={request.temperature} (>= 0), "
                             f"top_p={request.top_p} (in (0, 1])")
        if request.memory is not None:
            if self._memory_slots is None:
                raise ValueError("this brain has no memory path (its parameters hold no memory_proj)")
            shape, D = np.shape(request.memory), self._brain.enc.d_model
            if len(shape) != 2 or shape[0] < 1 or shape[1] != D:
                raise ValueError(f"memory of shape {shape}: expected [K, {D}] concept vectors")
        seed = (secrets.randbits(32) if request.seed is None else request.seed) % 2 ** 32
        prompt_tokens = min(len(request.prompt.encode("utf-8")), self._brain.enc.train_len)
        handle = Handle(request, prompt_tokens, seed, self._withdraw)
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests wait already (max_queue)")
            self._waiting.append(handle)
            self._cv.notify()
        return handle

    def stats(self) -> dict:
        """Batches run, real rows in them and their mean, tokens generated, requests waiting, compiles."""
        return dict(batches=self._batches, rows=self._rows, mean_batch_size=self._rows / max(self._batches, 1),
                    tokens=self._tokens, queue=len(self._waiting), compiles=self.compiles)

    def close(self) -> None:
        """Stop the worker: waiting and running requests end with Done("cancelled")."""
        with self._cv:
            self._closed = True
            waiting = list(self._waiting)
            self._waiting.clear()
            self._cv.notify_all()
        for handle in waiting:
            handle.cancel()
        self._worker.join()

    def _withdraw(self, handle: Handle) -> None:
        with self._cv:
            if handle in self._waiting:
                self._waiting.remove(handle)

    def _program(self, B: int, M: int | None):
        """The compiled (prefill, chunk) for B rows with M memory slots (None: no memory)."""
        with self._compile_lock:
            if (B, M) not in self._programs:
                args = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self._inputs([], B, M))
                state = jax.eval_shape(self._prefill, self._params, *args)
                finished = jax.ShapeDtypeStruct((B,), np.bool_)
                self._programs[B, M] = (self._prefill.lower(self._params, *args).compile(),
                                        self._chunk.lower(self._params, state, finished).compile())
                self.compiles += 2
            return self._programs[B, M]

    def _inputs(self, batch: Sequence[Handle], B: int, M: int | None) -> tuple:
        """_prefill's host arrays for `batch`, padded to B rows (max_tokens 0 marks padding)."""
        requests, pad = [h.request for h in batch], B - len(batch)
        enc_ids_BxL = byte_tok.encode_left([r.prompt for r in requests] + [""] * pad, self._brain.enc.train_len)
        memory_BxMxD = None if M is None else np.zeros((B, M, self._brain.enc.d_model), np.float32)
        has_memory_B = np.array([r.memory is not None for r in requests] + [False] * pad)
        for b in np.flatnonzero(has_memory_B):
            memory_BxMxD[b] = requests[b].memory
        return (enc_ids_BxL, memory_BxMxD, has_memory_B, np.array([h.seed for h in batch] + [0] * pad, np.uint32),
                np.array([r.temperature for r in requests] + [0.0] * pad, np.float32),
                np.array([r.top_p for r in requests] + [1.0] * pad, np.float32),
                np.array([min(r.max_tokens, self.max_new) for r in requests] + [0] * pad, np.int32))

    def _serve(self) -> None:
        while (batch := self._take()) is not None:
            try:
                if batch:  # empty when every request in it was cancelled during the window
                    self._run(batch)
            except Exception as e:  # this batch's requests end; the worker serves the next one
                for handle in batch:
                    handle._finish("error", f"{type(e).__name__}: {e}")

    def _take(self) -> list[Handle] | None:
        """The next batch: once a request waits, what waits after window_ms (or as soon as the
        largest batch is full), up to that size, of one memory K; None once closed."""
        biggest = self.batch_sizes[-1]
        with self._cv:
            while not self._waiting and not self._closed:
                self._cv.wait()
            deadline = time.monotonic() + self.window_s
            while len(self._waiting) < biggest and not self._closed and (left := deadline - time.monotonic()) > 0:
                self._cv.wait(left)
            if self._closed:
                return None
            batch, kept, K = [], collections.deque(), None
            for handle in self._waiting:
                k = None if handle.request.memory is None else len(handle.request.memory)
                if len(batch) < biggest and (k is None or K is None or k == K):
                    batch.append(handle)
                    K = K if k is None else k
                else:
                    kept.append(handle)
            self._waiting = kept
            return batch

    def _run(self, batch: list[Handle]) -> None:
        B = next(b for b in self.batch_sizes if b >= len(batch))
        Ks = {len(h.request.memory) for h in batch if h.request.memory is not None}  # one K at most (_take)
        M = Ks.pop() if Ks else self._memory_slots
        prefill, chunk = self._program(B, M)
        replies = [_Reply(self._decode, h.request.stop or (), min(h.request.max_tokens, self.max_new)) for h in batch]
        state = prefill(self._params, *self._inputs(batch, B, M))
        self._batches, self._rows = self._batches + 1, self._rows + len(batch)
        t = 0
        while True:
            if self._closed:
                for handle in batch:
                    handle.cancel()
            finished_B = np.array([h.done is not None for h in batch] + [True] * (B - len(batch)))
            if finished_B.all():
                return
            state, new_BxC, t_end = chunk(self._params, state, finished_B)
            new_BxC, t_end = jax.device_get((new_BxC, t_end))
            steps, t = int(t_end) - t, int(t_end)
            if steps == 0:  # the device has ended rows the host has not: fail rather than spin
                raise RuntimeError("decoding stopped before every reply had finished")
            for handle, reply, ids_C, finished in zip(batch, replies, new_BxC, finished_B):
                if finished:
                    continue
                ids_T = ids_C[:steps]
                self._tokens += int(np.sum(ids_T != PAD))
                text = reply.feed(ids_T)
                handle.completion_tokens = len(reply.ids)
                if text:
                    handle._emit(Delta(text))
                if reply.finish is not None:
                    handle._finish(reply.finish)
