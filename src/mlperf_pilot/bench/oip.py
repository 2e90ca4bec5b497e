"""The network SUT's benchmarks (``mlperf-pilot bench oip oip-ceiling``, issue 14).

    oip          loopback efficiency: Offline samples/s of ``run --sut oip`` against
                 ``mlperf-pilot serve`` on this machine / the local SUT's, same model,
                 backend and batch size, for several ways of sharing the cores between
                 client and server; SingleStream added latency (p90 over loopback - p90
                 local) with the binary tensor extension and with JSON
    oip-ceiling  a null model behind ``serve --backend null``: Offline samples/s and the
                 highest Server QPS that stays VALID at 15 ms, at the demo's sample size
                 (3x224x224 float32, 588 KiB) and with small samples (3x16x16, 3 KiB),
                 next to what this machine moves over loopback TCP and through memcpy

Each server is a ``mlperf-pilot serve`` subprocess on 127.0.0.1 with ``--port 0``,
started and stopped (SIGTERM, then SIGKILL) by its PID; its log is kept in the bench's
work folder. Local and network runs are interleaved (local, network..., local) and the
better local run is the reference, so a neighbour's burst on a shared machine cannot
flatter a ratio. Core splits pin processes with ``os.sched_setaffinity`` (the server's
threads after it is ready, the client's test process by the bench's own affinity while
it starts).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf_pilot.catalog import Catalog
from mlperf_pilot.datasets.prepared import usable_cores
from mlperf_pilot.oip.process import ServeProcess
from mlperf_pilot.oip.process import start_serve as start_process
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.bench.suite import BenchContext
    from mlperf_pilot.results.records import RunRecord

DEMO = "efficientnet-lite0-demo"
DEMO_SAMPLE_BYTES = 3 * 224 * 224 * 4
# The null model answers one value per sample: the ceiling runs a card whose decoder
# reads a class index (the harness ceiling's card; the demo's 3x224x224 float32 input)
CEILING_MODEL = "resnet50-synthetic"
# A bench card with that interface and 3x16x16 inputs (3 KiB samples): the same protocol
# path, with the bytes per sample no longer the cost
SMALL = "bench-small-samples"
SMALL_RECIPE = "bench-small-16"
SMALL_SIZE = 16
OIP_BATCH = 8  # the demo card's batch size, local and over the network alike
CEILING_BATCH = 32  # Offline batches of the null model (more samples per request)
SERVER_BATCH = 8
CEILING_BOUND_MS = 15
START_TIMEOUT_S = 180.0


# ------------------------------------------------------------------------ the server


# the bench's small-sample card is not in the packaged catalog: this launcher serves from
# the packaged catalog plus the bench's cards (``bench_catalog``)
_WITH_BENCH_CARDS = ("import sys; from mlperf_pilot.bench.oip import serve_with_bench_cards; "
                     "raise SystemExit(serve_with_bench_cards(sys.argv[1:]))")


def start_serve(args: Sequence[str], *, cache: AssetCache, log_dir: Path,
                cpus: set[int] | None = None, bench_cards: bool = False,
                timeout_s: float = START_TIMEOUT_S) -> ServeProcess:
    """``mlperf-pilot serve --host 127.0.0.1 --port 0 ARGS`` started, ready (its ready
    line read from the log) and, with ``cpus``, pinned to those cores."""
    log = log_dir / f"serve-{len(list(log_dir.glob('serve-*.log'))) + 1}.log"
    head = [sys.executable, "-c", _WITH_BENCH_CARDS] if bench_cards else \
        [sys.executable, "-m", "mlperf_pilot", "serve"]
    command = [*head, "--cache-dir", str(cache.root), "--host", "127.0.0.1", "--port", "0",
               *args]
    env = {k: v for k, v in os.environ.items() if k != "MLPERF_PILOT_TOKEN"}
    server = start_process(command, log=log, env=env, timeout_s=timeout_s, args=args)
    if cpus:
        pin_process(server.pid, cpus)
    return server


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` on ``cpus`` (threads it starts later inherit)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """This thread (and the processes it starts meanwhile) on ``cpus``."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def serving(ctx: BenchContext, args: Sequence[str], *, cpus: set[int] | None = None,
            bench_cards: bool = False, servers: list[dict[str, Any]] | None = None
            ) -> Iterator[ServeProcess]:
    """A server for the block, stopped by its PID afterwards (``servers`` gets its args,
    PID and exit code)."""
    server = start_serve(args, cache=ctx.cache, log_dir=ctx.work / "servers", cpus=cpus,
                         bench_cards=bench_cards)
    try:
        yield server
    finally:
        code = server.stop()
        if servers is not None:
            servers.append({"args": " ".join(args), "pid": server.pid, "exit_code": code})


def bench_catalog(catalog: Catalog) -> Catalog:
    """``catalog`` plus the small-sample card: the ceiling card's interface, decoding and
    data set with 3x16x16 inputs (a plain resize of the photo), no model file (for the
    null backend)."""
    demo = catalog.model(CEILING_MODEL)
    fmt = demo.format(None)
    recipe = catalog.recipe(fmt.preprocess)
    small_recipe = recipe.model_copy(update={
        "resize": recipe.resize.model_copy(update={"mode": "stretch",
                                                    "size": (SMALL_SIZE, SMALL_SIZE)}),
        "crop": None})
    spec = fmt.inputs[0]
    small_fmt = fmt.model_copy(update={
        "id": "small", "build": None, "convert": None, "preprocess": SMALL_RECIPE,
        "inputs": (spec.model_copy(update={"shape": (-1, 3, SMALL_SIZE, SMALL_SIZE)}),)})
    small = demo.model_copy(update={
        "name": SMALL, "title": "small samples for mlperf-pilot bench (null backend only)",
        "formats": (small_fmt,), "default_format": "small", "default_backend": "null"})
    recipes = {f.preprocess for card in catalog.models for f in card.formats}
    return Catalog({**{c.name: c for c in catalog.models}, SMALL: small},
                   {d.name: d for d in catalog.datasets},
                   {**{name: catalog.recipe(name) for name in recipes},
                    SMALL_RECIPE: small_recipe})


def serve_with_bench_cards(argv: Sequence[str]) -> int:
    """``mlperf-pilot serve ARGV`` with the bench's cards in the catalog (the bench's
    server launcher for the small-sample card)."""
    import mlperf_pilot.catalog as catalog_module
    from mlperf_pilot.cli.main import main

    cards = bench_catalog(catalog_module.load_catalog())
    catalog_module.load_catalog = lambda: cards  # type: ignore[assignment]
    return main(["serve", *argv])


# ---------------------------------------------------------------------- measurements


def _oip_sut(url: str, *, batch: int, concurrency: int, protocol: str = "binary"
             ) -> dict[str, Any]:
    return {"kind": "oip", "endpoint": url, "max_batch_size": batch,
            "concurrency": concurrency, "protocol": protocol,
            "request_timeout_ms": 30_000, "ready_timeout_s": 30.0}


def _p90_ms(record: RunRecord) -> float | None:
    if record.loadgen is None or "90.00" not in record.loadgen.latency_percentiles_ns:
        return None
    return record.loadgen.latency_percentiles_ns["90.00"] / 1e6


def _offline(record: RunRecord) -> dict[str, Any]:
    samples = record.loadgen.generated_samples_per_query if record.loadgen else None
    return {"samples_per_s": record.metric_value or 0.0, "status": record.status,
            "samples": samples, "samples_failed": record.samples_failed,
            "reasons": record.reasons[:2]}


def _splits(cores: int, quick: bool) -> list[dict[str, Any]]:
    """How client and server share the cores: serve args, client concurrency, and the
    cores each is pinned to (none: the scheduler shares them)."""
    every = str(cores)
    splits: list[dict[str, Any]] = [
        {"split": f"shared: serve --threads {every} --workers 1, client concurrency 2",
         "serve": ["--threads", every, "--workers", "1"], "concurrency": 2}]
    if quick or cores < 2:
        return splits
    splits.append({"split": f"shared: serve --threads 1 --workers {every}, client "
                   f"concurrency {every}",
                   "serve": ["--threads", "1", "--workers", every], "concurrency": cores})
    splits.append({"split": f"shared: serve --threads 1 --workers {every}, client "
                   f"concurrency {2 * cores}",
                   "serve": ["--threads", "1", "--workers", every], "concurrency": 2 * cores})
    # spinning within a batch only (onnxruntime stops its threads when the batch ends)
    splits.append({"split": f"shared: serve --threads {every} --workers 1 --spin-wait, client "
                   "concurrency 2",
                   "serve": ["--threads", every, "--workers", "1", "--spin-wait"],
                   "concurrency": 2})
    on = "cpu 0" if cores == 2 else f"cpus 0-{cores - 2}"
    splits.append({"split": f"pinned: serve on {on} (--threads {cores - 1}), "
                   f"client on cpu {cores - 1}, concurrency 2",
                   "serve": ["--threads", str(cores - 1), "--workers", "1"],
                   "concurrency": 2, "server_cpus": set(range(cores - 1)),
                   "client_cpus": {cores - 1}})
    return splits


def _rounds(quick: bool) -> tuple[int, int]:
    """(rounds, ms per run): several short interleaved rounds rather than one long run
    each, so that the machine's swings hit local and network runs alike."""
    return (1, 500) if quick else (3, 8000)


def _bracketed(values: list[float | None], references: list[float | None], *,
               better: Any, combine: Any) -> float | None:
    """The median over rounds of ``combine(value, reference)``, each round's reference the
    better (``better``: max or min) of the local runs before and after it."""
    found = []
    for n, value in enumerate(values):
        around = [r for r in references[n:n + 2] if r is not None]
        if value is not None and around:
            found.append(combine(value, better(around)))
    return float(np.median(found)) if found else None


def loopback_efficiency(ctx: BenchContext) -> dict[str, Any]:
    """Offline through ``run --sut oip`` against ``serve`` on this machine / the local
    SUT, and the SingleStream p90 added over loopback (binary and JSON)."""
    cores = usable_cores()
    quick = ctx.budget.images < 256
    images = ctx.budget.images
    rounds, run_ms = _rounds(quick)
    local_sut = {"max_batch_size": OIP_BATCH, "threads": cores}
    servers: list[dict[str, Any]] = []
    splits = _splits(cores, quick)
    with contextlib.ExitStack() as stack:
        for split in splits:
            split["server"] = stack.enter_context(serving(
                ctx, [*split["serve"], "--max-batch-size", str(OIP_BATCH)],
                cpus=split.get("server_cpus"), servers=servers))
        local: list[dict[str, Any]] = []
        runs: dict[str, list[dict[str, Any]]] = {s["split"]: [] for s in splits}
        target = 0.0

        def offline(**settings: Any) -> dict[str, Any]:
            nonlocal target
            # well above the fastest run so far: no run ends before its minimum duration
            loadgen = {"target_qps": target * 1.5} if target else {}
            record = ctx.pilot(DEMO, Scenario.OFFLINE, images, test_duration_ms=run_ms,
                               loadgen=loadgen, **settings)
            result = _offline(record)
            target = max(target, result["samples_per_s"])
            return result

        for _ in range(rounds):
            local.append(offline(sut=local_sut))
            for split in splits:
                with pinned(split.get("client_cpus")):
                    runs[split["split"]].append(offline(sut=_oip_sut(
                        split["server"].url, batch=OIP_BATCH,
                        concurrency=split["concurrency"])))
        local.append(offline(sut=local_sut))
    local_rates = [r["samples_per_s"] or None for r in local]
    figures = []
    for split in splits:
        done = runs[split["split"]]
        figures.append({
            "split": split["split"], "runs": done,
            "samples_per_s": float(np.median([r["samples_per_s"] for r in done])),
            "status": ", ".join(sorted({str(r["status"]) for r in done})),
            "efficiency": _bracketed([r["samples_per_s"] for r in done], local_rates,
                                     better=max, combine=lambda v, ref: v / ref)})
    best = max(figures, key=lambda s: s["efficiency"] or 0.0)
    return {"model": DEMO, "backend": "onnxruntime", "batch_size": OIP_BATCH,
            "cores": cores, "rounds": rounds, "run_ms": run_ms, "local": local,
            "local_best": max(r["samples_per_s"] for r in local), "splits": figures,
            "best_split": best["split"], "efficiency": best["efficiency"],
            "single": singlestream_added_latency(ctx, quick, servers), "servers": servers}


def singlestream_added_latency(ctx: BenchContext, quick: bool,
                               servers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """p90 over loopback - p90 local, SingleStream, batch 1, in interleaved rounds: the
    server as it starts by default (no spinning threads), binary and JSON; in the full
    run also with spinning threads, as the local SUT's spin in SingleStream."""
    cores = usable_cores()
    images = ctx.budget.images
    rounds, run_ms = _rounds(quick)
    local_sut = {"max_batch_size": 1, "threads": cores}
    base = ["--threads", str(cores), "--workers", "1", "--max-batch-size", "1"]
    variants = [("binary", "binary", []), ("json", "json", [])]
    if not quick:
        variants.append(("binary, serve --spin-wait", "binary", ["--spin-wait"]))

    def p90(**settings: Any) -> float | None:
        return _p90_ms(ctx.pilot(DEMO, Scenario.SINGLE_STREAM, images,
                                 test_duration_ms=run_ms, **settings))

    local: list[float | None] = []
    local_no_spin: list[float | None] = []
    remote: dict[str, list[float | None]] = {name: [] for name, _, _ in variants}
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(serving(ctx, base, servers=servers))
        spinning = stack.enter_context(serving(ctx, [*base, "--spin-wait"], servers=servers)) \
            if not quick else None
        null = stack.enter_context(serving(ctx, ["--model", CEILING_MODEL, "--backend", "null",
                                                 "--max-batch-size", "1"], servers=servers))
        for _ in range(rounds):
            local.append(p90(sut=local_sut))
            if not quick:  # what the local SUT's spinning threads are worth
                local_no_spin.append(p90(sut={**local_sut, "spin_wait": "off"}))
            for name, protocol, extra in variants:
                server = spinning if extra and spinning is not None else plain
                remote[name].append(p90(sut=_oip_sut(server.url, batch=1, concurrency=1,
                                                     protocol=protocol)))
        local.append(p90(sut=local_sut))
        # the protocol's own floor at the demo's sample size: a null model over loopback
        floor = _p90_ms(ctx.pilot(CEILING_MODEL, Scenario.SINGLE_STREAM, images,
                                  test_duration_ms=run_ms,
                                  sut=_oip_sut(null.url, batch=1, concurrency=1)))
    added = {name: _bracketed(values, local, better=min, combine=lambda v, ref: v - ref)
             for name, values in remote.items()}
    medians = {name: float(np.median([v for v in values if v is not None]))
               if any(v is not None for v in values) else None
               for name, values in remote.items()}
    measured = [p for p in local if p is not None]
    spin_off = [p for p in local_no_spin if p is not None]
    return {"rounds": rounds, "run_ms": run_ms, "local_p90_ms": local,
            "local_best_p90_ms": min(measured) if measured else None,
            "local_no_spin_p90_ms": local_no_spin,
            "local_no_spin_median_p90_ms": float(np.median(spin_off)) if spin_off else None,
            "null_model_p90_ms": floor,
            "oip_p90_ms": medians, "oip_p90_ms_runs": remote, "added_ms": added,
            "server": " ".join(["serve", *base])}


def loopback_tcp_bytes_per_s(seconds: float, chunk: int = 1 << 20) -> float:
    """Bytes per second one TCP connection over 127.0.0.1 carries (a sender thread,
    ``recv_into`` a reused buffer here): one kernel copy in, one out, nothing else."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname()[:2])
        receiver, _ = listener.accept()
    payload = bytes(chunk)
    stop = threading.Event()

    def send() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                sender.sendall(payload)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    view = memoryview(bytearray(chunk))
    received = 0
    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            received += receiver.recv_into(view)
    finally:
        stop.set()
        receiver.close()
        thread.join(timeout=5)
        sender.close()
    return received / elapsed


def memcpy_bytes_per_s(seconds: float, size: int = 64 << 20) -> float:
    """Bytes per second one thread copies (numpy copyto of a 64 MiB buffer)."""
    source = np.ones(size, dtype=np.uint8)
    target = np.empty_like(source)
    np.copyto(target, source)
    copies = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or copies < 2:
        np.copyto(target, source)
        copies += 1
    return copies * size / elapsed


def _ceiling_at(ctx: BenchContext, model: str, sample_bytes: int, *, bench_cards: bool,
                servers: list[dict[str, Any]]) -> dict[str, Any]:
    """Offline samples/s and the Server search at 15 ms through ``serve --backend
    null``; the server's CPU time per Offline sample from /proc."""
    images = ctx.budget.images
    args = ["--model", model, "--backend", "null", "--workers", "1",
            "--max-batch-size", str(CEILING_BATCH)]
    with serving(ctx, args, bench_cards=bench_cards, servers=servers) as server:
        sut = _oip_sut(server.url, batch=CEILING_BATCH, concurrency=2)
        rate: float | None = None
        for _ in range(1 if ctx.budget.images < 256 else 2):
            cpu = server.cpu_s()
            loadgen = {"target_qps": rate * 1.3} if rate else {}
            record = ctx.pilot(model, Scenario.OFFLINE, images, sut=sut, loadgen=loadgen)
            cpu = server.cpu_s() - cpu
            offline = _offline(record)
            if record.ok or not offline["samples_per_s"]:
                break
            rate = offline["samples_per_s"]
        samples = offline["samples"] or 0
        offline_rate = offline["samples_per_s"]
        from mlperf_pilot.bench.suite import server_search

        # between 5 % and 100 % of the Offline rate, capped at 4x the goal (the search's
        # steps are a share of the range)
        high = max(20.0, min(offline_rate, 4.0 * GOALS["server"]))
        search = server_search(
            ctx, model, low=0.05 * high, high=high,
            probes=ctx.budget.server_probes,
            sut=_oip_sut(server.url, batch=SERVER_BATCH, concurrency=4),
            loadgen={"target_latency_ms": CEILING_BOUND_MS})
    return {"model": model, "sample_bytes": sample_bytes, "offline": offline,
            "server_cpu_ms_per_sample": (1000 * cpu / samples) if samples else None,
            "server": search, "latency_bound_ms": CEILING_BOUND_MS,
            "serve": " ".join(args), "offline_client": f"batches of {CEILING_BATCH}, "
            "concurrency 2", "server_client": f"batches <= {SERVER_BATCH}, concurrency 4"}


def protocol_ceiling(ctx: BenchContext) -> dict[str, Any]:
    """The null model behind ``serve``: at the demo's sample size and with small samples,
    and the machine's loopback TCP and memcpy rates that bound the first."""
    from mlperf_pilot.bench.suite import BenchContext

    seconds = 0.3 if ctx.budget.images < 256 else 2.0
    tcp = loopback_tcp_bytes_per_s(seconds)
    memcpy = memcpy_bytes_per_s(seconds)
    servers: list[dict[str, Any]] = []
    demo = _ceiling_at(ctx, CEILING_MODEL, DEMO_SAMPLE_BYTES, bench_cards=False,
                       servers=servers)
    small_ctx = BenchContext(ctx.cache, ctx.work / "small", ctx.budget, ctx.progress,
                             catalog=bench_catalog(ctx.catalog))
    small = _ceiling_at(small_ctx, SMALL, 3 * SMALL_SIZE * SMALL_SIZE * 4, bench_cards=True,
                        servers=servers)
    # the control: the same Server load on the local SUT's null backend (no network, one
    # process), to tell the protocol's tail from the machine's at that moment
    control = ctx.pilot(CEILING_MODEL, Scenario.SERVER, ctx.budget.images, backend="null",
                        sut={"max_batch_size": SERVER_BATCH},
                        loadgen={"target_qps": float(GOALS["server"]),
                                 "target_latency_ms": CEILING_BOUND_MS})
    percentiles = control.loadgen.latency_percentiles_ns if control.loadgen else {}
    return {
        "bounds": {"loopback_tcp_bytes_per_s": tcp, "memcpy_bytes_per_s": memcpy,
                   "demo_sample_bytes": DEMO_SAMPLE_BYTES,
                   "demo_samples_per_s_at_loopback_tcp": tcp / DEMO_SAMPLE_BYTES,
                   "seconds": seconds},
        "demo": demo, "small": small, "servers": servers,
        "local_null_control": {"target_qps": float(GOALS["server"]), "status": control.status,
                               "p99_ms": float(percentiles.get("99.00", 0)) / 1e6},
    }


# ------------------------------------------------------------------------- the report

GOALS = {"efficiency": 0.90, "added_ms": 1.0, "offline": 5_000, "server": 1_000}


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def _n(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


def render_lines(results: dict[str, Any]) -> list[str]:
    """The markdown of the ``oip`` and ``oip-ceiling`` figures."""
    lines: list[str] = []
    if "oip" in results:
        f = results["oip"]
        local = ", ".join(_n(r["samples_per_s"]) for r in f["local"])
        lines += [f"Loopback efficiency, {f['model']} ({f['backend']}, batch {f['batch_size']}, "
                  f"{f['cores']} cores; {f['rounds']} interleaved round(s) of "
                  f"{f['run_ms'] / 1000:g} s runs; local runs {local} samples/s; each network "
                  "run / the better local run before or after it, median over the rounds):",
                  "", "| core split | oip Offline samples/s (median) | status | / local | "
                  "goal >= 0.90 |", "|---|---|---|---|---|"]
        for s in f["splits"]:
            eff = s["efficiency"]
            lines.append(f"| {s['split']} | {_n(s['samples_per_s'])} | {s['status']} | "
                         f"{_n(eff)} | {_met(None if eff is None else eff >= 0.9)} |")
        single = f["single"]
        locals_ = ", ".join(_n(p, 4) for p in single["local_p90_ms"])
        lines += ["", f"SingleStream p90 ({single['rounds']} round(s) of "
                  f"{single['run_ms'] / 1000:g} s runs; local {locals_} ms; added = network "
                  "p90 - the better local p90 before or after it, median over the rounds; "
                  f"{single['server']}):", "",
                  "| protocol | oip p90 ms (median) | added ms | goal <= 1.0 ms (binary) |",
                  "|---|---|---|---|"]
        for name, p90 in single["oip_p90_ms"].items():
            added = single["added_ms"][name]
            goal = _met(None if added is None else added <= 1.0) \
                if name.startswith("binary") else "reported"
            lines.append(f"| {name} | {_n(p90, 4)} | "
                         f"{'-' if added is None else f'{added:+.3f}'} | {goal} |")
        lines += ["", f"The protocol's floor: a null model behind serve, SingleStream over "
                  f"loopback, binary, 602,112-byte samples: p90 "
                  f"{_n(single['null_model_p90_ms'], 4)} ms. Local SUT without spinning "
                  f"threads: p90 "
                  f"{_n(single['local_no_spin_median_p90_ms'], 4)} ms (median)."]
        lines.append("")
    if "oip-ceiling" in results:
        f = results["oip-ceiling"]
        b = f["bounds"]
        lines += [f"Protocol ceiling (serve --backend null; loopback TCP "
                  f"{b['loopback_tcp_bytes_per_s'] / 1e9:.2f} GB/s on one connection = "
                  f"{_n(b['demo_samples_per_s_at_loopback_tcp'])} demo samples/s with no "
                  f"other work; memcpy {b['memcpy_bytes_per_s'] / 1e9:.2f} GB/s):", "",
                  "| samples | Offline samples/s | server CPU ms/sample | goal >= 5,000 | "
                  "Server peak VALID QPS at 15 ms | goal >= 1,000 |", "|---|---|---|---|---|---|"]
        for key in ("demo", "small"):
            c = f[key]
            offline = c["offline"]["samples_per_s"]
            peak = c["server"]["peak_valid_qps"]
            lines.append(f"| {c['model']} ({c['sample_bytes']:,} B) | {_n(offline)} "
                         f"({c['offline']['status']}) | {_n(c['server_cpu_ms_per_sample'])} | "
                         f"{_met(offline >= GOALS['offline'])} | {_n(peak)} | "
                         f"{_met(None if peak is None else peak >= GOALS['server'])} |")
        for key in ("demo", "small"):
            c = f[key]
            probes = "; ".join(f"{_n(p['target_qps'])} {p['status']} (p99 {_n(p['p99_ms'])} "
                               f"ms)" for p in c["server"]["probes"])
            lines.append(f"\nServer probes, {c['model']}: {probes}")
        control = f.get("local_null_control")
        if control:
            lines.append(f"\nControl, same run: the local SUT's null backend (no network) in "
                         f"Server at {_n(control['target_qps'])} QPS, 15 ms: "
                         f"{control['status']} (p99 {_n(control['p99_ms'])} ms)")
        lines.append("")
    return lines


__all__ = ["ServeProcess", "bench_catalog", "loopback_efficiency", "loopback_tcp_bytes_per_s",
           "memcpy_bytes_per_s", "pin_process", "pinned", "protocol_ceiling", "render_lines",
           "serve_with_bench_cards", "start_serve"]
