"""Load test of `lightning_qa serve` on loopback: a bounded number of concurrent POST /predict requests.

Starts a server on 127.0.0.1 (a free port; its own process group, stopped at the end) unless `--url` names
one already running on this machine, sends `--requests` SQuAD questions from `--concurrency` client threads
(each request with a timeout), and reports requests/s and latency percentiles. Only loopback addresses are
accepted.

    python3 benchmarks/serve_load.py [--model lightning_qa/assets/tiny-distilbert] [--requests 200]
        [--concurrency 8] [--max_batch_size 8] [--batch_timeout 0.01] [--backend torch|onnx]
    python3 benchmarks/serve_load.py --url http://127.0.0.1:8000   # a server started by hand

Prints a table and one JSON line. Measured under load: latencies include queueing behind the other
clients' requests, and on a small machine the clients compete with the server for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD_DEV = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
SAMPLE_DEV = ROOT / "lightning_qa" / "assets" / "sample" / "dev.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def questions(path: Path, n: int) -> list[dict[str, str]]:
    """The first `n` (question, context) pairs of a SQuAD file, repeated if it has fewer."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    pairs = [
        {"question": qa["question"], "context": p["context"]}
        for article in data
        for p in article["paragraphs"]
        for qa in p["qas"]
    ][:n]
    return [pairs[i % len(pairs)] for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "lightning_qa.cli", "serve", args.model, "--port", str(port)]
    command += ["--max_batch_size", str(args.max_batch_size), "--batch_timeout", str(args.batch_timeout)]
    command += ["--backend", args.backend, "--device", args.device]
    command += ["--fast_queue"] if args.fast_queue else []
    command += ["--num_threads", str(args.num_threads)] if args.num_threads else []
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.read() == b"ok":
                    return process, url
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise SystemExit(
        f"the server was not ready after {args.startup_timeout}s:\n{log_path.read_text()[-3000:]}"
    )


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (graceful), then SIGKILL the server's process group if anything is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def send(url: str, body: dict[str, str], timeout: float) -> tuple[float, int]:
    """(seconds, HTTP status; 0 for a timeout or connection error) of one POST /predict."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/predict", data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = 0
    return time.perf_counter() - t0, status


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def run_load(url: str, bodies: list[dict[str, str]], concurrency: int, timeout: float) -> dict:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda body: send(url, body, timeout), bodies))
    wall = time.perf_counter() - t0
    ok = [s for s, status in results if status == 200]
    return {
        "requests": len(bodies),
        "ok": len(ok),
        "errors": len(bodies) - len(ok),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(ok) / wall, 2),
        "latency_ms": {
            name: round(1000 * value, 1)
            for name, value in (
                ("p50", percentile(ok, 50)),
                ("p95", percentile(ok, 95)),
                ("p99", percentile(ok, 99)),
                ("mean", sum(ok) / len(ok)),
                ("max", max(ok)),
            )
        }
        if ok
        else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "lightning_qa" / "assets" / "tiny-distilbert"))
    parser.add_argument("--url", default=None, help="a running server on loopback (default: start one)")
    parser.add_argument("--data", default=str(SQUAD_DEV if SQUAD_DEV.is_file() else SAMPLE_DEV))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=16, help="requests sent first, not measured")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--max_batch_size", type=int, default=8)
    parser.add_argument("--batch_timeout", type=float, default=0.01)
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast_queue", action="store_true", help="serve with ZeroMQ queues (LitServe's)")
    parser.add_argument("--num_threads", type=int, default=None, help="the server's model threads")
    parser.add_argument("--startup_timeout", type=float, default=300.0)
    args = parser.parse_args()
    from lightning_qa.hardware import cpu_line

    print(cpu_line(), flush=True)  # the figures below depend on it
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 256:
        raise SystemExit("--requests must be 1..100000 and --concurrency 1..256")
    if args.url and urllib.parse.urlsplit(args.url).hostname not in LOOPBACK:
        raise SystemExit(f"--url must be a loopback address ({', '.join(LOOPBACK)}), not {args.url}")

    bodies = questions(Path(args.data), args.warmup + args.requests)
    process = None
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_load-{os.getpid()}.log"
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            t0 = time.perf_counter()
            process, url = start_server(args, log_path)
            print(f"server ready at {url} in {time.perf_counter() - t0:.1f}s (log: {log_path})")
        if args.warmup:
            run_load(url, bodies[: args.warmup], args.concurrency, args.timeout)
        stats = run_load(url, bodies[args.warmup :], args.concurrency, args.timeout)
    finally:
        if process is not None:
            stop_server(process)

    result = {
        "benchmark": "serve_load",
        "measured_under_load": True,
        "url": url,
        "model": os.path.basename(os.path.normpath(args.model)) if not args.url else None,
        "backend": args.backend if not args.url else None,
        "max_batch_size": args.max_batch_size if not args.url else None,
        "batch_timeout": args.batch_timeout if not args.url else None,
        "fast_queue": args.fast_queue if not args.url else None,
        "num_threads": args.num_threads if not args.url else None,
        "concurrency": args.concurrency,
        "data": os.path.basename(args.data),
        **stats,
        "machine": {
            "cpus": os.cpu_count(),
            "torch": version("torch"),
            "litserve": version("litserve"),
            "python": platform.python_version(),
        },
    }
    latency = stats["latency_ms"]
    print(f"\n{'serve_load (measured under load)':<34}{'value':>12}")
    rows = [
        ("requests ok / sent", f"{stats['ok']}/{stats['requests']}"),
        ("concurrency", args.concurrency),
        ("max_batch_size / batch_timeout", f"{args.max_batch_size} / {args.batch_timeout}s"),
        ("wall (s)", stats["wall_s"]),
        ("requests/s", stats["requests_per_s"]),
        *((f"latency {k} (ms)", v) for k, v in latency.items()),
    ]
    for label, value in rows:
        print(f"{label:<34}{value!s:>12}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
