"""Helpers of the `rfc serve` test suite (standard library only).

The Rust tests (tests/serve_openai.rs, tests/serve_load.rs) start the
servers and pass where they listen through the environment:

- RFC_SERVE_URL: the server under test, e.g. http://127.0.0.1:PORT
- RFC_SERVE_API_KEY: its API key, if it was started with one
- RFC_SERVE_MODEL: the model name it was given (--alias), if any
- RFC_SERVE_PREFIX_CACHE: "1" (default) or "0" (--no-prefix-cache)
- RFC_SERVE_CTX: the context it was started with (--ctx)
- RFC_SERVE_VOCAB: the model's vocabulary size
"""

import http.client
import json
import os
import socket
import time
import urllib.parse

BASE = os.environ.get("RFC_SERVE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("RFC_SERVE_API_KEY") or None
MODEL = os.environ.get("RFC_SERVE_MODEL") or None
PREFIX_CACHE = os.environ.get("RFC_SERVE_PREFIX_CACHE", "1") == "1"
CTX = int(os.environ.get("RFC_SERVE_CTX", "0")) or None
VOCAB = int(os.environ.get("RFC_SERVE_VOCAB", "0")) or None

# Every request of the suite is bounded in time.
TIMEOUT = float(os.environ.get("RFC_SERVE_TIMEOUT", "120"))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        text = self.body[:600].decode("utf-8", "replace")
        return f"HTTP {self.status} {text!r}"


def split_url(base):
    u = urllib.parse.urlsplit(base)
    return u.hostname, u.port or 80


def request(method, path, body=None, headers=None, key=API_KEY, base=None, timeout=TIMEOUT):
    """One HTTP request on a fresh connection. `body`: bytes, str, or an
    object sent as JSON. Returns a Response."""
    host, port = split_url(base or BASE)
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    if key is not None:
        hdrs.setdefault("Authorization", f"Bearer {key}")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def post(path, obj, **kw):
    return request("POST", path, obj, **kw)


def get(path, **kw):
    return request("GET", path, **kw)


def model_name():
    """The name to put in requests: the alias, or the first listed model."""
    if MODEL:
        return MODEL
    r = get("/v1/models")
    return r.json()["data"][0]["id"]


def tokenize(text, base=None):
    r = post("/tokenize", {"content": text}, base=base)
    assert r.status == 200, r
    return r.json()["tokens"]


def detokenize(tokens, base=None):
    r = post("/detokenize", {"tokens": tokens}, base=base)
    assert r.status == 200, r
    return r.json()["content"]


def parse_metrics(text):
    """Prometheus text → {name or name{labels}: value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name.strip()] = float(value)
    return out


def metrics(base=None):
    r = get("/metrics", base=base)
    assert r.status == 200, r
    return parse_metrics(r.body.decode())


def wait_idle(base=None, timeout=30.0):
    """Waits until no request runs or waits and no KV page is used; returns
    the last metrics (the caller asserts on them)."""
    end = time.monotonic() + timeout
    while True:
        m = metrics(base)
        idle = (
            m.get("rfc_requests_running") == 0
            and m.get("rfc_requests_waiting") == 0
            and m.get("rfc_kv_pages_used") == 0
        )
        if idle or time.monotonic() > end:
            return m
        time.sleep(0.05)


def check_error(tc, r, statuses):
    """Asserts an OpenAI-shaped error with one of `statuses`."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    tc.assertIn(r.status, statuses, f"expected HTTP {statuses}, got {r!r}")
    try:
        body = r.json()
    except ValueError:
        tc.fail(f"error body is not JSON: {r!r}")
    tc.assertIsInstance(body, dict, repr(r))
    tc.assertIn("error", body, repr(r))
    err = body["error"]
    tc.assertIsInstance(err, dict, repr(r))
    for field in ("message", "type", "param", "code"):
        tc.assertIn(field, err, f"error lacks {field!r}: {r!r}")
    tc.assertIsInstance(err["message"], str, repr(r))
    tc.assertTrue(err["message"].strip(), f"empty error message: {r!r}")
    tc.assertIsInstance(err["type"], str, repr(r))
    tc.assertTrue(err["param"] is None or isinstance(err["param"], str), repr(r))
    tc.assertTrue(err["code"] is None or isinstance(err["code"], (str, int)), repr(r))
    tc.assertTrue(r.headers.get("content-type", "").startswith("application/json"), repr(r.headers))
    return err


def raw_exchange(data, base=None, timeout=TIMEOUT, chunk=1 << 16):
    """Sends raw bytes on one connection (tolerating a server that answers
    and closes before it has read everything); returns the Response parsed
    from whatever came back, or None if nothing did."""
    host, port = split_url(base or BASE)
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            for i in range(0, len(data), chunk):
                s.sendall(data[i : i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while True:
            try:
                part = s.recv(1 << 16)
            except ConnectionResetError:
                break
            if not part:
                break
            buf += part
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                lines = head.decode("latin-1").split("\r\n")
                hdrs = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (l.partition(":") for l in lines[1:])
                )
                n = hdrs.get("content-length")
                if n is not None and len(rest) >= int(n):
                    break
    finally:
        s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = [(k.strip(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:])]
    return Response(status, hdrs, rest)


def stream_events(path, obj, key=API_KEY, base=None, timeout=TIMEOUT):
    """POSTs a streaming request and yields each SSE `data:` payload (parsed
    JSON, or the string "[DONE]"). Raises AssertionError on a non-200."""
    host, port = split_url(base or BASE)
    hdrs = {"Content-Type": "application/json"}
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(obj), headers=hdrs)
        r = conn.getresponse()
        if r.status != 200:
            raise AssertionError(f"HTTP {r.status}: {r.read()[:600]!r}")
        ctype = r.getheader("Content-Type", "")
        assert ctype.startswith("text/event-stream"), ctype
        while True:
            line = r.readline()
            if not line:
                return
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                yield "[DONE]"
                return
            yield json.loads(payload)
    finally:
        conn.close()
