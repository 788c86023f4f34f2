"""`rfc serve` through the official `openai` Python package: chat and
completions, streaming or not, usage, stop strings, max_tokens, seeds,
logprobs, the prefix cache's cached_tokens, /v1/models, /tokenize.

Run by tests/serve_openai.rs against a tiny synthetic model (random
weights: the texts are gibberish, so every check is made against the
server's own greedy output, never against expected words).
"""

import math
import random
import unittest

import openai
from openai import OpenAI

import common

EXTRA = {"ignore_eos": True}


def client(key=common.API_KEY):
    return OpenAI(
        base_url=common.BASE + "/v1",
        api_key=key or "unused",
        max_retries=0,
        timeout=common.TIMEOUT,
    )


def chat_messages(text="Write a short poem about the sea."):
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text},
    ]


def unique_text(n_words, seed):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "sea", "tree", "stone", "river", "cloud", "fire"]
    return " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(n_words))


class OpenAIClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = client()
        cls.model = common.model_name()

    # --- models, health -------------------------------------------------

    def test_models_lists_the_model(self):
        models = self.c.models.list()
        ids = [m.id for m in models.data]
        self.assertTrue(ids, "no model listed")
        if common.MODEL:
            self.assertIn(common.MODEL, ids)
        for m in models.data:
            self.assertEqual(m.object, "model")
        r = common.get("/health")
        self.assertEqual(r.status, 200, r)

    # --- chat -------------------------------------------------------------

    def test_chat_not_streamed(self):
        r = self.c.chat.completions.create(
            model=self.model, messages=chat_messages(), max_tokens=8, temperature=0
        )
        self.assertEqual(r.object, "chat.completion")
        self.assertTrue(r.id)
        self.assertEqual(len(r.choices), 1)
        ch = r.choices[0]
        self.assertEqual(ch.index, 0)
        self.assertEqual(ch.message.role, "assistant")
        self.assertIsInstance(ch.message.content, str)
        self.assertIn(ch.finish_reason, ("stop", "length"))
        u = r.usage
        self.assertGreater(u.prompt_tokens, 0)
        self.assertTrue(1 <= u.completion_tokens <= 8, u)
        self.assertEqual(u.total_tokens, u.prompt_tokens + u.completion_tokens)

    def test_chat_streamed_equals_not_streamed_and_usage_comes_last(self):
        kw = dict(model=self.model, messages=chat_messages("Count to ten."), max_tokens=12,
                  temperature=0, extra_body=EXTRA)
        whole = self.c.chat.completions.create(**kw)
        chunks = list(self.c.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kw))
        self.assertGreaterEqual(len(chunks), 2)
        for ch in chunks:
            self.assertEqual(ch.object, "chat.completion.chunk")
        *body, last = chunks
        # The usage chunk: no choices, the usage of the whole request.
        self.assertEqual(last.choices, [], last)
        self.assertIsNotNone(last.usage, last)
        for ch in body:
            self.assertIsNone(ch.usage, ch)
            self.assertEqual(len(ch.choices), 1, ch)
        text = "".join(ch.choices[0].delta.content or "" for ch in body)
        finishes = [ch.choices[0].finish_reason for ch in body if ch.choices[0].finish_reason]
        self.assertEqual(finishes, ["length"])
        self.assertEqual(body[-1].choices[0].finish_reason, "length")
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(last.usage.completion_tokens, 12)
        self.assertEqual(last.usage.prompt_tokens, whole.usage.prompt_tokens)
        self.assertEqual(last.usage.total_tokens, last.usage.prompt_tokens + 12)
        self.assertEqual(whole.usage.completion_tokens, 12)
        # The first chunk with a delta names the assistant's role.
        self.assertEqual(body[0].choices[0].delta.role, "assistant")

    def test_chat_stream_without_include_usage_sends_no_usage(self):
        chunks = list(self.c.chat.completions.create(
            model=self.model, messages=chat_messages(), max_tokens=4, temperature=0,
            stream=True, extra_body=EXTRA))
        self.assertTrue(chunks)
        for ch in chunks:
            self.assertIsNone(ch.usage, ch)
            self.assertEqual(len(ch.choices), 1, ch)
        self.assertEqual(chunks[-1].choices[0].finish_reason, "length")

    def test_chat_content_parts(self):
        """content as a list of text parts is the same as the parts joined
        by newlines (as vLLM joins them; docs/SERVING.md)."""
        plain = self.c.chat.completions.create(
            model=self.model, temperature=0, max_tokens=6, extra_body=EXTRA,
            messages=[{"role": "user", "content": "Hello there, \nhow are you?"}])
        parts = self.c.chat.completions.create(
            model=self.model, temperature=0, max_tokens=6, extra_body=EXTRA,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "Hello there, "},
                {"type": "text", "text": "how are you?"}]}])
        self.assertEqual(parts.usage.prompt_tokens, plain.usage.prompt_tokens)
        self.assertEqual(parts.choices[0].message.content, plain.choices[0].message.content)

    def test_chat_prompt_tokens_match_tokenize_of_chatml(self):
        """The tiny model has no chat template: the server renders ChatML, so
        prompt_tokens is the token count of that text."""
        if not common.VOCAB:
            self.skipTest("only on the tiny model (RFC_SERVE_VOCAB)")
        msgs = chat_messages("What is two plus two?")
        rendered = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
        rendered += "<|im_start|>assistant\n"
        r = self.c.chat.completions.create(model=self.model, messages=msgs, max_tokens=1)
        self.assertEqual(r.usage.prompt_tokens, len(common.tokenize(rendered)))

    # --- completions ----------------------------------------------------------

    def test_completions_streamed_equals_not_streamed(self):
        kw = dict(model=self.model, prompt="Once upon a time", max_tokens=10, temperature=0,
                  extra_body=EXTRA)
        whole = self.c.completions.create(**kw)
        self.assertEqual(whole.object, "text_completion")
        self.assertEqual(len(whole.choices), 1)
        self.assertEqual(whole.choices[0].finish_reason, "length")
        self.assertEqual(whole.usage.completion_tokens, 10)
        chunks = list(self.c.completions.create(
            stream=True, stream_options={"include_usage": True}, **kw))
        *body, last = chunks
        self.assertEqual(last.choices, [], last)
        self.assertEqual(last.usage.completion_tokens, 10)
        self.assertEqual(last.usage.prompt_tokens, whole.usage.prompt_tokens)
        text = "".join(ch.choices[0].text for ch in body)
        self.assertEqual(text, whole.choices[0].text)
        self.assertEqual(body[-1].choices[0].finish_reason, "length")
        self.assertEqual(
            [ch.choices[0].finish_reason for ch in body if ch.choices[0].finish_reason],
            ["length"])

    def test_completions_usage_matches_tokenize(self):
        prompt = "The quick brown fox jumps over the lazy dog. " * 3
        toks = common.tokenize(prompt)
        self.assertTrue(toks)
        self.assertTrue(all(isinstance(t, int) for t in toks))
        self.assertEqual(common.detokenize(toks), prompt)
        r = self.c.completions.create(model=self.model, prompt=prompt, max_tokens=3,
                                      temperature=0, extra_body=EXTRA)
        self.assertEqual(r.usage.prompt_tokens, len(toks))
        self.assertEqual(r.usage.completion_tokens, 3)
        self.assertEqual(r.usage.total_tokens, len(toks) + 3)
        # The same prompt as token ids gives the same output.
        r2 = self.c.completions.create(model=self.model, prompt=toks, max_tokens=3,
                                       temperature=0, extra_body=EXTRA)
        self.assertEqual(r2.usage.prompt_tokens, len(toks))
        self.assertEqual(r2.choices[0].text, r.choices[0].text)

    # --- max_tokens -------------------------------------------------------------

    def test_max_tokens_ends_with_length(self):
        for n in (1, 5, 17):
            r = self.c.chat.completions.create(
                model=self.model, messages=chat_messages(), max_tokens=n, extra_body=EXTRA)
            self.assertEqual(r.choices[0].finish_reason, "length", n)
            self.assertEqual(r.usage.completion_tokens, n)
            r = self.c.completions.create(
                model=self.model, prompt="abc", max_tokens=n, extra_body=EXTRA)
            self.assertEqual(r.choices[0].finish_reason, "length", n)
            self.assertEqual(r.usage.completion_tokens, n)
        r = self.c.chat.completions.create(
            model=self.model, messages=chat_messages(), max_completion_tokens=6, extra_body=EXTRA)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 6)

    # --- stop strings -------------------------------------------------------------

    def _greedy(self, **kw):
        return self.c.completions.create(model=self.model, temperature=0, extra_body=EXTRA, **kw)

    def _pick_stop(self, text, at):
        """A 3-character piece of `text` from about `at` on, without
        replacement characters or white space at its ends."""
        for i in range(at, len(text) - 3):
            s = text[i : i + 3]
            if "\ufffd" not in s and s.strip() == s:
                return s
        self.fail(f"no usable stop string in {text!r}")

    def test_stop_strings(self):
        prompt = "Stop strings: " + unique_text(6, 1)
        full = self._greedy(prompt=prompt, max_tokens=40).choices[0].text
        self.assertGreater(len(full), 12, full)
        stop = self._pick_stop(full, len(full) // 3)
        want = full[: full.index(stop)]
        for stops in (stop, [stop], ["\x01never", stop]):
            r = self._greedy(prompt=prompt, max_tokens=40, stop=stops)
            got = r.choices[0].text
            self.assertNotIn(stop, got)
            self.assertEqual(got, want, f"stop={stops!r} full={full!r}")
            self.assertEqual(r.choices[0].finish_reason, "stop")
            self.assertLess(r.usage.completion_tokens, 40)
        # Streamed: the pieces never show the stop string, not even split.
        chunks = list(self.c.completions.create(
            model=self.model, prompt=prompt, max_tokens=40, temperature=0, stop=stop,
            stream=True, extra_body=EXTRA))
        got = "".join(ch.choices[0].text for ch in chunks if ch.choices)
        self.assertEqual(got, want)
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")

    def test_stop_strings_chat(self):
        msgs = chat_messages("Stop strings, chat: " + unique_text(5, 2))
        kw = dict(model=self.model, messages=msgs, temperature=0, max_tokens=40, extra_body=EXTRA)
        full = self.c.chat.completions.create(**kw).choices[0].message.content
        stop = self._pick_stop(full, len(full) // 2)
        want = full[: full.index(stop)]
        r = self.c.chat.completions.create(stop=[stop], **kw)
        self.assertEqual(r.choices[0].message.content, want)
        self.assertEqual(r.choices[0].finish_reason, "stop")
        chunks = list(self.c.chat.completions.create(stop=stop, stream=True, **kw))
        got = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        self.assertEqual(got, want)
        self.assertNotIn(stop, got)
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")

    # --- seeds ----------------------------------------------------------------

    def test_seeds_reproduce(self):
        kw = dict(model=self.model, messages=chat_messages("Tell me a story."), max_tokens=48,
                  temperature=0.8, extra_body=EXTRA)
        a = self.c.chat.completions.create(seed=1234, **kw).choices[0].message.content
        b = self.c.chat.completions.create(seed=1234, **kw).choices[0].message.content
        c = self.c.chat.completions.create(seed=4321, **kw).choices[0].message.content
        self.assertEqual(a, b, "same seed, different text")
        self.assertNotEqual(a, c, "different seeds, same 48-token text")
        # Streamed with the same seed: the same text.
        chunks = self.c.chat.completions.create(seed=1234, stream=True, **kw)
        s = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        self.assertEqual(s, a)
        # Completions too, with top_k/top_p/min_p set.
        kw = dict(model=self.model, prompt="Seeds: ", max_tokens=48, temperature=0.8,
                  top_p=0.95)
        ex = dict(EXTRA, top_k=40, min_p=0.01)
        a = self.c.completions.create(seed=7, extra_body=ex, **kw).choices[0].text
        b = self.c.completions.create(seed=7, extra_body=ex, **kw).choices[0].text
        c = self.c.completions.create(seed=8, extra_body=ex, **kw).choices[0].text
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    # --- logprobs -------------------------------------------------------------

    def test_chat_logprobs(self):
        r = self.c.chat.completions.create(
            model=self.model, messages=chat_messages(), max_tokens=7, temperature=0,
            logprobs=True, top_logprobs=3, extra_body=EXTRA)
        ch = r.choices[0]
        content = ch.logprobs.content
        self.assertEqual(len(content), r.usage.completion_tokens)
        self.assertEqual(len(content), 7)
        joined = b"".join(bytes(e.bytes) for e in content)
        self.assertEqual(joined.decode("utf-8", "replace"), ch.message.content)
        for e in content:
            self.assertIsInstance(e.token, str)
            self.assertLessEqual(e.logprob, 1e-6)
            self.assertTrue(math.isfinite(e.logprob))
            self.assertEqual(len(e.top_logprobs), 3)
            lps = [t.logprob for t in e.top_logprobs]
            self.assertEqual(lps, sorted(lps, reverse=True))
            self.assertLessEqual(sum(math.exp(x) for x in lps), 1 + 1e-4)
            # Greedy: the chosen token is the most likely one.
            self.assertEqual(e.top_logprobs[0].token, e.token)
            self.assertAlmostEqual(e.top_logprobs[0].logprob, e.logprob, places=5)
            self.assertEqual(e.top_logprobs[0].bytes, e.bytes)
        # logprobs without top_logprobs: entries with no alternatives.
        r = self.c.chat.completions.create(
            model=self.model, messages=chat_messages(), max_tokens=3, temperature=0,
            logprobs=True, extra_body=EXTRA)
        content = r.choices[0].logprobs.content
        self.assertEqual(len(content), 3)
        for e in content:
            self.assertEqual(len(e.top_logprobs or []), 0)
        # Streamed: one entry per token over the chunks.
        chunks = list(self.c.chat.completions.create(
            model=self.model, messages=chat_messages(), max_tokens=5, temperature=0,
            logprobs=True, top_logprobs=2, stream=True, extra_body=EXTRA))
        entries = [e for ch in chunks if ch.choices and ch.choices[0].logprobs
                   for e in ch.choices[0].logprobs.content or []]
        self.assertEqual(len(entries), 5)
        for e in entries:
            self.assertEqual(len(e.top_logprobs), 2)

    def test_completions_logprobs_legacy_format(self):
        r = self.c.completions.create(model=self.model, prompt="Logprobs: ", max_tokens=6,
                                      temperature=0, logprobs=2, extra_body=EXTRA)
        lp = r.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 6)
        self.assertEqual(len(lp.token_logprobs), 6)
        self.assertEqual(len(lp.top_logprobs), 6)
        for tok, tlp, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
            self.assertIsInstance(tok, str)
            self.assertLessEqual(tlp, 1e-6)
            self.assertIsInstance(top, dict)
            self.assertTrue(1 <= len(top) <= 2, top)
            self.assertIn(tok, top)
            self.assertAlmostEqual(max(top.values()), tlp, places=5)
        if lp.text_offset is not None:
            self.assertEqual(len(lp.text_offset), 6)
            self.assertEqual(lp.text_offset, sorted(lp.text_offset))

    # --- logit_bias --------------------------------------------------------------

    def test_logit_bias_forces_and_bans_tokens(self):
        """+100 makes a token every step's choice, -100 takes it out of the
        running; greedy and sampled alike. An id outside the vocabulary
        is a 400 naming logit_bias."""
        t1, t2 = 300, 301
        s1, s2 = common.detokenize([t1]), common.detokenize([t2])
        kw = dict(model=self.model, prompt="Bias: ", max_tokens=4, extra_body=EXTRA)
        for temperature in (0, 1.0):
            r = self.c.completions.create(temperature=temperature, seed=7,
                                          logit_bias={str(t1): 100}, **kw)
            self.assertEqual(r.choices[0].text, s1 * 4, f"temperature {temperature}")
            r = self.c.completions.create(temperature=temperature, seed=7,
                                          logit_bias={str(t1): -100, str(t2): 100}, **kw)
            self.assertEqual(r.choices[0].text, s2 * 4, f"temperature {temperature}")
        # Banning the greedy choice: the first token becomes the one the
        # unbiased run ranked second.
        lp = self.c.completions.create(temperature=0, logprobs=2, **kw).choices[0].logprobs
        ranked = sorted(lp.top_logprobs[0].items(), key=lambda kv: -kv[1])
        ids = common.tokenize(ranked[0][0])
        self.assertEqual(len(ids), 1, f"{ranked[0][0]!r} -> {ids}")
        lp2 = self.c.completions.create(temperature=0, logprobs=2, logit_bias={str(ids[0]): -100},
                                        **kw).choices[0].logprobs
        self.assertEqual(lp2.tokens[0], ranked[1][0], f"{ranked} -> {lp2.tokens}")
        with self.assertRaises(openai.BadRequestError) as e:
            self.c.completions.create(temperature=0, logit_bias={"99999999": 5}, **kw)
        self.assertIn("logit_bias", str(e.exception))

    # --- prefix cache -----------------------------------------------------------

    def test_cached_tokens(self):
        """A repeated long prompt: cached_tokens > 0 with the prefix cache,
        0 without; the output is the same either way."""
        prompt = "Cache: " + unique_text(20, random.randrange(1 << 30))
        n = len(common.tokenize(prompt))
        self.assertTrue(64 < n < 200, n)
        before = common.metrics()["rfc_prefix_cache_hit_tokens_total"]
        kw = dict(model=self.model, prompt=prompt, max_tokens=4, temperature=0, extra_body=EXTRA)
        first = self.c.completions.create(**kw)
        second = self.c.completions.create(**kw)
        self.assertEqual(first.usage.prompt_tokens, n)
        self.assertEqual(first.usage.prompt_tokens_details.cached_tokens, 0)
        self.assertEqual(second.choices[0].text, first.choices[0].text)
        cached = second.usage.prompt_tokens_details.cached_tokens
        # Chat, streamed, the usage chunk carries it too.
        msgs = [{"role": "user", "content": prompt}]
        chunks = [list(self.c.chat.completions.create(
            model=self.model, messages=msgs, max_tokens=2, stream=True,
            stream_options={"include_usage": True}, extra_body=EXTRA))[-1] for _ in range(2)]
        chat_cached = chunks[1].usage.prompt_tokens_details.cached_tokens
        after = common.metrics()["rfc_prefix_cache_hit_tokens_total"]
        if common.PREFIX_CACHE:
            self.assertGreater(cached, 0)
            self.assertLess(cached, n)
            self.assertGreater(chat_cached, 0)
            self.assertGreaterEqual(after - before, cached + chat_cached)
        else:
            self.assertEqual(cached, 0)
            self.assertEqual(chat_cached, 0)
            self.assertEqual(after, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
