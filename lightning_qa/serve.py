"""`lightning_qa serve MODEL_OR_CKPT`: an HTTP question-answering server (LitServe, dynamic batching).

    lightning_qa serve checkpoints/version_0/hf_model --port 8000
    curl -s localhost:8000/predict -d '{"question": "Who?", "context": "Ann built the mill."}'
    {"score": 0.93, "start": 0, "end": 3, "answer": "Ann"}

`POST /predict` takes {"question": str, "context": str} or lists of equal length, and returns the
predictor's JSON (one record, or a list). Requests are checked in the HTTP process before they reach the
model worker, because LitServe fails a whole dynamic batch when one of its requests raises: a bad request
gets 400 (not JSON, missing, empty or mistyped fields) or 413 (body, context, question or list over its
limit) with {"detail": message}, and never reaches, slows or fails other requests. `GET /health` answers
"ok" once the model is loaded.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from lightning_qa.errors import fail

try:
    import litserve as ls
except ImportError:  # `lightning_qa serve` reports the missing extra; importing this module still works
    ls = None

INSTALL_HINT = 'pip install "lightning_qa[serve]"'
logger = logging.getLogger("lightning_qa")
FIELDS = ("question", "context")
PREDICTOR_OPTIONS = (
    "top_k",
    "doc_stride",
    "max_answer_len",
    "max_seq_len",
    "max_question_len",
    "handle_impossible_answer",
    "batch_size",
    "decoding",
    "dtype",
    "compile",
    "quantize",
)


class RequestError(ValueError):
    """A request the server refuses, with its HTTP status (400 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_request(
    body: Any,
    max_context_chars: int = 100_000,
    max_question_chars: int = 2_000,
    max_items: int = 32,
) -> tuple[list[str], list[str], bool]:
    """Validate a decoded JSON body: (questions, contexts, single), or RequestError(400 or 413)."""
    if not isinstance(body, dict):
        raise RequestError(400, 'the body must be a JSON object {"question": ..., "context": ...}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(
            400, f"unknown field(s) {', '.join(unknown)}: only 'question' and 'context' are read"
        )
    for name in FIELDS:
        if name not in body:
            raise RequestError(400, f"missing field '{name}'")
    question, context = body["question"], body["context"]
    single = isinstance(question, str) and isinstance(context, str)
    if single:
        questions, contexts = [question], [context]
    elif isinstance(question, list) and isinstance(context, list):
        if len(question) != len(context):
            raise RequestError(
                400, f"'question' has {len(question)} items but 'context' has {len(context)}: pair them up"
            )
        if not question:
            raise RequestError(400, "'question' and 'context' are empty lists")
        if len(question) > max_items:
            raise RequestError(413, f"{len(question)} questions in one request; the limit is {max_items}")
        questions, contexts = question, context
    else:
        raise RequestError(400, "'question' and 'context' must both be strings or both lists of strings")
    for name, values, limit in (
        ("question", questions, max_question_chars),
        ("context", contexts, max_context_chars),
    ):
        for i, value in enumerate(values):
            where = name if single else f"{name}[{i}]"
            if not isinstance(value, str):
                raise RequestError(400, f"'{where}' must be a string, not {type(value).__name__}")
            if not value.strip():
                raise RequestError(400, f"'{where}' is empty")
            if len(value) > limit:
                raise RequestError(413, f"'{where}' has {len(value)} characters; the limit is {limit}")
    return questions, contexts, single


class RequestValidator:
    """ASGI middleware: refuse bad `POST /predict` requests in the HTTP process, with 400/413 and a
    message, before LitServe queues them for the model worker (where one bad request would fail its
    whole batch). Valid bodies are passed on unchanged, declared as JSON whatever the client sent."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        path: str = "/predict",
        max_request_bytes: int = 2 * 1024 * 1024,
        **limits: int,
    ) -> None:
        self.app, self.path, self.max_request_bytes, self.limits = app, path, max_request_bytes, limits

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise RequestError(400, f"the body is not valid JSON ({e})") from None
            parse_request(payload, **self.limits)
        except RequestError as e:
            await _send_json(send, e.status, {"detail": str(e)})
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect as usual
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

    async def _read_body(self, scope: dict[str, Any], receive: Callable) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_request_bytes:
            raise RequestError(
                413, f"the body has {int(declared)} bytes; the limit is {self.max_request_bytes}"
            )
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "the client disconnected before sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                raise RequestError(413, f"the body is over the limit of {self.max_request_bytes} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


async def _send_json(send: Callable, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_Base = ls.LitAPI if ls is not None else object


class QAServeAPI(_Base):
    """LitServe API around `QAPredictor`: the questions of all the requests in a dynamic batch go through
    one predictor call (its own batching of windows), and the answers are split back per request.

    Args:
        model: Hugging Face model directory, hub name, or lightning_qa checkpoint (.ckpt).
        backend: "torch", or "onnx" for an exported directory's `model.onnx` run by onnxruntime.
        predictor_options: keyword arguments for `QAPredictor` (top_k, doc_stride, max_answer_len, ...).
        limits: `parse_request` limits, checked again in the worker (the HTTP process checked them first).
    """

    def __init__(
        self,
        model: str,
        backend: str = "torch",
        predictor_options: dict[str, Any] | None = None,
        limits: dict[str, int] | None = None,
        max_batch_size: int = 8,
        batch_timeout: float = 0.01,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.model, self.backend, self.num_threads = model, backend, num_threads
        self.predictor_options = dict(predictor_options or {})
        self.limits = dict(limits or {})

    def setup(self, device: str) -> None:
        import torch
        import transformers

        from lightning_qa.predictor import QAPredictor

        transformers.utils.logging.disable_progress_bar()

        options = dict(self.predictor_options)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        if self.backend == "onnx":
            from lightning_qa.onnx_export import OnnxQAModel

            options["model"] = OnnxQAModel(self.model, num_threads=self.num_threads)
        elif device and "device" not in options:
            options["device"] = device
        self.predictor = QAPredictor(self.model, **options)
        if options.get("compile"):  # compile before the server takes requests, not in the first one
            self.predictor(question="Who?", context="A warm-up context.", batch_size=2)

    # no annotations on `request` and the response: LitServe turns them into FastAPI body/response types
    def decode_request(self, request):
        try:
            return parse_request(request, **self.limits)
        except RequestError as e:  # not reached behind RequestValidator; kept for direct use of the API
            from fastapi import HTTPException

            raise HTTPException(e.status, str(e)) from None

    def predict(self, x: Any) -> Any:
        queries = x if isinstance(x, list) else [x]
        try:
            outputs = self._answer(queries)
        except Exception:  # one query broke the shared call: answer the others, report that one
            outputs = []
            for query in queries:
                try:
                    outputs += self._answer([query])
                except Exception as e:
                    logger.exception("prediction failed for one request")
                    outputs.append(
                        PredictionFailed(f"prediction failed ({type(e).__name__}); see the server log")
                    )
        return outputs if isinstance(x, list) else outputs[0]

    def _answer(self, queries: list[tuple[list[str], list[str], bool]]) -> list[Any]:
        """All the questions of `queries` in one predictor call, split back per query."""
        questions = [q for qs, _, _ in queries for q in qs]
        contexts = [c for _, cs, _ in queries for c in cs]
        answers = self.predictor(question=questions, context=contexts)
        outputs, i = [], 0
        for qs, _, single in queries:
            mine = answers[i : i + len(qs)]
            i += len(qs)
            outputs.append(mine[0] if single else mine)
        return outputs

    def encode_response(self, output):
        if isinstance(output, PredictionFailed):  # this request's own 500; the batch's others are answered
            from starlette.responses import JSONResponse

            return JSONResponse({"detail": output.message}, status_code=500)
        return output


class PredictionFailed:
    """The outcome of a request whose prediction raised (LitServe would fail its whole batch)."""

    def __init__(self, message: str) -> None:
        self.message = message


def build_server(
    model: str,
    backend: str = "torch",
    device: str = "auto",
    max_batch_size: int = 8,
    batch_timeout: float = 0.01,
    timeout: float = 30.0,
    max_request_bytes: int = 2 * 1024 * 1024,
    limits: dict[str, int] | None = None,
    predictor_options: dict[str, Any] | None = None,
    fast_queue: bool = False,
    num_threads: int | None = None,
) -> Any:
    """A `litserve.LitServer` for `model` (not started: call `.run(host=..., port=...)`)."""
    if ls is None:
        raise ImportError(f"serving needs litserve, which is not installed: {INSTALL_HINT}")
    limits = dict(limits or {})
    api = QAServeAPI(model, backend, predictor_options, limits, max_batch_size, batch_timeout, num_threads)
    on_cpu = backend == "onnx" or (predictor_options or {}).get("quantize") or _is_int8_export(model)
    accelerator = "cpu" if device == "cpu" or on_cpu else "auto"
    return ls.LitServer(
        api,
        accelerator=accelerator,
        devices=1,
        workers_per_device=1,
        timeout=timeout,
        middlewares=[
            (RequestValidator, {"path": "/predict", "max_request_bytes": max_request_bytes, **limits})
        ],
        model_metadata={"model": model, "backend": backend},
        fast_queue=fast_queue,
    )


def _is_int8_export(model: str) -> bool:
    """An int8 export runs in onnxruntime on the CPU: no GPU worker for it."""
    from lightning_qa.checkpoint import read_settings

    return os.path.isdir(model) and bool(read_settings(model).get("quantization"))


def _terminate_gracefully(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # LitServe's graceful shutdown (workers stopped) runs on KeyboardInterrupt


def main(args: list[str] | None = None) -> None:
    """`lightning_qa serve MODEL_OR_CKPT [--host 127.0.0.1] [--port 8000] ...`"""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="lightning_qa serve",
        description="Serve a question-answering model over HTTP: POST /predict with "
        '{"question": ..., "context": ...} (or lists). Binds 127.0.0.1 unless --host says otherwise.',
    )
    parser.add_argument(
        "model", type=str, help="Model directory, hub name or lightning_qa checkpoint (.ckpt)"
    )
    parser.add_argument("--host", type=str, default="127.0.0.1", help="127.0.0.1 (default), 0.0.0.0 or ::")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (1024-65535)")
    parser.add_argument(
        "--backend", type=str, default="torch", help="torch, or onnx (the directory's model.onnx)"
    )
    parser.add_argument("--device", type=str, default="auto", help="auto (a GPU when there is one) or cpu")
    parser.add_argument("--max_batch_size", type=int, default=8, help="Requests batched into one model call")
    parser.add_argument("--batch_timeout", type=float, default=0.01, help="Seconds to wait to fill a batch")
    parser.add_argument("--timeout", type=float, default=30.0, help="Seconds a request may wait in the queue")
    parser.add_argument("--max_context_chars", type=int, default=100_000, help="Longer contexts get 413")
    parser.add_argument("--max_question_chars", type=int, default=2_000, help="Longer questions get 413")
    parser.add_argument("--max_items", type=int, default=32, help="Most questions in one request (else 413)")
    parser.add_argument(
        "--max_request_bytes", type=int, default=2 * 1024 * 1024, help="Larger bodies get 413"
    )
    parser.add_argument("--top_k", type=int | None, default=None, help="Answers per question (a list if > 1)")
    parser.add_argument(
        "--doc_stride",
        type=int | None,
        default=None,
        help="Window overlap in tokens (default: the model's stored setting, else QAPredictor's)",
    )
    parser.add_argument("--max_answer_len", type=int | None, default=None, help="Longest answer, in tokens")
    parser.add_argument(
        "--max_seq_len",
        type=int | None,
        default=None,
        help="Tokens per window (default: the model's stored setting, else QAPredictor's)",
    )
    parser.add_argument("--max_question_len", type=int | None, default=None, help="Question tokens kept")
    parser.add_argument(
        "--handle_impossible_answer",
        type=bool | None,
        default=None,
        help="Allow the empty answer (SQuAD 2.0)",
    )
    parser.add_argument("--batch_size", type=int | None, default=None, help="Windows per forward pass")
    parser.add_argument(
        "--decoding",
        type=str | None,
        default=None,
        help="logits or pipeline ranking (default: the rule the model was validated with; pipeline for other models)",
    )
    parser.add_argument("--dtype", type=str | None, default=None, help="fp32 (default), bf16, fp16 or auto")
    parser.add_argument(
        "--quantize",
        type=str | None,
        default=None,
        help="int8: run an int8 version of the model with onnxruntime on the CPU, made at start-up and not "
        "accuracy-checked (an export made with `lightning_qa export --quantize int8` is checked and runs as "
        "int8 without this option)",
    )
    parser.add_argument(
        "--compile",
        type=bool | None,
        default=None,
        help="torch.compile the model at start-up (slower start, faster small models)",
    )
    parser.add_argument(
        "--num_threads", type=int | None, default=None, help="CPU threads of the model (default: torch's)"
    )
    parser.add_argument(
        "--fast_queue", action="store_true", help="ZeroMQ between HTTP and model processes (LitServe's)"
    )
    parser.add_argument("--log_level", type=str, default="warning", help="uvicorn/LitServe log level")
    cfg = parser.parse_args(args)
    problems = []
    if cfg.backend not in ("torch", "onnx"):
        problems.append(f"--backend must be torch or onnx, not {cfg.backend!r}")
    if cfg.host not in ("127.0.0.1", "0.0.0.0", "::"):
        problems.append(f"--host must be 127.0.0.1, 0.0.0.0 or ::, not {cfg.host!r}")
    if not 1024 <= cfg.port <= 65535:
        problems.append(f"--port must be from 1024 to 65535, not {cfg.port}")
    if cfg.max_batch_size < 1 or cfg.batch_timeout < 0 or cfg.batch_timeout >= cfg.timeout:
        problems.append("--max_batch_size must be >= 1 and 0 <= --batch_timeout < --timeout")
    looks_local = os.path.isabs(cfg.model) or cfg.model.startswith(".") or cfg.model.endswith(".ckpt")
    if looks_local and not os.path.exists(cfg.model):
        problems.append(f"{cfg.model}: no such model directory or checkpoint")
    if cfg.quantize not in (None, "int8"):
        problems.append(f"--quantize must be int8, not {cfg.quantize!r}")
    if cfg.quantize and (cfg.backend == "onnx" or cfg.compile or cfg.dtype):
        problems.append(
            "--quantize int8 runs in onnxruntime: no --backend onnx, --compile or --dtype with it"
        )
    if cfg.backend == "onnx" and cfg.compile:
        problems.append("--compile applies to the torch backend only")
    if cfg.backend == "onnx" and not os.path.isfile(os.path.join(cfg.model, "model.onnx")):
        problems.append(f"{cfg.model}: no model.onnx (export with `lightning_qa export CKPT DIR --onnx`)")
    if ls is None:
        problems.append(f"serving needs litserve, which is not installed: {INSTALL_HINT}")
    if problems:
        fail(*problems)
    options = {k: cfg[k] for k in PREDICTOR_OPTIONS if cfg[k] is not None}
    if cfg.device != "auto":
        options["device"] = cfg.device
    limits = {"max_context_chars": cfg.max_context_chars, "max_question_chars": cfg.max_question_chars}
    limits["max_items"] = cfg.max_items
    server = build_server(
        cfg.model,
        backend=cfg.backend,
        device=cfg.device,
        max_batch_size=cfg.max_batch_size,
        batch_timeout=cfg.batch_timeout,
        timeout=cfg.timeout,
        max_request_bytes=cfg.max_request_bytes,
        limits=limits,
        predictor_options=options,
        fast_queue=cfg.fast_queue,
        num_threads=cfg.num_threads,
    )
    signal.signal(signal.SIGTERM, _terminate_gracefully)
    print(f"Serving {cfg.model} on http://{cfg.host}:{cfg.port}/predict", flush=True)
    try:
        server.run(
            host=cfg.host,
            port=cfg.port,
            num_api_servers=1,
            log_level=cfg.log_level,
            generate_client_file=False,
        )
    except RuntimeError as e:  # "One or more workers failed to start": the model did not load
        print(f"lightning_qa: error: {e} (see the worker's traceback above)", file=sys.stderr)
        sys.exit(1)
