#!/usr/bin/env python3
"""Load test of an `rfc serve` server: --clients concurrent clients stream
/v1/completions for --duration seconds with random prompt lengths, random
output lengths, random cancellations (the connection closed mid-stream) and
a few deliberately bad requests, then checks that

- nothing failed but the intended failures (the bad requests get 400);
- every admitted request was finished once (rfc_requests_finished_total
  grew by the number of 200 answers);
- the server is idle: rfc_kv_pages_used, rfc_requests_running and
  rfc_requests_waiting are 0;
- its resident memory (VmRSS of --pid) is within --rss-pct % or --rss-mb MB
  (whichever is larger) of its value after a warm-up round of the same load;
- with --gpu, the GPU memory the process holds (nvidia-smi) is back to its
  value after the warm-up, within --gpu-mb MB.

Standard library only; the HTTP client is scripts/serve-bench.py's. Exit 0
when every check passes, 1 otherwise (2: the server could not be reached).

    scripts/serve-load.py --url http://127.0.0.1:8080 --pid PID --vocab 320 \\
        --clients 64 --duration 300
"""

import argparse
import importlib.util
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("serve_bench", os.path.join(HERE, "serve-bench.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def gpu_mb(pid):
    """MiB of GPU memory `pid` holds, from nvidia-smi (summed over GPUs)."""
    import subprocess
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split(",") for line in out.splitlines() if line.strip()]
    return sum(float(mb) for p, mb in rows if int(p) == pid)


def metrics(client):
    status, body = client.get("/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics: HTTP {status}")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def finished_total(m):
    return sum(v for k, v in m.items() if k.startswith("rfc_requests_finished_total"))


def wait_idle(client, timeout):
    end = time.monotonic() + timeout
    while True:
        m = metrics(client)
        if (m.get("rfc_requests_running") == 0 and m.get("rfc_requests_waiting") == 0
                and m.get("rfc_kv_pages_used") == 0) or time.monotonic() > end:
            return m
        time.sleep(0.1)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"requests": 0, "ok_200": 0, "completed": 0, "cancelled": 0, "bad_sent": 0,
                  "bad_refused": 0, "tokens": 0, "unexpected": 0}
        self.unexpected = []

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self.c[k] += v

    def fail(self, what):
        with self.lock:
            self.c["unexpected"] += 1
            if len(self.unexpected) < 20:
                self.unexpected.append(what)


def client_loop(client, a, seed, deadline, stats, prefixes):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        stats.add(requests=1)
        if rng.random() < a.bad_fraction:
            # Intended failure: a token id outside any vocabulary. (Not
            # --vocab plus a little: --vocab bounds the random prompt ids
            # and may sit below the model's real vocabulary.)
            stats.add(bad_sent=1)
            body = client.completion_body([1, 2, (1 << 30) + rng.randrange(1, 1000)], 4)
            r = client.stream(body)
            if r["status"] == 400:
                stats.add(bad_refused=1)
            else:
                stats.fail(f"bad request answered {r['status']}: {r['error']}")
            continue
        n = rng.randrange(1, a.max_prompt + 1)
        if rng.random() < 0.5:
            # Half the prompts start with one of a few shared prefixes.
            pre = rng.choice(prefixes)[:n]
            prompt = pre + [rng.randrange(a.token_min, a.vocab) for _ in range(n - len(pre))]
        else:
            prompt = [rng.randrange(a.token_min, a.vocab) for _ in range(n)]
        max_tokens = rng.randrange(1, a.max_tokens + 1)
        stream = rng.random() >= 0.1
        cancel_at = rng.randrange(0, max_tokens) if stream and rng.random() < a.cancel_fraction else None
        body = client.completion_body(prompt, max_tokens, stream=stream,
                                      temperature=rng.choice([0, 0.8]), seed=rng.randrange(1 << 30))
        r = client.stream(body, on_chunk=(lambda i: i >= cancel_at) if cancel_at is not None else None)
        if r["status"] == 200:
            stats.add(ok_200=1)
        if r["cancelled"]:
            stats.add(cancelled=1)
            continue
        if r["error"]:
            stats.fail(r["error"])
            continue
        # Without a cancellation: exactly max_tokens (ignore_eos; prompts
        # and outputs fit the context).
        if r["tokens"] != max_tokens or r["finish"] != "length":
            stats.fail(f"{r['tokens']} tokens of {max_tokens}, finish {r['finish']!r}")
            continue
        stats.add(completed=1, tokens=r["tokens"])


def run_round(client, a, duration, seed, prefixes):
    stats = Stats()
    deadline = time.monotonic() + duration
    threads = [threading.Thread(target=client_loop, args=(client, a, seed * 1000 + i, deadline, stats, prefixes),
                                daemon=True) for i in range(a.clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + a.timeout + 30)
    alive = sum(t.is_alive() for t in threads)
    if alive:
        stats.fail(f"{alive} clients still running {a.timeout + 30:.0f} s after the deadline")
    stats.c["wall_s"] = round(time.monotonic() - t0, 1)
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--pid", type=int, required=True, help="the server's process id (for VmRSS)")
    ap.add_argument("--vocab", type=int, required=True, help="random token ids below this")
    ap.add_argument("--token-min", type=int, default=0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of the measured round")
    ap.add_argument("--warmup", type=float, default=0.0,
                    help="seconds of the warm-up round (default: a fifth of --duration, at most 60)")
    ap.add_argument("--max-prompt", type=int, default=200, help="prompt lengths 1..this")
    ap.add_argument("--max-tokens", type=int, default=64, help="output lengths 1..this")
    ap.add_argument("--cancel-fraction", type=float, default=0.25,
                    help="streams closed by the client at a random token")
    ap.add_argument("--bad-fraction", type=float, default=0.02,
                    help="requests with an out-of-vocabulary token (must get 400)")
    ap.add_argument("--rss-pct", type=float, default=10.0)
    ap.add_argument("--rss-mb", type=float, default=50.0)
    ap.add_argument("--gpu", action="store_true", help="also check the process's GPU memory (nvidia-smi)")
    ap.add_argument("--gpu-mb", type=float, default=0.0, help="allowed change of GPU memory, MiB")
    ap.add_argument("--idle-timeout", type=float, default=30.0,
                    help="seconds to wait for the server to go idle after a round")
    ap.add_argument("--model")
    ap.add_argument("--api-key")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    warmup = a.warmup or min(60.0, a.duration / 5)

    client = bench.Client(a.url, a.api_key, a.model, a.timeout)
    try:
        m0 = metrics(client)
        rss_kb(a.pid)
    except Exception as e:
        print(f"cannot reach the server or its process: {e}", file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    prefixes = [[rng.randrange(a.token_min, a.vocab) for _ in range(a.max_prompt)] for _ in range(4)]

    warm = run_round(client, a, warmup, a.seed + 1, prefixes)
    wait_idle(client, a.idle_timeout)
    time.sleep(0.5)
    rss_base = rss_kb(a.pid)
    gpu_base = gpu_mb(a.pid) if a.gpu else None
    m1 = metrics(client)
    main_round = run_round(client, a, a.duration, a.seed + 2, prefixes)
    m2 = wait_idle(client, a.idle_timeout)
    time.sleep(0.5)
    rss_end = rss_kb(a.pid)
    gpu_end = gpu_mb(a.pid) if a.gpu else None

    checks = []

    def check(ok, what):
        checks.append({"ok": bool(ok), "check": what})

    for name, st in (("warm-up", warm), ("main", main_round)):
        check(st.c["unexpected"] == 0, f"{name} round: {st.c['unexpected']} unexpected failures "
              f"{st.unexpected[:5]}")
        check(st.c["completed"] > 0, f"{name} round: {st.c['completed']} requests completed")
    check(main_round.c["cancelled"] > 0 or a.cancel_fraction == 0,
          f"main round: {main_round.c['cancelled']} streams cancelled by the client")
    finished = finished_total(m2) - finished_total(m1)
    check(finished == main_round.c["ok_200"],
          f"rfc_requests_finished_total grew by {finished:.0f}; {main_round.c['ok_200']} requests got 200")
    for k in ("rfc_kv_pages_used", "rfc_requests_running", "rfc_requests_waiting"):
        check(m2.get(k) == 0, f"{k} = {m2.get(k)} at the end")
    allowed_kb = max(rss_base * a.rss_pct / 100, a.rss_mb * 1024)
    check(abs(rss_end - rss_base) <= allowed_kb,
          f"VmRSS {rss_base / 1024:.1f} MB after the warm-up, {rss_end / 1024:.1f} MB at the end "
          f"(allowed +-{allowed_kb / 1024:.1f} MB)")
    if a.gpu:
        check(abs(gpu_end - gpu_base) <= a.gpu_mb,
              f"GPU memory {gpu_base:.0f} MiB after the warm-up, {gpu_end:.0f} MiB at the end "
              f"(allowed +-{a.gpu_mb:.0f} MiB)")
    preempt = m2.get("rfc_preemptions_total", 0) - m0.get("rfc_preemptions_total", 0)
    hits = m2.get("rfc_prefix_cache_hit_tokens_total", 0) - m0.get("rfc_prefix_cache_hit_tokens_total", 0)

    report = {
        "url": a.url, "clients": a.clients, "warmup_s": warmup, "duration_s": a.duration,
        "warmup": warm.c, "main": main_round.c,
        "output_tok_s": round(main_round.c["tokens"] / max(main_round.c["wall_s"], 1e-9), 1),
        "rss_mb": {"after_warmup": round(rss_base / 1024, 1), "end": round(rss_end / 1024, 1)},
        "gpu_mb": {"after_warmup": gpu_base, "end": gpu_end},
        "preemptions": preempt, "prefix_cache_hit_tokens": hits,
        "unexpected": warm.unexpected + main_round.unexpected,
        "checks": checks,
        "passed": all(c["ok"] for c in checks),
    }
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        for name, st in (("warm-up", warm), ("main", main_round)):
            c = st.c
            print(f"{name}: {c['wall_s']} s, {c['requests']} requests: {c['completed']} completed, "
                  f"{c['cancelled']} cancelled, {c['bad_refused']}/{c['bad_sent']} bad ones refused, "
                  f"{c['unexpected']} unexpected; {c['tokens']} tokens")
        print(f"throughput {report['output_tok_s']} tok/s (completed requests), preemptions {preempt:.0f}, "
              f"prefix-cache hit tokens {hits:.0f}")
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}")
        print("PASSED" if report["passed"] else "FAILED")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
