#!/usr/bin/env python3
"""The serverless benchmarks of issue 15, on a moto server of their own (127.0.0.1) with
local functions, every ratio taken within one invocation.

    python benchmarks/serverless.py                  # storage scaling memory (~10 min)
    python benchmarks/serverless.py storage          # or any of the three
    python benchmarks/serverless.py --quick          # short runs, to check the script

storage  with the null engine in the function: SingleStream p50 end to end (LoadGen) ÷
         the raw round trip of one PUT -> S3 event (SQS) -> GET on the same moto server,
         the raw loop measured before and after the run (the faster one is the reference,
         so the ratio errs high); also ÷ the raw two-hop chain the design needs (request
         PUT -> event -> GET by a "function" thread, output PUT -> event -> GET), and
         ÷ that chain with the request carrying one demo-sized sample (602 KB), as the
         SUT's requests do: the design's own floor with its bytes
scaling  the demo model, Offline, --concurrency 2 ÷ 1 (runs interleaved 1, 2, 1, 2; the
         better of each), with the CPU seconds per sample of moto, the host (the bench
         process and its LoadGen test process) and the function instances, read from /proc
memory   `serverless sweep` of the demo model over 768,1536,2240,3008 MB (its table)
phases   (only when named) one request at a time through the SUT's client and one local
         instance (null engine, one 602 KB sample inside each request), its phases from
         the output's start/finish stamps against this process's clock: PUT request,
         to the handler, the handler, to the output's event, GET output

Writes benchmarks/results/serverless-<names>.json and prints markdown for
benchmarks/README.md. Needs the `serverless` and `test` extras (boto3, moto[server]).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # servers.moto_server

from mlperf_pilot.assets.cache import AssetCache  # noqa: E402
from mlperf_pilot.config import cache_dir_for  # noqa: E402
from mlperf_pilot.engine import resolve_spec, run_benchmark  # noqa: E402
from servers.moto_server import moto_server  # noqa: E402

DEMO = "efficientnet-lite0-demo"
BUCKET = "bench-serverless"
NAMES = ("storage", "scaling", "memory", "phases")
DEFAULT = ("storage", "scaling", "memory")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MOTO_PID: int | None = None  # main() sets it: the raw loops read its CPU time


def _process_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ------------------------------------------------------------------------ CPU from /proc


class CpuMeter:
    """CPU seconds of this process and its descendants by role (moto, the function
    instances, the rest = host), sampled from /proc every ``interval_s``; only the ticks
    while function instances are alive count (the LoadGen test, its warm-up included)."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        # machine: every process's CPU (/proc/stat), so others = what other tenants took
        self.totals = {"moto": 0.0, "host": 0.0, "instances": 0.0, "machine": 0.0}
        self.window_s = 0.0
        self._last: dict[tuple[int, str], tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        previous_t, previous_busy = time.perf_counter(), _machine_busy()
        previous = self._sample()
        while not self._stop.wait(self.interval_s):
            now_t, now, busy = time.perf_counter(), self._sample(), _machine_busy()
            if any(role == "instances" for role, _ in now.values()) and \
                    any(role == "instances" for role, _ in previous.values()):
                self.window_s += now_t - previous_t
                self.totals["machine"] += busy - previous_busy
                for key, (role, cpu) in now.items():
                    before = previous.get(key)
                    if before is not None:
                        self.totals[role] += max(0.0, cpu - before[1])
            previous_t, previous, previous_busy = now_t, now, busy

    def others(self) -> float:
        """CPU seconds of the window that other processes of the machine took."""
        ours = sum(v for k, v in self.totals.items() if k != "machine")
        return max(0.0, self.totals["machine"] - ours)

    def _sample(self) -> dict[tuple[int, str], tuple[str, float]]:
        me = os.getpid()
        parents: dict[int, int] = {}
        stats: dict[int, tuple[str, float]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            fields = text.rpartition(")")[2].split()
            pid = int(entry)
            parents[pid] = int(fields[1])
            cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
            start = fields[19]
            role = "moto" if b"moto.server" in cmdline else \
                "instances" if b"local_functions" in cmdline else "host"
            stats[pid] = (f"{role}:{start}", cpu)
        found: dict[tuple[int, str], tuple[str, float]] = {}
        for pid, (tag, cpu) in stats.items():
            walk, seen = pid, 0
            while walk not in (me, 0, 1) and seen < 64:
                walk, seen = parents.get(walk, 0), seen + 1
            if walk == me:
                role, _, start = tag.partition(":")
                found[(pid, start)] = (role, cpu)
        return found


def _machine_busy() -> float:
    """CPU seconds every core of the machine has been busy (not idle, not iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


# ------------------------------------------------------------------------------ helpers


def run_spec(layer: dict[str, Any], cache: AssetCache) -> Any:
    return run_benchmark(resolve_spec([layer]), cache=cache).records[0]


# a SingleStream request of the demo's input: 3x224x224 float32 and its JSON line
SAMPLE_REQUEST_BYTES = 602_112 + 1_024


def serverless_layer(url: str, work: Path, name: str, **sut: Any) -> dict[str, Any]:
    return {"model": DEMO, "results_dir": str(work / name), "modes": ["performance"],
            "sut": {"kind": "serverless", "bucket": BUCKET, "storage_endpoint": url,
                    "functions": "local", **sut}}


def p50_ms(record: Any) -> float:
    return record.loadgen.latency_percentiles_ns["50.00"] / 1e6


def raw_round_trips(url: str, count: int, defer: bool = False) -> dict[str, float]:
    """p50/p90 (ms) of PUT output/raw-*/N.json -> its S3 event on the output queue ->
    GET, one at a time, through the same boto3 clients the SUT uses; the message deleted
    before the GET, or with ``defer`` by the queue's deleter thread (as the SUT does);
    moto's CPU ms per round trip."""
    from mlperf_pilot.serverless.aws import Aws, AwsTarget
    from mlperf_pilot.serverless.bucket import Bucket

    aws = Aws(AwsTarget(endpoint_url=url))
    bucket = Bucket(aws, BUCKET)
    events = bucket.ensure_output_queue()
    events.drain()
    run = f"raw-{time.time_ns()}"
    body = json.dumps({"raw": True, "pad": "x" * 200}).encode()
    options = {"defer_delete": True} if defer else {}
    times = []
    moto_before = _process_cpu_s(MOTO_PID)
    for i in range(count):
        key = f"output/{run}/r{i:07d}.json"
        began = time.perf_counter()
        bucket.put(key, body)
        while not any(e.key == key for e in events.receive(wait_s=1, **options)):
            pass
        assert bucket.get(key) is not None
        times.append((time.perf_counter() - began) * 1000)
    if defer:
        events.close()
    moto_ms = 1000 * (_process_cpu_s(MOTO_PID) - moto_before) / count
    bucket.delete_prefix(f"output/{run}/")
    return {**_percentiles(times), "moto_cpu_ms": moto_ms}


def raw_chain(url: str, count: int, request_bytes: int = 0) -> dict[str, float]:
    """The design's two hops without the tool: PUT input/local-raw-*/N.json -> event ->
    a "function" thread GETs it and PUTs a 200-byte answer to output/... -> event -> GET,
    one at a time. ``request_bytes``: the request padded to that size (a sample carried
    inside it, as the SUT's are); 0: 200 bytes."""
    from mlperf_pilot.serverless.aws import Aws, AwsTarget
    from mlperf_pilot.serverless.bucket import Bucket

    aws = Aws(AwsTarget(endpoint_url=url))
    bucket = Bucket(aws, BUCKET)
    outputs, inputs = bucket.ensure_output_queue(), bucket.ensure_local_input_queue()
    run = f"local-raw-{time.time_ns()}"
    stop = threading.Event()

    def function() -> None:
        while not stop.is_set():
            for event in inputs.receive(wait_s=1):
                if event.key.startswith(f"input/{run}/"):
                    data = bucket.get(event.key)
                    assert data is not None
                    bucket.put(event.key.replace("input/", "output/", 1), body)

    body = json.dumps({"raw": True, "pad": "x" * 200}).encode()
    request = body + b"\n" + bytes(max(0, request_bytes - len(body) - 1)) if request_bytes \
        else body
    worker = threading.Thread(target=function, daemon=True)
    worker.start()
    times = []
    try:
        for i in range(count):
            key = f"input/{run}/r{i:07d}.json"
            answer = key.replace("input/", "output/", 1)
            began = time.perf_counter()
            bucket.put(key, request)
            while not any(e.key == answer for e in outputs.receive(wait_s=1)):
                pass
            assert bucket.get(answer) is not None
            times.append((time.perf_counter() - began) * 1000)
    finally:
        stop.set()
        worker.join()
    bucket.delete_prefix(f"input/{run}/")
    bucket.delete_prefix(f"output/{run}/")
    return _percentiles(times)


def _percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"count": len(times), "p50_ms": statistics.median(ordered),
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))], "mean_ms": statistics.fmean(times)}


# ------------------------------------------------------------------------- the benchmarks


def storage(url: str, work: Path, cache: AssetCache, quick: bool) -> dict[str, Any]:
    count = 50 if quick else 300
    before, chain_before = raw_round_trips(url, count), raw_chain(url, count)
    deferred_before = raw_round_trips(url, count, defer=True)
    # the same chain with the request carrying one demo-sized sample (602,112 bytes + its
    # JSON line), as the SUT's SingleStream requests do: the design's floor with its bytes
    sample_chain_before = raw_chain(url, count, request_bytes=SAMPLE_REQUEST_BYTES)
    # the null engine answers one zero per sample: a class-index card (resnet50-synthetic,
    # whose file the null engine never reads) on the bench's synthetic photos
    from mlperf_pilot.bench.workload import bench_images

    layer = serverless_layer(url, work, "storage", backend="null")
    layer.update(model="resnet50-synthetic", dataset_path=str(bench_images(cache, 64)))
    with CpuMeter() as meter:
        record = run_spec({**layer, "scenarios": ["SingleStream"],
                           "loadgen": {"min_duration_ms": 3000 if quick else 20000}}, cache)
    after, chain_after = raw_round_trips(url, count), raw_chain(url, count)
    deferred_after = raw_round_trips(url, count, defer=True)
    sample_chain_after = raw_chain(url, count, request_bytes=SAMPLE_REQUEST_BYTES)
    sample_chain = min(sample_chain_before["p50_ms"], sample_chain_after["p50_ms"])
    queries = record.loadgen.generated_query_count or 0
    raw = min(before["p50_ms"], after["p50_ms"])
    chain = min(chain_before["p50_ms"], chain_after["p50_ms"])
    pilot = p50_ms(record)
    details = record.sut_details
    deferred = min(deferred_before["p50_ms"], deferred_after["p50_ms"])
    return {"raw_before": before, "raw_after": after, "chain_before": chain_before,
            "chain_after": chain_after, "sample_chain_before": sample_chain_before,
            "sample_chain_after": sample_chain_after,
            "sample_chain_ratio_to_round_trip": sample_chain / raw,
            "ratio_to_sample_chain": pilot / sample_chain,
            "raw_deferred_before": deferred_before,
            "raw_deferred_after": deferred_after, "pilot_p50_ms": pilot,
            "pilot_p90_ms": record.loadgen.latency_percentiles_ns["90.00"] / 1e6,
            "pilot_status": str(record.status), "pilot_reasons": record.reasons,
            "fn_duration_ms": details.get("fn_duration_ms"),
            "fn_image_operations_ms": details.get("fn_image_operations_ms"),
            "ratio_to_round_trip": pilot / raw, "ratio_to_chain": pilot / chain,
            "ratio_to_deferred_round_trip": pilot / deferred,
            "pilot_queries": queries,
            "pilot_cpu_ms_per_query": {k: 1000 * v / queries for k, v in meter.totals.items()}
            if queries else {},
            "pilot_cores_busy": {k: v / meter.window_s for k, v in
                                 {**meter.totals, "others": meter.others()}.items()}
            if meter.window_s else {},
            "loadavg": os.getloadavg(),
            "goal": "<= 1.5 (to one round trip)"}


def scaling(url: str, work: Path, cache: AssetCache, quick: bool) -> dict[str, Any]:
    duration = 3000 if quick else 20000
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for round_ in range(1 if quick else 2):
        for concurrency in (1, 2):
            with CpuMeter() as meter:
                record = run_spec({**serverless_layer(url, work, f"scaling-{round_}-"
                                                      f"{concurrency}", concurrency=concurrency),
                                   "scenarios": ["Offline"],
                                   "loadgen": {"min_duration_ms": duration}}, cache)
            result = record.loadgen
            samples = (result.generated_samples_per_query or 0) * \
                (result.generated_query_count or 1)
            details = record.sut_details
            runs[concurrency].append({
                "samples_per_s": record.metric_value, "status": str(record.status),
                "reasons": record.reasons, "samples": samples,
                "fn_forward_ms": details.get("fn_forward_ms"),
                "fn_image_operations_ms": details.get("fn_image_operations_ms"),
                "fn_duration_ms": details.get("fn_duration_ms"),
                "fn_answers": details.get("fn_answers"),
                "max_batch_size": details.get("max_batch_size"),
                "cpu_window_s": meter.window_s,
                "cpu_s": {**meter.totals, "others": meter.others()},
                "cpu_ms_per_sample": {k: 1000 * v / samples for k, v in meter.totals.items()}
                if samples else {},
                "cores_busy": {k: v / meter.window_s for k, v in
                               {**meter.totals, "others": meter.others()}.items()}
                if meter.window_s else {},
                "loadavg": os.getloadavg()})
    best = {c: max(r["samples_per_s"] or 0.0 for r in rs) for c, rs in runs.items()}
    return {"runs": runs, "best": best, "ratio": best[2] / best[1] if best[1] else None,
            "cores": os.cpu_count(), "goal": ">= 1.7"}


def phases(url: str, work: Path, cache: AssetCache, quick: bool) -> dict[str, Any]:
    import numpy as np

    from mlperf_pilot.serverless.aws import Aws, AwsTarget
    from mlperf_pilot.serverless.bucket import Bucket, new_run_id
    from mlperf_pilot.serverless.local_functions import LocalFunctionPool
    from mlperf_pilot.sut.serverless import FunctionClient

    aws = Aws(AwsTarget(endpoint_url=url))
    bucket = Bucket(aws, BUCKET)
    inputs, outputs = bucket.ensure_local_input_queue(), bucket.ensure_output_queue()
    inputs.drain()
    outputs.drain()
    sample = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    run = new_run_id("local")
    pool = LocalFunctionPool(
        bucket=bucket, events=inputs, instances=1, memory_mb=1769, threads=1,
        environment={"MLPERF_FN_BACKEND": "null", "MLPERF_FN_S3_ENDPOINT": url,
                     "MLPERF_FN_BUCKET": BUCKET},
        function_name="bench-phases", request_timeout_ms=10_000)
    client = FunctionClient(bucket, outputs, run, dataset_key="none", outputs=["o"],
                            timeout_ms=10_000, what="local functions", inline_bytes=8 << 20)
    marks: dict[str, float] = {}
    put, get = bucket.put, bucket.get

    def timed_put(key: str, data: bytes, **options: Any) -> None:
        put(key, data, **options)
        marks["put"] = time.time()

    def timed_get(key: str) -> bytes | None:
        marks["get"] = time.time()
        return get(key)

    bucket.put, bucket.get = timed_put, timed_get  # type: ignore[method-assign]
    rows: list[dict[str, float]] = []
    pool.serve(run)
    pool.start()
    client.start()
    try:
        for i in range((30 if quick else 300) + 5):
            began = time.time()
            out = client.call([0], samples=sample)
            done = time.time()
            assert out.ok, out.error_message
            if i >= 5:  # the cold start and the first calls left out
                rows.append({"put_request": marks["put"] - began,
                             "to_handler": out.start_time - marks["put"],
                             "handler": out.finish_time - out.start_time,
                             "to_output_event": marks["get"] - out.finish_time,
                             "get_output": done - marks["get"], "total": done - began})
    finally:
        client.stop()
        pool.stop()
        bucket.clean_run(run)
    return {"count": len(rows), "loadavg": os.getloadavg(),
            "p50_ms": {k: 1000 * statistics.median(r[k] for r in rows) for k in rows[0]}}


def memory(url: str, work: Path, cache: AssetCache, quick: bool) -> dict[str, Any]:
    from mlperf_pilot.serverless.sweep import SweepOptions, run_sweep

    sizes = (768, 3008) if quick else (768, 1536, 2240, 3008)
    layer = {"modes": ["performance"], "scenarios": ["SingleStream", "Offline"],
             "loadgen": {"min_duration_ms": 3000 if quick else 10000},
             "sut": {"bucket": BUCKET, "storage_endpoint": url, "functions": "local"}}
    out = ROOT / "benchmarks" / "results" / ("serverless-sweep-quick" if quick
                                              else "serverless-sweep")
    result = run_sweep(SweepOptions(model=DEMO, backends=("onnxruntime",), memory_mb=sizes,
                                    out_dir=out, layers=(layer,), runs_dir=work / "sweep"),
                       cache=cache)
    return {"out": str(out), "ok": result.ok,
            "table": (out / "sweep.md").read_text(), "points": result.to_dict()["points"]}


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or list(DEFAULT)
    quick = "--quick" in argv
    for name in names:
        if name not in NAMES:
            raise SystemExit(f"unknown benchmark {name!r}: one of {', '.join(NAMES)}")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)  # moto takes any; real keys are never needed
    cache = AssetCache(cache_dir_for(None, None))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "quick": quick, "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-serverless-") as tmp, \
            moto_server(log_dir=Path(tmp)) as moto:
        import boto3

        global MOTO_PID
        MOTO_PID = moto.pid
        boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket=BUCKET)
        for name in names:
            began = time.perf_counter()
            results[name] = globals()[name](moto.url, Path(tmp), cache, quick)
            results[name]["seconds"] = time.perf_counter() - began
            print(json.dumps({name: {k: v for k, v in results[name].items()
                                     if k not in ("table", "points")}}, indent=1,
                             default=str), flush=True)
            if name == "memory":
                print(results[name]["table"], flush=True)
    results["loadavg_end"] = os.getloadavg()
    out = ROOT / "benchmarks" / "results" / f"serverless-{'-'.join(names)}" \
        f"{'-quick' if quick else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
