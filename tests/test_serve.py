"""`gestalt serve`: the real command on the shared trained test tier, on a free loopback port, driven
by the official `openai` client (and raw HTTP for what a client library would not send)."""

import concurrent.futures
import json
import re
import subprocess
import sys
import time

import httpx
import jsonschema
import openai
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import run_goal

KEY = "test-key-7f3a"
BODY_LIMIT = 16384


def _start(workdir, tmp, port, *flags):
    """(base url, process) of `gestalt serve` on `port` with its own workspace and memory."""
    (tmp / "ws").mkdir()
    (tmp / "ws" / "README.md").write_text("# x\n\n[gone](gone.md)\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gestalt_jax.main", "serve", "--config=configs/test.py", f"--workdir={workdir}",
         f"--port={port}", f"--workspace={tmp / 'ws'}", f"--config.agent.memory_file={tmp / 'memory.sqlite'}", *flags],
        cwd=config_lib.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[serve] ready"):
            return f"http://127.0.0.1:{port}", proc
    pytest.fail("gestalt serve did not start:\n" + "".join(lines[-40:]))


@pytest.fixture(scope="module")
def server(trained_workdir, tmp_path_factory, free_port):
    """`gestalt serve` with an API key, a small body limit and at most 4 messages."""
    url, proc = _start(trained_workdir, tmp_path_factory.mktemp("serve"), free_port(), f"--api_key={KEY}",
                       f"--config.serve.max_body_bytes={BODY_LIMIT}", "--config.serve.max_messages=4",
                       "--config.serve.batch_window_ms=20")
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


def _client(url, key=KEY):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def _stats(url):
    return httpx.get(url + "/healthz").json()


def _ask(client, text="hello there", **kw):
    return client.chat.completions.create(model="gestalt", messages=[{"role": "user", "content": text}], **kw)


def test_chat_streamed_and_not_give_the_same_reply(server):
    url, _ = server
    client = _client(url)
    # Each turn is remembered, and recalled for the next one on the decoder's cross-attention: a
    # first turn makes the memory the two compared calls see the same (the same turn again merges).
    _ask(client, seed=7, temperature=0.8, max_tokens=40)
    reply = _ask(client, seed=7, temperature=0.8, max_tokens=40)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "gestalt"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1 and reply.usage.total_tokens == reply.usage.prompt_tokens + \
        reply.usage.completion_tokens
    chunks = list(_ask(client, seed=7, temperature=0.8, max_tokens=40, stream=True,
                       stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    choice_chunks = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in choice_chunks][:-1] == [None] * (len(choice_chunks) - 1)
    assert choice_chunks[-1].choices[0].finish_reason == choice.finish_reason
    assert "".join(c.choices[0].delta.content or "" for c in choice_chunks) == choice.message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_a_stop_sequence_cuts_the_reply(server):
    url, _ = server
    client = _client(url)
    _ask(client, "tell me something", seed=11, temperature=1.0, max_tokens=60)  # the memory both calls recall
    full = _ask(client, "tell me something", seed=11, temperature=1.0, max_tokens=60).choices[0].message.content
    if len(full) < 8:
        pytest.skip(f"the test-tier brain replied too briefly to cut: {full!r}")
    stop = full[len(full) // 2: len(full) // 2 + 3]
    cut = _ask(client, "tell me something", seed=11, temperature=1.0, max_tokens=60, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop" and cut.message.content == full[:full.index(stop)]


def test_the_api_key_is_required(server):
    url, _ = server
    for key in ("wrong", ""):
        with pytest.raises(openai.AuthenticationError) as e:
            _ask(_client(url, key or "none"))
        assert e.value.status_code == 401
    assert httpx.get(url + "/v1/models").status_code == 401
    models = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert models["data"][0]["id"] == "gestalt" and {"object", "created", "owned_by"} <= set(models["data"][0])


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    (json.dumps({"model": "gestalt"}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(), 400, "model"),
    (json.dumps({"model": "gestalt", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}).encode(),
     400, "temperature"),
    (json.dumps({"model": "gestalt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10 ** 6}).encode(),
     400, "max_tokens"),
    (json.dumps({"model": "gestalt", "messages": [{"role": "user", "content": "hi"}] * 5}).encode(), 400, "messages"),
    (json.dumps({"model": "gestalt", "messages": [{"role": "wizard", "content": "hi"}]}).encode(), 400,
     "messages[0].role"),
    (json.dumps({"model": "gestalt", "messages": [{"role": "user", "content": "hi"}], "n": 3}).encode(), 400, "n"),
    (json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}).encode(), 404, "model"),
    (b'{"model": "gestalt", "messages": [{"role": "user", "content": "' + b"x" * (2 * BODY_LIMIT) + b'"}]}',
     400, None),
])
def test_malformed_requests_get_the_openai_envelope_and_the_server_goes_on(server, body, status, param):
    url, _ = server
    r = httpx.post(url + "/v1/chat/completions", content=body,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"] and error["param"] == param
    assert _stats(url)["status"] == "ok"


def test_a_client_that_leaves_mid_stream_frees_its_slot(server):
    url, _ = server
    body = {"model": "gestalt", "messages": [{"role": "user", "content": "talk to me"}], "stream": True,
            "max_tokens": 128, "temperature": 1.0, "seed": 5}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        first = next(r.iter_lines())
        assert first.startswith("data: ") and '"role": "assistant"' in first
    deadline = time.time() + 30
    while _stats(url)["queue"] and time.time() < deadline:
        time.sleep(0.1)
    assert _stats(url)["queue"] == 0
    assert _ask(_client(url)).choices[0].finish_reason in ("stop", "length")  # still serving


def test_goals_run_like_gestalt_run_json(server):
    url, _ = server
    r = httpx.post(url + "/v1/goals", json={"goal": "check the docs"}, headers={"Authorization": f"Bearer {KEY}"},
                   timeout=120)
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), run_goal.schema())
    assert r.json()["goal"] == "check the docs"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@pytest.mark.long
def test_100_concurrent_clients_are_all_answered_in_shared_batches(server):
    url, proc = server
    before, rss_before = _stats(url), _rss_kb(proc.pid)
    client = _client(url)

    def one(i):
        r = _ask(client, f"hello number {i}", seed=i, max_tokens=24, temperature=0.7)
        return r.choices[0].finish_reason

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        reasons = list(pool.map(one, range(100)))
    after = _stats(url)
    assert len(reasons) == 100 and set(reasons) <= {"stop", "length"}
    batches, rows = after["batches"] - before["batches"], after["rows"] - before["rows"]
    assert rows == 100 and rows / batches > 1
    assert after["compiles"] == before["compiles"]  # every shape was compiled at start-up
    assert _rss_kb(proc.pid) - rss_before < 300_000  # kB


def test_a_public_address_without_a_key_is_refused(trained_workdir):
    done = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "serve", "--config=configs/test.py",
                           f"--workdir={trained_workdir}", "--host=0.0.0.0"],
                          cwd=config_lib.REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "without --api_key" in done.stderr and "Traceback" not in done.stderr


def test_a_full_queue_answers_429_with_retry_after(trained_workdir, tmp_path, free_port):
    """One request may wait, and the scheduler waits 3 s for a batch: the others are refused."""
    url, proc = _start(trained_workdir, tmp_path, free_port(), "--config.serve.max_queue=1", "--config.serve.batch_window_ms=3000")
    try:
        body = {"model": "gestalt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: httpx.post(url + "/v1/chat/completions", json=body, timeout=60), range(4)))
        codes = sorted(r.status_code for r in answers)
        assert codes[0] == 200 and 429 in codes, codes
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.headers["Retry-After"] == "1" and refused.json()["error"]["type"] == "rate_limit_error"
        assert httpx.post(url + "/v1/chat/completions", json=body, timeout=60).status_code == 200  # serving on
    finally:
        proc.terminate()
        proc.wait(timeout=30)
