#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (`rfc serve`, llama-server,
vLLM, ...): streams /v1/completions at several concurrency levels and
reports, per level, aggregate output tokens/s, time to first token and
inter-token latency (p50/p99), and errors. Standard library only.

Prompts are random token ids (--vocab: for synthetic models, and to get
exact prompt lengths) or random words (--text); all of them share their
first --shared-prefix tokens (or words), so a prefix cache has something to
share. Outputs have a fixed length: `ignore_eos` and `max_tokens`.

    scripts/serve-bench.py --url http://127.0.0.1:8080 --vocab 151643 \\
        --concurrency 1,4,16,64 --prompt-tokens 512 --output-tokens 128 \\
        --shared-prefix 384 --requests 64

Each level runs --requests requests (default: 4 x the level, at least 8)
from that many client threads; a level's wall time runs from its first send
to its last response. TTFT: from the send to the first streamed text; ITL:
the gaps between streamed chunks that carry text (one per token on servers
that stream every token); TPOT: per request, (last - first) / (tokens - 1).
A request that fails, answers other than 200, or ends with fewer tokens than
asked is an error. Exit status 1 if any request failed.
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("time person year way day thing man world life hand part child eye woman place "
         "work week case point number group problem fact river stone cloud light sound").split()


def percentile(xs, p):
    """Linear-interpolated percentile of `xs` (p in 0..100); None if empty."""
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Client:
    """Where the server is and how to talk to it."""

    def __init__(self, url, api_key=None, model=None, timeout=600.0):
        u = urllib.parse.urlsplit(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/")
        if self.prefix.endswith("/v1"):
            self.prefix = self.prefix[:-3]
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def headers(self):
        h = {"Content-Type": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def get(self, path):
        conn = self.connect()
        try:
            conn.request("GET", self.prefix + path, headers=self.headers())
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def completion_body(self, prompt, max_tokens, stream=True, **extra):
        body = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.model:
            body["model"] = self.model
        body.update(extra)
        return body

    def stream(self, body, on_chunk=None):
        """POSTs a streaming /v1/completions; returns a result dict:
        status, error, t_send, t_first, chunk_times, tokens (from usage,
        else the text chunks), finish, cancelled. `on_chunk(i)` is called
        before each text chunk is recorded; returning True closes the
        connection there (a cancellation)."""
        res = {"status": None, "error": None, "t_send": None, "t_first": None, "chunk_times": [],
               "tokens": 0, "finish": None, "cancelled": False, "usage": None}
        conn = self.connect()
        try:
            res["t_send"] = time.perf_counter()
            conn.request("POST", self.prefix + "/v1/completions", body=json.dumps(body),
                         headers=self.headers())
            r = conn.getresponse()
            res["status"] = r.status
            if r.status != 200:
                res["error"] = f"HTTP {r.status}: {r.read()[:300].decode('utf-8', 'replace')}"
                res["retry_after"] = r.getheader("Retry-After")
                return res
            if not body.get("stream"):
                j = json.loads(r.read())
                now = time.perf_counter()
                res["t_first"] = now
                res["chunk_times"] = [now]
                res["usage"] = j.get("usage")
                res["tokens"] = (j.get("usage") or {}).get("completion_tokens", 0)
                res["finish"] = j["choices"][0].get("finish_reason")
                return res
            n_text = 0
            done = False
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    break
                ev = json.loads(payload)
                if "error" in ev:
                    res["error"] = f"error event: {ev['error']}"
                    return res
                if ev.get("usage"):
                    res["usage"] = ev["usage"]
                for ch in ev.get("choices") or []:
                    if ch.get("text"):
                        if on_chunk is not None and on_chunk(n_text):
                            res["cancelled"] = True
                            return res
                        now = time.perf_counter()
                        if res["t_first"] is None:
                            res["t_first"] = now
                        res["chunk_times"].append(now)
                        n_text += 1
                    if ch.get("finish_reason"):
                        res["finish"] = ch["finish_reason"]
            if not done:
                res["error"] = "the stream ended without [DONE]"
            usage = res["usage"] or {}
            res["tokens"] = usage.get("completion_tokens", n_text)
            return res
        except Exception as e:  # reported as this request's error
            res["error"] = f"{type(e).__name__}: {e}"
            return res
        finally:
            conn.close()


class PromptMaker:
    """Random prompts of token ids (vocab given) or words, sharing a prefix."""

    def __init__(self, rng, vocab, token_min, text, shared):
        self.rng = rng
        self.vocab = vocab
        self.token_min = token_min
        self.text = text
        self.shared = self.pieces(shared)

    def pieces(self, n):
        if self.text:
            return [self.rng.choice(WORDS) for _ in range(n)]
        return [self.rng.randrange(self.token_min, self.vocab) for _ in range(n)]

    def make(self, n):
        """A prompt of `n` tokens (words with --text)."""
        p = self.shared[: min(n, len(self.shared))] + self.pieces(max(0, n - len(self.shared)))
        return " ".join(p) if self.text else p


def run_level(client, conc, prompts, output_tokens, constrained=None):
    """`constrained`: (every, response_format): every `every`-th request
    carries the response format; the unconstrained requests' latencies are
    also reported on their own (issue #19's mixed batch)."""
    results = [None] * len(prompts)
    next_i = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next_i[0]
                if i >= len(prompts):
                    return
                next_i[0] += 1
            extra = {}
            if constrained and i % constrained[0] == 0:
                extra = {"response_format": constrained[1]}
            results[i] = client.stream(client.completion_body(prompts[i], output_tokens, **extra))
            results[i]["constrained"] = bool(extra)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if not r["error"] and r["tokens"] == output_tokens]
    errors = []
    for r in results:
        if r["error"]:
            errors.append(r["error"])
        elif r["tokens"] != output_tokens and not r.get("constrained"):
            errors.append(f"{r['tokens']} tokens of {output_tokens} (finish {r['finish']})")
    ttft = [r["t_first"] - r["t_send"] for r in ok if r["t_first"] is not None]
    itl = [b - a for r in ok for a, b in zip(r["chunk_times"], r["chunk_times"][1:])]
    tpot = [(r["chunk_times"][-1] - r["chunk_times"][0]) / (r["tokens"] - 1)
            for r in ok if r["tokens"] > 1 and len(r["chunk_times"]) > 1]
    out_tokens = sum(r["tokens"] for r in results if not r["error"])
    ms = lambda x: None if x is None else round(x * 1000, 2)
    # Constrained requests may end early (their grammar closes); the
    # unconstrained ones' latencies are what a grammar must not slow.
    free = [r for r in results if not r["error"] and not r.get("constrained")]
    free_itl = [b - a for r in free for a, b in zip(r["chunk_times"], r["chunk_times"][1:])]
    mixed = {}
    if constrained:
        mixed = {
            "constrained_every": constrained[0],
            "unconstrained_itl_ms_p50": ms(percentile(free_itl, 50)),
            "unconstrained_itl_ms_p99": ms(percentile(free_itl, 99)),
        }
        ok = [r for r in ok if not r.get("constrained")]
    return {
        **mixed,
        "concurrency": conc,
        "requests": len(prompts),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": errors[:5],
        "wall_s": round(wall, 3),
        "output_tokens": out_tokens,
        "output_tok_s": round(out_tokens / wall, 2) if wall > 0 else None,
        "requests_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "ttft_ms_p50": ms(percentile(ttft, 50)),
        "ttft_ms_p99": ms(percentile(ttft, 99)),
        "itl_ms_p50": ms(percentile(itl, 50)),
        "itl_ms_p99": ms(percentile(itl, 99)),
        "tpot_ms_mean": ms(statistics.mean(tpot)) if tpot else None,
    }


def parse_levels(s):
    levels = [int(x) for x in s.split(",") if x.strip()]
    if not levels or any(c < 1 for c in levels):
        raise argparse.ArgumentTypeError("--concurrency: a list of positive integers, e.g. 1,4,16")
    return levels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="server root (or its /v1)")
    ap.add_argument("--concurrency", type=parse_levels, default=[1, 4, 16, 64],
                    help="comma-separated levels (default 1,4,16,64)")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--output-tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=0,
                    help="requests per level (default: 4 x the level, at least 8)")
    ap.add_argument("--shared-prefix", type=int, default=0,
                    help="leading tokens every prompt shares (default 0)")
    ap.add_argument("--vocab", type=int, help="random token ids below this (token-id prompts)")
    ap.add_argument("--token-min", type=int, default=0, help="lowest random token id (default 0)")
    ap.add_argument("--text", action="store_true", help="prompts of random words instead of ids")
    ap.add_argument("--model", help="the request's model field (default: none)")
    ap.add_argument("--api-key")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=2, help="requests before the first level (default 2)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--constrained-every", type=int, default=0,
                    help="every N-th request carries --response-format (0: none)")
    ap.add_argument("--response-format", default='{"type": "json_object"}',
                    help="the constrained requests' response_format (JSON)")
    a = ap.parse_args(argv)
    if not a.text and not a.vocab:
        ap.error("give --vocab (token-id prompts) or --text")
    if a.shared_prefix > a.prompt_tokens:
        ap.error("--shared-prefix exceeds --prompt-tokens")
    if a.vocab is not None and a.token_min >= a.vocab:
        ap.error("--token-min must be below --vocab")

    rng = random.Random(a.seed)
    client = Client(a.url, a.api_key, a.model, a.timeout)
    maker = PromptMaker(rng, a.vocab, a.token_min, a.text, a.shared_prefix)
    status, body = client.get("/v1/models")
    if status != 200:
        print(f"GET /v1/models: HTTP {status} {body[:200]!r}", file=sys.stderr)
        return 2
    for _ in range(a.warmup):
        r = client.stream(client.completion_body(maker.make(a.prompt_tokens), min(8, a.output_tokens)))
        if r["error"]:
            print(f"warm-up request failed: {r['error']}", file=sys.stderr)
            return 2
    report = {"url": a.url, "prompt_tokens": a.prompt_tokens, "output_tokens": a.output_tokens,
              "shared_prefix": a.shared_prefix, "prompts": "text" if a.text else "token ids",
              "seed": a.seed, "levels": []}
    if not a.json:
        print(f"# {a.url}: prompts of {a.prompt_tokens} {'words' if a.text else 'tokens'} "
              f"({a.shared_prefix} shared), {a.output_tokens} output tokens")
        print(f"{'conc':>5} {'reqs':>5} {'err':>4} {'out tok/s':>10} {'req/s':>7} "
              f"{'TTFT p50':>9} {'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8} {'TPOT':>7}  (ms)")
    failed = False
    for conc in a.concurrency:
        n = a.requests or max(8, 4 * conc)
        prompts = [maker.make(a.prompt_tokens) for _ in range(n)]
        constrained = None
        if a.constrained_every > 0:
            constrained = (a.constrained_every, json.loads(a.response_format))
        lv = run_level(client, conc, prompts, a.output_tokens, constrained)
        report["levels"].append(lv)
        failed |= lv["errors"] > 0
        if not a.json:
            f = lambda x: "-" if x is None else f"{x:.1f}"
            print(f"{conc:>5} {n:>5} {lv['errors']:>4} {f(lv['output_tok_s']):>10} "
                  f"{lv['requests_s'] or 0:>7.2f} {f(lv['ttft_ms_p50']):>9} {f(lv['ttft_ms_p99']):>9} "
                  f"{f(lv['itl_ms_p50']):>8} {f(lv['itl_ms_p99']):>8} {f(lv['tpot_ms_mean']):>7}", flush=True)
            for e in lv["error_samples"]:
                print(f"      error: {e}")
            if constrained:
                print(f"      unconstrained requests only: ITL p50 {f(lv['unconstrained_itl_ms_p50'])} "
                      f"p99 {f(lv['unconstrained_itl_ms_p99'])} ms", flush=True)
    if a.json:
        print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
