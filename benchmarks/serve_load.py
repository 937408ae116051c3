"""`gestalt serve` under load: requests/s, tokens/s and p50/p95 latency at 1, 8, 32 and 100
concurrent clients, batched (config.serve.batch_sizes) against one at a time (batch size 1).

    python benchmarks/serve_load.py --config=configs/small.py --workdir=runs/small

For each mode a fresh `gestalt serve` (its own memory file) on a free loopback port; each client
sends its requests one after another with the `openai` client (non-streamed chat completions of
the held-out talk prompts, max_tokens --max_tokens, temperature 0.7, a seed per request). Prints
one markdown table.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from absl import app, flags

_CONFIG = flags.DEFINE_string("config", "configs/small.py", "Tier config the workdir was trained with.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir trained with --config.")
_CLIENTS = flags.DEFINE_list("clients", ["1", "8", "32", "100"], "Concurrent clients per run.")
_REQUESTS = flags.DEFINE_integer("requests", 2, "Requests each client sends (at least 16 in all).")
_MAX_TOKENS = flags.DEFINE_integer("max_tokens", 64, "max_tokens of every request.")

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(workdir: str, memory: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gestalt_jax.main", "serve", f"--config={_CONFIG.value}",
                             f"--workdir={workdir}", f"--port={port}", f"--config.agent.memory_file={memory}",
                             "--config.serve.max_queue=1024", *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("[serve] ready"):
            return proc, f"http://127.0.0.1:{port}/v1"
    sys.exit(f"gestalt serve did not start (exit {proc.wait()})")


def _load(url: str, clients: int, prompts: list[str]) -> dict:
    import openai
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=600)
    per_client = max(_REQUESTS.value, -(-16 // clients))

    def one(c: int) -> list[tuple[float, int]]:
        out = []
        for r in range(per_client):
            i = c * per_client + r
            t = time.perf_counter()
            reply = client.chat.completions.create(
                model="gestalt", messages=[{"role": "user", "content": prompts[i % len(prompts)]}],
                max_tokens=_MAX_TOKENS.value, temperature=0.7, seed=i)
            out.append((time.perf_counter() - t, reply.usage.completion_tokens))
        return out

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [x for rows in pool.map(one, range(clients)) for x in rows]
    wall = time.perf_counter() - start
    latency = np.array([r[0] for r in results])
    return dict(requests=len(results), rps=len(results) / wall, tps=sum(r[1] for r in results) / wall,
                p50=float(np.percentile(latency, 50)), p95=float(np.percentile(latency, 95)))


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url.replace("/v1", "/healthz")) as r:
        return json.loads(r.read())


def main(argv):
    del argv
    if not _WORKDIR.value:
        sys.exit("--workdir: give a workdir trained with --config")
    from gestalt_jax import config as config_lib
    held = [json.loads(line)["prompt"] for line in Path(config_lib.DATASETS / "talk" / "held_out.jsonl").open()]
    modes = {"batched": [], "one at a time": ["--config.serve.batch_sizes=(1,)"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, extra in modes.items():
            proc, url = _start(_WORKDIR.value, Path(tmp) / f"{len(rows)}.sqlite", extra)
            try:
                for clients in map(int, _CLIENTS.value):
                    before = _stats(url)
                    r = _load(url, clients, held)
                    after = _stats(url)
                    batch = (after["rows"] - before["rows"]) / max(1, after["batches"] - before["batches"])
                    rows.append((mode, clients, r, batch))
                    print(f"[serve_load] {mode}, {clients} clients: {r}", file=sys.stderr, flush=True)
            finally:
                proc.terminate()
                proc.wait()
    print("| mode | clients | requests | requests/s | tokens/s | p50 latency (s) | p95 latency (s) | mean batch |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, clients, r, batch in rows:
        print(f"| {mode} | {clients} | {r['requests']} | {r['rps']:.2f} | {r['tps']:.0f} | {r['p50']:.2f} | "
              f"{r['p95']:.2f} | {batch:.1f} |")


if __name__ == "__main__":
    app.run(main)
