"""`gestalt serve`: an OpenAI-compatible HTTP server over the trained components (FastAPI + uvicorn).

    POST /v1/chat/completions   the brain's reply to the last user message (streamed as server-sent
                                events with "stream": true), with the episodes recalled for it on
                                the decoder's cross-attention; each turn is remembered
    POST /v1/goals              a goal run as `gestalt run --json` runs it, in the server's workspace
    GET  /v1/models, /healthz

Generation goes through one engine (infer/engine.py): concurrent requests share compiled batches,
and the HTTP side only awaits its events. Every error is OpenAI's envelope
{"error": {"message", "type", "param", "code"}}, with its own status: 400 for each limit and each
malformed request, 401 without the API key, 404 for an unknown model or path, 429 with Retry-After
when the queue is full, 504 past the request time limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import ipaddress
import json
import socket
import time
import uuid
from typing import Any

import ml_collections
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools import talk as talk_tool
from gestalt_jax.infer import engine as engine_lib

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOPS = 4
RETRY_AFTER_S = 1


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(envelope(self.message, self.type, self.param, self.code), self.status, self.headers)


def envelope(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclasses.dataclass
class Chat:
    """A validated chat request."""
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool


@dataclasses.dataclass
class Service:
    """What the routes share: the config, the loaded agent (brain, policy, planner, memory), the
    engine, the sandboxed workspace for goals and the API key (None: none required)."""
    config: ml_collections.ConfigDict
    agent: Any
    engine: engine_lib.Engine
    sandbox: Sandbox
    api_key: str | None = None
    config_file: str = ""
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))
    jax_side: concurrent.futures.ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gestalt-goals"))

    @property
    def max_tokens(self) -> int:
        return self.config.serve.max_tokens or self.agent.brain.config.brain.dec_len


def _number(body: dict, key: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"'{key}' must be a number, got {json.dumps(value)}", param=key, code="invalid_type")
    if value < low or value > high or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ApiError(400, f"'{key}' must lie in {bound}, got {value}", param=key, code="invalid_value")
    return float(value)


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ApiError(400, f"'{where}.content' must be a string or a list of text parts", param=f"{where}.content",
                   code="invalid_type")


def parse_chat(body: Any, service: Service) -> Chat:
    """The request as a Chat, or ApiError naming the parameter at fault."""
    serve = service.config.serve
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError(400, "missing required parameter 'model'" if model is None else "'model' must be a string",
                       param="model", code="missing_required_parameter" if model is None else "invalid_type")
    if model != serve.model:
        raise ApiError(404, f"the model '{model}' does not exist; this server serves '{serve.model}'",
                       param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content}", param="messages",
                       code="missing_required_parameter" if messages is None else "invalid_type")
    if len(messages) > serve.max_messages:
        raise ApiError(400, f"{len(messages)} messages; at most {serve.max_messages} (config.serve.max_messages)",
                       param="messages", code="too_many_messages")
    texts = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"'{where}.role' must be one of {', '.join(ROLES)}", param=f"{where}.role",
                           code="invalid_value")
        text = _text(m.get("content"), where)
        if len(text) > serve.max_message_chars:
            raise ApiError(400, f"'{where}.content' has {len(text)} characters; at most {serve.max_message_chars} "
                           "(config.serve.max_message_chars)", param=f"{where}.content", code="message_too_long")
        texts.append((m["role"], text))
    if texts[-1][0] != "user" or not texts[-1][1].strip():
        raise ApiError(400, "the last message must be a non-empty user message: the brain replies to it",
                       param="messages", code="invalid_value")
    n = body.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise ApiError(400, f"'n' must be 1: one choice per request, got {json.dumps(n)}", param="n",
                       code="invalid_value")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(key)
    if max_tokens is None:
        max_tokens = service.max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= service.max_tokens:
        raise ApiError(400, f"'{key}' must be an integer in [1, {service.max_tokens}], got {json.dumps(max_tokens)}",
                       param=key, code="invalid_value")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > MAX_STOPS or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, f"'stop' must be a non-empty string or a list of at most {MAX_STOPS}", param="stop",
                       code="invalid_value")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, f"'seed' must be an integer, got {json.dumps(seed)}", param="seed", code="invalid_type")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be a boolean", param="stream", code="invalid_type")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise ApiError(400, "'stream_options' must be {\"include_usage\": bool}", param="stream_options",
                       code="invalid_type")
    if body.get("stream_options") is not None and not stream:
        raise ApiError(400, "'stream_options' is only allowed with \"stream\": true", param="stream_options",
                       code="invalid_value")
    # Unset sampling settings are the brain's own (config.gen), not OpenAI's temperature 1: this
    # small brain's replies at 1 are mostly noise, at config.gen.temperature (0) its argmax reply.
    gen = service.config.gen
    return Chat(texts[-1][1], max_tokens, _number(body, "temperature", gen.temperature, 0.0, 2.0),
                _number(body, "top_p", gen.top_p, 0.0, 1.0, low_open=True), seed, stop, stream,
                bool(options.get("include_usage", False)))


async def _body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(400, f"request body of {declared} bytes; at most {limit} (config.serve.max_body_bytes)",
                       code="body_too_large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(400, f"request body over {limit} bytes (config.serve.max_body_bytes)", code="body_too_large")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="gestalt", docs_url=None, redoc_url=None, openapi_url=None)
    serve = service.config.serve

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        return ApiError(400, f"invalid request: {e.errors()[:1]}").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", kind).response()

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):
        return ApiError(500, f"internal error: {type(e).__name__}: {e}", "server_error").response()

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if service.api_key and request.url.path.startswith("/v1/"):
            if request.headers.get("authorization", "") != f"Bearer {service.api_key}":
                return ApiError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                                "authentication_error", code="invalid_api_key").response()
        return await call_next(request)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": serve.model, **service.engine.stats()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": serve.model, "object": "model", "created": service.created,
                                            "owned_by": "gestalt"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        chat = parse_chat(await _body(request, serve.max_body_bytes), service)
        loop = asyncio.get_running_loop()
        memory_ids, memory = await loop.run_in_executor(service.jax_side, _recall, service, chat.prompt)
        try:
            handle = service.engine.submit(engine_lib.Request(
                chat.prompt, chat.max_tokens, chat.temperature, chat.top_p, chat.seed, chat.stop,
                None if memory is None else memory[0]))
        except engine_lib.QueueFull:
            raise ApiError(429, f"{serve.max_queue} requests are waiting (config.serve.max_queue); retry shortly",
                           "rate_limit_error", code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)})
        meta = dict(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=serve.model)
        deadline = loop.time() + serve.request_timeout_s
        if chat.stream:
            return StreamingResponse(_stream(service, handle, chat, meta, deadline, memory_ids),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        parts, done = [], None
        try:
            async for event in _until(deadline, handle):
                if isinstance(event, engine_lib.Delta):
                    parts.append(event.text)
                else:
                    done = event
        except asyncio.TimeoutError:
            raise ApiError(504, f"no reply within {serve.request_timeout_s:g} s (config.serve.request_timeout_s)",
                           "timeout_error", code="timeout") from None
        if done.finish_reason == "error":
            raise ApiError(500, f"generation failed: {done.error}", "server_error")
        text = "".join(parts)
        loop.run_in_executor(service.jax_side, _remember, service, chat.prompt, text)
        return dict(**meta, object="chat.completion", system_fingerprint=None,
                    choices=[dict(index=0, message=dict(role="assistant", content=text), logprobs=None,
                                  finish_reason=done.finish_reason)],
                    usage=_usage(done), memory_ids=memory_ids)

    @app.post("/v1/goals")
    async def goals(request: Request):
        body = await _body(request, serve.max_body_bytes)
        goal = body.get("goal") if isinstance(body, dict) else None
        if not isinstance(goal, str) or not goal.strip() or len(goal) > serve.max_message_chars:
            raise ApiError(400, f"'goal' must be a non-empty string of at most {serve.max_message_chars} characters",
                           param="goal", code="invalid_value")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ApiError(400, "'dry_run' must be a boolean", param="dry_run", code="invalid_type")
        loop = asyncio.get_running_loop()
        run = lambda: service.agent.run(goal, service.sandbox, config_file=service.config_file, dry_run=dry_run)  # noqa: E731
        try:
            return await asyncio.wait_for(loop.run_in_executor(service.jax_side, run), serve.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the goal did not finish within {serve.request_timeout_s:g} s", "timeout_error",
                           code="timeout") from None

    return app


async def _until(deadline: float, handle: engine_lib.Handle):
    """The handle's events until `deadline` (loop time); asyncio.TimeoutError after it, and the
    generation is cancelled (leaving the handle's iterator cancels it)."""
    loop = asyncio.get_running_loop()
    events = handle.aevents()
    try:
        while True:
            try:
                event = await asyncio.wait_for(events.__anext__(), max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                return
            yield event
    finally:
        await events.aclose()


def _usage(done: engine_lib.Done) -> dict:
    return dict(prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                total_tokens=done.prompt_tokens + done.completion_tokens)


def _recall(service: Service, prompt: str):
    """The episodes recalled for the prompt, as in `gestalt run` (ids, concepts [1, K, D] or None)."""
    ctx = service.agent.context(service.sandbox, prompt, service.config_file)
    return talk_tool.recall(ctx, prompt)


def _remember(service: Service, prompt: str, reply: str) -> None:
    concept, brain = service.agent.brain.concept(prompt)
    service.agent.memory.add(prompt, concept=concept, brain=brain, plan=[{"tool": "TALK", "args": {}}],
                             response=reply, success=True)


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


async def _stream(service: Service, handle: engine_lib.Handle, chat: Chat, meta: dict, deadline: float,
                  memory_ids: list[int]):
    """chat.completion.chunk events: the role first, the text as it comes, finish_reason on the last
    choice chunk, the usage chunk (choices: []) when asked for, then [DONE]. Leaving early (the
    client went away) cancels the generation through the handle."""
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return _sse(dict(**meta, object="chat.completion.chunk", system_fingerprint=None,
                         choices=[dict(index=0, delta=delta, logprobs=None, finish_reason=finish)]))

    yield chunk({"role": "assistant", "content": ""})
    parts, done = [], None
    try:
        async for event in _until(deadline, handle):
            if isinstance(event, engine_lib.Delta):
                if event.text:
                    parts.append(event.text)
                    yield chunk({"content": event.text})
            else:
                done = event
    except asyncio.TimeoutError:
        yield _sse(envelope(f"no reply within {service.config.serve.request_timeout_s:g} s", "timeout_error",
                            code="timeout"))
        yield b"data: [DONE]\n\n"
        return
    if done.finish_reason == "error":
        yield _sse(envelope(f"generation failed: {done.error}", "server_error"))
    else:
        yield chunk({}, done.finish_reason)
        if chat.include_usage:
            yield _sse(dict(**meta, object="chat.completion.chunk", system_fingerprint=None, choices=[],
                            usage=_usage(done)))
        asyncio.get_running_loop().run_in_executor(service.jax_side, _remember, service, chat.prompt, "".join(parts))
    yield b"data: [DONE]\n\n"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(c: ml_collections.ConfigDict, workdir, *, host: str, port: int, api_key: str | None, workspace: str,
          allow_writes: bool, allow_meta: bool, config_file: str) -> int:
    """`gestalt serve`: load, compile every batch shape, then serve until interrupted."""
    import sys

    import uvicorn

    from gestalt_jax.agent.run_goal import Agent
    if not is_loopback(host) and not api_key:
        print(f"gestalt serve: refusing to listen on {host} (not loopback) without --api_key: anyone who can "
              f"reach it could use the model and run goals", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox(workspace, c.agent, allow_writes=allow_writes, allow_meta=allow_meta)
        agent = Agent.load(c, workdir)
    except (OSError, FileNotFoundError) as e:
        print("gestalt serve: " + str(e).replace("\n", "\ngestalt serve: "), file=sys.stderr)
        return 1
    brain = agent.brain
    engine = engine_lib.Engine(brain.module, brain.host_params, brain.decode, brain.config,
                               batch_sizes=c.serve.batch_sizes, window_ms=c.serve.batch_window_ms,
                               max_queue=c.serve.max_queue, chunk=c.serve.chunk)
    t = time.time()
    print(f"[serve] compiling generation for batch sizes {list(c.serve.batch_sizes)}", flush=True)
    engine.warmup()
    agent.decide("warm up")  # the policy and planner programs for /v1/goals
    # Bound before `ready` is printed: a client that starts on that line finds the port listening.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        engine.close()
        print(f"gestalt serve: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return 1
    sock.listen(2048)
    print(f"[serve] ready in {time.time() - t:.1f} s: http://{host}:{port}/v1 (model {c.serve.model!r}"
          f"{', API key required' if api_key else ''}); workspace {sandbox.root}", flush=True)
    service = Service(c, agent, engine, sandbox, api_key, config_file)
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", backlog=2048))
    try:
        server.run(sockets=[sock])
    finally:
        engine.close()
        service.jax_side.shutdown(wait=False, cancel_futures=True)
    return 0
