"""`lightning_qa serve`: a real LitServe server on 127.0.0.1 (a free port, its own process group), called
over HTTP with the standard library: answers, every bad-request case, concurrency, shutdown.

Run: pytest tests/test_serve.py
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import Server, post

from lightning_qa.cli import main

pytest.importorskip("litserve")

LIMITS = ["--max_context_chars", "2000", "--max_question_chars", "200", "--max_items", "4"]
MAX_REQUEST_BYTES = 20_000
GOOD = {"question": "Who built the mill?", "context": "Ann built the mill in 1887 by the river."}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """One server for the module. At the end, SIGTERM must stop it and its workers (nothing left in its
    process group) with status 0, else its teardown fails."""
    args = [*LIMITS, "--max_request_bytes", str(MAX_REQUEST_BYTES)]
    args += ["--max_batch_size", "4", "--batch_timeout", "0.05", "--timeout", "60"]
    server = Server(tiny_model_dir, tmp_path_factory.mktemp("serve") / "server.log", args)
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
    assert code == 0, f"unclean shutdown (status {code}):\n{server.log.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    """The same model in-process: what the server must answer."""
    from lightning_qa.predictor import QAPredictor

    return QAPredictor(tiny_model_dir, device="cpu")


def test_answers_like_the_predictor(server, reference):
    status, answer = post(f"{server.url}/predict", GOOD)
    assert status == 200
    expected = reference(**GOOD)
    assert {k: answer[k] for k in ("answer", "start", "end")} == {
        k: expected[k] for k in ("answer", "start", "end")
    }
    assert answer["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert GOOD["context"][answer["start"] : answer["end"]] == answer["answer"]

    questions = ["Who built the mill?", "When was it built?", "Where is the mill?"]
    contexts = [GOOD["context"], "It was built in 1887.", "The mill stands by the river. " * 30]
    status, answers = post(f"{server.url}/predict", {"question": questions, "context": contexts})
    assert status == 200 and isinstance(answers, list) and len(answers) == 3
    for got, want in zip(answers, reference(question=questions, context=contexts), strict=True):
        assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])


BAD_REQUESTS = {
    "not JSON": (b"question=Who&context=Ann", 400, "not valid JSON"),
    "not UTF-8": (b'{"question": "\xff\xfe", "context": "x"}', 400, "not valid JSON"),
    "empty body": (b"", 400, "not valid JSON"),
    "JSON list": ([GOOD], 400, "must be a JSON object"),
    "JSON string": ('"Who built the mill?"', 400, "must be a JSON object"),
    "missing question": ({"context": "Ann built it."}, 400, "missing field 'question'"),
    "missing context": ({"question": "Who?"}, 400, "missing field 'context'"),
    "empty question": ({"question": "", "context": "Ann built it."}, 400, "'question' is empty"),
    "blank context": ({"question": "Who?", "context": " \n\t"}, 400, "'context' is empty"),
    "null context": ({"question": "Who?", "context": None}, 400, "must both be strings or both lists"),
    "number question": ({"question": 3, "context": "Ann"}, 400, "must both be strings or both lists"),
    "string and list": ({"question": "Who?", "context": ["Ann"]}, 400, "must both be strings or both lists"),
    "list item not a string": (
        {"question": ["Who?", 1], "context": ["a", "b"]},
        400,
        "'question[1]' must be a string",
    ),
    "empty item in a list": (
        {"question": ["Who?", "What?"], "context": ["a", ""]},
        400,
        "'context[1]' is empty",
    ),
    "lists of different lengths": ({"question": ["Who?"], "context": ["a", "b"]}, 400, "pair them up"),
    "empty lists": ({"question": [], "context": []}, 400, "empty lists"),
    "unknown field": ({**GOOD, "top_k": 3}, 400, "unknown field(s) top_k"),
    "context over the limit": ({"question": "Who?", "context": "x" * 2001}, 413, "the limit is 2000"),
    "question over the limit": ({"question": "Who " * 51, "context": "Ann"}, 413, "the limit is 200"),
    "too many questions": ({"question": ["Who?"] * 5, "context": ["Ann"] * 5}, 413, "the limit is 4"),
    "body over the limit": ({"question": "Who?", "context": "x" * MAX_REQUEST_BYTES}, 413, "bytes"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=str)
def test_bad_request_is_refused_with_a_message(server, case):
    body, status, message = BAD_REQUESTS[case]
    got, detail = post(f"{server.url}/predict", body, timeout=30)
    assert got == status, detail
    assert message in detail["detail"]


def test_a_good_request_after_the_bad_ones(server, reference):
    for body, _, _ in BAD_REQUESTS.values():
        post(f"{server.url}/predict", body, timeout=30)
    status, answer = post(f"{server.url}/predict", GOOD)
    assert status == 200 and answer["answer"] == reference(**GOOD)["answer"]


def test_bad_requests_do_not_fail_the_good_ones_batched_with_them(server, reference):
    """LitServe fails a whole dynamic batch when one request raises: bad ones must never get that far."""
    bad = [BAD_REQUESTS[c][0] for c in ("missing context", "empty question", "unknown field", "not JSON")]
    goods = [{"question": f"Who built mill number {i}?", "context": GOOD["context"]} for i in range(8)]
    mixed = [b for pair in zip(goods, bad + bad, strict=True) for b in pair]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda body: post(f"{server.url}/predict", body), mixed))
    for body, (status, answer) in zip(mixed, results, strict=True):
        if body in goods:
            assert status == 200 and answer["answer"] == reference(**body)["answer"]
        else:
            assert status == 400 and "detail" in answer


def test_json_sent_as_a_form_is_still_read_as_json(server):
    """`curl -d '{...}'` declares a form body: the validated JSON is passed on as JSON."""
    body = json.dumps(GOOD)
    status, answer = post(
        f"{server.url}/predict", body, **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200 and "answer" in answer


def test_health_and_other_routes(server):
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as r:
        assert r.status == 200 and r.read() == b"ok"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{server.url}/predict", timeout=10)  # GET
    assert e.value.code == 405


def test_serve_load_benchmark_against_the_server(server):
    """benchmarks/serve_load.py with --url: bounded concurrent load, a table and a JSON line."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"
    args = ["--url", server.url, "--requests", "24", "--concurrency", "4", "--warmup", "0", "--timeout", "30"]
    run = subprocess.run([sys.executable, str(bench), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["measured_under_load"] and (result["ok"], result["errors"]) == (24, 0)
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert result["requests_per_s"] > 0 and "requests/s" in run.stdout
    refused = subprocess.run(
        [sys.executable, str(bench), "--url", "http://192.0.2.1:8000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "loopback" in refused.stderr


def test_percentile_matches_numpy():
    np = pytest.importorskip("numpy")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from serve_load import percentile

    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 0.05]
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="needs Linux /proc/net/tcp")
def test_listens_on_loopback_only(server):
    port = f"{server.port:04X}"
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A" and line.split()[1].endswith(f":{port}")  # 0A: LISTEN
    ]
    assert listening == [f"0100007F:{port}"]  # 127.0.0.1, not 0.0.0.0


def test_bad_command_lines_are_one_clear_line(tmp_path, capsys, monkeypatch):
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "model.onnx").write_bytes(b"")
    cases = [
        (
            ["serve", str(exported), "--backend", "onnx", "--compile", "true"],
            "--compile applies to the torch",
        ),
        (["serve", str(tmp_path / "missing.ckpt")], "no such model directory or checkpoint"),
        (["serve", str(tmp_path), "--host", "localhost"], "--host must be 127.0.0.1, 0.0.0.0 or ::"),
        (["serve", str(tmp_path), "--backend", "onnx"], "no model.onnx"),
        (["serve", str(tmp_path), "--port", "80"], "--port must be from 1024 to 65535"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lightning_qa: error: ") and message in err[0], err
    monkeypatch.setattr("lightning_qa.serve.ls", None)  # litserve not installed
    with pytest.raises(SystemExit):
        main(["serve", str(tmp_path)])
    assert capsys.readouterr().err.strip() == (
        'lightning_qa: error: serving needs litserve, which is not installed: pip install "lightning_qa[serve]"'
    )


LONG = "The mill that Ann built in 1887 still stands by the river, next to the old stone bridge."


@pytest.fixture(scope="module")
def api(tiny_model_dir):
    """The worker side, in-process (what runs in LitServe's inference worker)."""
    from lightning_qa.serve import QAServeAPI

    api = QAServeAPI(tiny_model_dir, max_batch_size=4)
    api.setup("cpu")
    return api


def test_api_answers_a_dynamic_batch_with_one_predictor_call(api, reference, monkeypatch):
    calls = []
    predictor = api.predictor
    monkeypatch.setattr(api, "predictor", lambda **kw: calls.append(kw) or predictor(**kw))
    requests = [
        GOOD,
        {"question": ["Who built it?", "When?"], "context": [LONG, LONG]},
        {"question": "Where is the mill?", "context": LONG},
    ]
    outputs = api.predict([api.decode_request(r) for r in requests])
    assert len(calls) == 1 and len(calls[0]["question"]) == 4
    assert outputs[0] == reference(**GOOD)
    assert outputs[1] == reference(question=["Who built it?", "When?"], context=[LONG, LONG])
    assert outputs[2] == reference(question="Where is the mill?", context=LONG)
    assert api.predict(api.decode_request(GOOD)) == outputs[0]  # max_batch_size=1: one request, unbatched
    assert [api.encode_response(o) for o in outputs] == outputs


def test_a_failing_prediction_fails_only_its_own_request(api, reference, monkeypatch):
    """LitServe fails a whole batch when predict raises: a question that breaks the predictor gets its own
    500, the other requests of its batch their answers."""
    predictor = api.predictor

    def fragile(question, context):
        if any("boom" in q for q in question):
            raise RuntimeError("index out of bounds")
        return predictor(question=question, context=context)

    monkeypatch.setattr(api, "predictor", fragile)
    requests = [GOOD, {"question": "boom?", "context": LONG}, {"question": ["Who?"], "context": [LONG]}]
    outputs = [api.encode_response(o) for o in api.predict([api.decode_request(r) for r in requests])]
    assert outputs[0] == reference(**GOOD)
    assert outputs[1].status_code == 500 and b"prediction failed (RuntimeError)" in outputs[1].body
    assert outputs[2] == reference(question=["Who?"], context=[LONG])


def test_onnx_backend_answers_like_torch(tmp_path, tiny_model_dir, reference):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from transformers import AutoModelForQuestionAnswering

    from lightning_qa.onnx_export import export_onnx
    from lightning_qa.serve import QAServeAPI

    model_dir = tmp_path / "model"
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    model.save_pretrained(model_dir)
    reference.tokenizer.save_pretrained(model_dir)
    export_onnx(model, reference.tokenizer, str(model_dir))
    api = QAServeAPI(str(model_dir), backend="onnx")
    api.setup("cpu")
    answer = api.predict(api.decode_request(GOOD))
    expected = reference(**GOOD)
    assert (answer["answer"], answer["start"], answer["end"]) == (
        expected["answer"],
        expected["start"],
        expected["end"],
    )
