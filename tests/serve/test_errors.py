"""Every error class of `rfc serve` over raw HTTP: the status, the
OpenAI-shaped body {"error": {"message", "type", "param", "code"}}, and a
good request answered right after each bad one.

The queue-full case needs its own server (--parallel 1 --max-queue 1): it
is the class QueueFull, run alone by tests/serve_openai.rs.
"""

import json
import os
import threading
import time
import unittest

import common
from common import check_error, post, request

CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"


def chat_body(**kw):
    body = {"model": common.model_name(), "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 2}
    body.update(kw)
    return body


def compl_body(**kw):
    body = {"model": common.model_name(), "prompt": "Hi", "max_tokens": 2}
    body.update(kw)
    return body


class Errors(unittest.TestCase):
    def assert_serving(self):
        """The server still answers a good request."""
        r = post(CHAT, chat_body(max_tokens=2, temperature=0))
        self.assertEqual(r.status, 200, f"good request after a bad one: {r!r}")
        body = r.json()
        self.assertEqual(body["object"], "chat.completion")
        self.assertGreaterEqual(body["usage"]["completion_tokens"], 1)

    def bad(self, statuses, method, path, body=None, **kw):
        r = request(method, path, body, **kw)
        err = check_error(self, r, statuses)
        self.assert_serving()
        return r, err

    def test_malformed_json(self):
        for raw in (b'{"model": "x", "messages": [', b"not json at all", b"", b"\xff\xfe{}"):
            with self.subTest(raw=raw):
                self.bad(400, "POST", CHAT, raw)
                self.bad(400, "POST", COMPL, raw)
        # JSON, but not an object.
        self.bad(400, "POST", CHAT, b"[1, 2, 3]")
        self.bad(400, "POST", COMPL, b'"prompt"')

    def test_missing_fields(self):
        body = chat_body()
        del body["messages"]
        self.bad(400, "POST", CHAT, body)
        body = compl_body()
        del body["prompt"]
        self.bad(400, "POST", COMPL, body)
        self.bad(400, "POST", CHAT, chat_body(messages=[]))
        self.bad(400, "POST", "/tokenize", {})
        self.bad(400, "POST", "/detokenize", {})

    def test_wrong_types(self):
        cases = [
            (CHAT, chat_body(messages="hello")),
            (CHAT, chat_body(messages=[{"role": "user", "content": 5}])),
            (CHAT, chat_body(messages=[{"role": "user"}])),
            (CHAT, chat_body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}])),
            (CHAT, chat_body(max_tokens="ten")),
            (CHAT, chat_body(max_tokens=2.5)),
            (CHAT, chat_body(temperature="hot")),
            (CHAT, chat_body(stream="yes")),
            (CHAT, chat_body(stop=5)),
            (CHAT, chat_body(seed="abc")),
            (CHAT, chat_body(logprobs="yes")),
            (COMPL, compl_body(prompt=5)),
            (COMPL, compl_body(prompt=["a", 3])),
            (COMPL, compl_body(logprobs="x")),
            ("/tokenize", {"content": 5}),
            ("/detokenize", {"tokens": "abc"}),
        ]
        for path, body in cases:
            with self.subTest(path=path, body=body):
                self.bad(400, "POST", path, body)

    def test_out_of_range_values(self):
        vocab = common.VOCAB or 10**9
        cases = [
            (CHAT, chat_body(temperature=-1)),
            (CHAT, chat_body(top_p=1.5)),
            (CHAT, chat_body(top_p=-0.1)),
            (CHAT, chat_body(min_p=2)),
            (CHAT, chat_body(max_tokens=0)),
            (CHAT, chat_body(max_tokens=-5)),
            (CHAT, chat_body(max_completion_tokens=-1)),
            (CHAT, chat_body(presence_penalty=5)),
            (CHAT, chat_body(frequency_penalty=-3)),
            (CHAT, chat_body(logprobs=True, top_logprobs=100)),
            (CHAT, chat_body(logprobs=True, top_logprobs=-1)),
            (COMPL, compl_body(logprobs=100)),
            (COMPL, compl_body(prompt=[1, 2, vocab + 5])),
            (COMPL, compl_body(prompt=[1, -2])),
            (COMPL, compl_body(prompt=[])),
            ("/detokenize", {"tokens": [vocab + 7]}),
        ]
        for path, body in cases:
            with self.subTest(path=path, body=body):
                self.bad(400, "POST", path, body)

    def test_unsupported_features(self):
        for path, body in [
            (CHAT, chat_body(n=2)),
            (COMPL, compl_body(n=2)),
            (CHAT, chat_body(functions=[{"name": "f"}])),
            # The tiny model's template (ChatML) never reads `tools`.
            (CHAT, chat_body(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}])),
            (COMPL, compl_body(echo=True)),
        ]:
            with self.subTest(path=path, body=body):
                self.bad(400, "POST", path, body)
        # n=1 and response_format text are fine.
        r = post(CHAT, chat_body(n=1, response_format={"type": "text"}))
        self.assertEqual(r.status, 200, r)

    def test_constraints_are_honoured_and_bad_ones_named(self):
        r = post(CHAT, chat_body(grammar='root ::= "a" [0-9]', max_tokens=10))
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.json()["choices"][0]["message"]["content"], r"^a[0-9]$")
        r = post(COMPL, compl_body(response_format={"type": "json_object"}, max_tokens=1))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["text"], "{")
        for path, body, param in [
            (CHAT, chat_body(grammar='root ::= "a"\nb ::= [x'), "grammar"),
            (COMPL, compl_body(json_schema={"type": "array", "uniqueItems": True}), "json_schema"),
            (CHAT, chat_body(response_format={"type": "xml"}), "response_format.type"),
        ]:
            with self.subTest(body=body):
                r, _ = self.bad(400, "POST", path, body)
                self.assertEqual(r.json()["error"]["param"], param)

    def test_prompt_longer_than_the_context(self):
        ctx = common.CTX
        self.assertIsNotNone(ctx, "RFC_SERVE_CTX is not set")
        self.bad(400, "POST", COMPL, compl_body(prompt=[65] * (ctx + 10)))
        self.bad(400, "POST", COMPL, compl_body(prompt=[65] * ctx))
        self.bad(400, "POST", CHAT, chat_body(messages=[{"role": "user", "content": "word " * (ctx * 2)}]))
        # Streamed, the error comes before any event, as an HTTP status.
        self.bad(400, "POST", CHAT, chat_body(stream=True, messages=[{"role": "user", "content": "word " * (ctx * 2)}]))
        # Just fitting is fine (a prompt of ctx - 8 tokens, 4 more tokens).
        r = post(COMPL, compl_body(prompt=[65] * (ctx - 8), max_tokens=4, ignore_eos=True))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 4)

    def test_unknown_path_and_model(self):
        self.bad(404, "GET", "/v1/nothing")
        self.bad(404, "POST", "/v2/chat/completions", chat_body())
        self.bad(404, "GET", "/")
        self.bad(404, "POST", CHAT, chat_body(model="no-such-model"))
        self.bad(404, "POST", COMPL, compl_body(model="no-such-model"))

    def test_api_key(self):
        if not common.API_KEY:
            self.skipTest("the server was started without --api-key")
        for path, body in ((CHAT, chat_body()), (COMPL, compl_body()), ("/tokenize", {"content": "a"})):
            with self.subTest(path=path):
                self.bad(401, "POST", path, body, key=None)
                self.bad(401, "POST", path, body, key="wrong-" + common.API_KEY)
                self.bad(401, "POST", path, body, key=None,
                         headers={"Authorization": common.API_KEY})
        self.bad(401, "GET", "/v1/models", key=None)
        # The right key in either header form works.
        r = request("GET", "/v1/models", key=None, headers={"Authorization": f"Bearer {common.API_KEY}"})
        self.assertEqual(r.status, 200, r)

    def test_body_too_big(self):
        # 64 MiB: over any sensible limit of a chat request.
        blob = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * (64 << 20) + b'"}]}'
        head = (f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(blob)}\r\nAuthorization: Bearer {common.API_KEY or ''}\r\n"
                "Connection: close\r\n\r\n").encode()
        t0 = time.monotonic()
        r = common.raw_exchange(head + blob)
        self.assertIsNotNone(r, "no answer to a 64 MiB body")
        check_error(self, r, 413)
        self.assertLess(time.monotonic() - t0, 60)
        self.assert_serving()


class QueueFull(unittest.TestCase):
    """Needs a server with --parallel 1 --max-queue 1."""

    def test_queue_full(self):
        n = 8
        results = [None] * n
        barrier = threading.Barrier(n)

        def one(i):
            body = compl_body(prompt=[65 + i] * 8, max_tokens=int(os.environ.get("RFC_SERVE_SLOW_TOKENS", "400")),
                              ignore_eos=True)
            barrier.wait()
            results[i] = post(COMPL, body)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(common.TIMEOUT)
        self.assertTrue(all(r is not None for r in results), results)
        ok = [r for r in results if r.status == 200]
        full = [r for r in results if r.status != 200]
        # One runs, one waits; at least the rest are refused.
        self.assertGreaterEqual(len(ok), 1, results)
        self.assertGreaterEqual(len(full), n - 2, [r.status for r in results])
        for r in full:
            check_error(self, r, (429, 503))
            self.assertIn("retry-after", r.headers, repr(r.headers))
            self.assertGreaterEqual(int(r.headers["retry-after"]), 0)
        for r in ok:
            self.assertEqual(r.json()["choices"][0]["finish_reason"], "length")
        m = common.wait_idle()
        self.assertEqual(m["rfc_kv_pages_used"], 0)
        self.assertGreaterEqual(m.get("rfc_requests_rejected_total", len(full)), len(full))
        # And the server takes work again.
        r = post(COMPL, compl_body(max_tokens=2))
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
