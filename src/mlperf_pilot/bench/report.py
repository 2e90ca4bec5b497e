"""The benchmark figures as markdown (a pure function of the suite's results)."""

from __future__ import annotations

from typing import Any

GOALS = {
    "offline": ("Offline efficiency", 0.97, ">="),
    "single": ("SingleStream overhead (ms)", 0.3, "<="),
    "ceiling": ("null-backend Offline samples/s", 20_000, ">="),
    "server": ("Server VALID QPS / Offline samples/s", 0.8, ">="),
}


def _met(value: float | None, goal: float, op: str) -> str:
    if value is None:
        return "n/a"
    ok = value >= goal if op == ">=" else value <= goal
    return "met" if ok else "NOT met"


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10_000 else f"{value:,.0f}"
    return str(value)


def render_markdown(results: dict[str, Any]) -> str:
    lines = [f"Benchmarks ({'quick' if results.get('quick') else 'full'}, "
             f"{results.get('cores')} cores)", ""]
    if "offline" in results:
        lines += ["| model | raw best samples/s (batch) | pilot Offline samples/s | "
                  "efficiency | goal >= 0.97 |", "|---|---|---|---|---|"]
        for model, f in results["offline"].items():
            lines.append(f"| {model} | {_f(f['raw_best'])} ({f['best_batch_size']}) | "
                         f"{_f(f['pilot_samples_per_s'])} | {f['efficiency']:.3f} | "
                         f"{_met(f['efficiency'], 0.97, '>=')} |")
        lines.append("")
    if "single" in results:
        lines += ["| model | raw batch-1 p90 ms | pilot SingleStream p90 ms | overhead ms | "
                  "goal <= 0.3 |", "|---|---|---|---|---|"]
        for model, f in results["single"].items():
            raw = min(f["raw_p90_ms_before"], f["raw_p90_ms_after"])
            lines.append(f"| {model} | {raw:.3f} | {f['pilot_p90_ms']:.3f} | "
                         f"{f['overhead_ms']:+.3f} | {_met(f['overhead_ms'], 0.3, '<=')} |")
        lines.append("")
    if "ceiling" in results:
        f = results["ceiling"]
        lines += ["| harness ceiling (null backend) | figure | goal |", "|---|---|---|",
                  f"| Offline samples/s | {_f(f['offline_samples_per_s'])} | >= 20,000: "
                  f"{_met(f['offline_samples_per_s'], 20_000, '>=')} |",
                  f"| Server peak VALID QPS | {_f(f['server']['peak_valid_qps'])} | reported |",
                  ""]
    if "server" in results:
        f = results["server"]
        lines.append(
            f"Server, {f['model']}: one batch-1 inference takes {f['batch1_latency_ms']:.1f} ms; "
            f"the card's {f['card_bound_ms']} ms bound is "
            f"{'searched' if f['card_bound_feasible'] else 'physically out of reach here'}.")
        lines.append("")
        for search in f["searches"]:
            ratio = search.get("ratio_to_offline")
            lines += [f"Bound {search['latency_bound_ms']} ms ({search['workers']} worker(s) x "
                      f"{search['threads']} thread(s), batches <= {search['max_batch_size']}, "
                      f"timeout {search['batch_timeout_us']} us): peak VALID "
                      f"{_f(search['peak_valid_qps'])} QPS = {_f(ratio)} x Offline "
                      f"({_f(search['offline_samples_per_s'])} samples/s); goal >= 0.8: "
                      f"{_met(ratio, 0.8, '>=')}", "",
                      "| target QPS | status | completed QPS | p99 ms |", "|---|---|---|---|"]
            lines += [f"| {_f(p['target_qps'])} | {p['status']} | {_f(p['completed_qps'])} | "
                      f"{_f(p['p99_ms'])} |" for p in search["probes"]]
            lines.append("")
    if "preprocess" in results:
        f = results["preprocess"]
        cells = ", ".join(f"{w} worker(s): {_f(r)} images/s (x{f['speedup'][w]:.2f})"
                          for w, r in f["images_per_s"].items())
        lines += [f"Preprocessing {f['images']} photos ({f['recipe']}): {cells}", ""]
    if "memory" in results:
        f = results["memory"]
        lines += [f"Peak RSS of the test process with {f['performance_samples']} loaded "
                  f"samples ({f['sample_data_mb']} MiB of tensors, "
                  f"{f.get('model', 'resnet50-synthetic')}): {f['peak_rss_mb']} MiB",
                  ""]
    if "scaling" in results:
        for model, f in results["scaling"].items():
            lines += [f"Scaling, {model}:", "",
                      "| threads | batch | raw samples/s | pilot samples/s | efficiency |",
                      "|---|---|---|---|---|"]
            lines += [f"| {r['threads']} | {r['batch_size']} | {_f(r['raw_samples_per_s'])} | "
                      f"{_f(r['pilot_samples_per_s'])} | {r['efficiency']:.3f} |"
                      for r in f["rows"]]
            lines += ["", f"Server peak at {f['server_bound_ms']} ms:", "",
                      "| workers x threads | batch | peak VALID QPS | / Offline |",
                      "|---|---|---|---|"]
            lines += [f"| {r['workers']} x {r['threads']} | {r['max_batch_size']} | "
                      f"{_f(r['peak_valid_qps'])} | {_f(r['ratio_to_offline'])} |"
                      for r in f["server"]]
            lines.append("")
    if "oip" in results or "oip-ceiling" in results:
        from mlperf_pilot.bench.oip import render_lines

        lines += render_lines(results)
    if "seconds" in results:
        lines.append("Time per benchmark (s): " + ", ".join(
            f"{k} {v}" for k, v in results["seconds"].items()))
    return "\n".join(lines)
