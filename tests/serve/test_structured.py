"""Structured output against `rfc serve` on the real model, with the
official `openai` client: JSON schemas (validated by `jsonschema`), JSON
mode, a tool-call round trip through the model's own chat template,
streamed tool calls, and llama.cpp's example GBNF grammars (taken from the
llama-cpp-python source package on PyPI, never committed), whose outputs
are checked by independent parsers (`json`, `lark`).

tests/serve_structured.rs starts the server and runs this file.
"""

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import unittest

import jsonschema
import lark
from openai import OpenAI

import common

client = OpenAI(base_url=common.BASE + "/v1", api_key=common.API_KEY or "none", max_retries=0,
                timeout=common.TIMEOUT)
MODEL = common.MODEL or client.models.list().data[0].id

PROFILE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "skills": {
            "type": "array",
            "items": {"type": "string", "maxLength": 16},
            "minItems": 1,
            "maxItems": 3,
        },
        "active": {"type": "boolean"},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
    },
    "required": ["name", "role", "address", "skills", "active", "age"],
    "additionalProperties": False,
}

WEATHER = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]


def chat(messages, **kw):
    return client.chat.completions.create(model=MODEL, messages=messages, **kw)


class JsonSchema(unittest.TestCase):
    def test_schema_output_validates_in_20_of_20_runs_at_temperature_1(self):
        fmt = {"type": "json_schema", "json_schema": {"name": "profile", "schema": PROFILE, "strict": True}}

        def one(seed):
            r = chat([{"role": "user", "content": "Invent a user profile for a web app."}],
                     response_format=fmt, temperature=1, seed=seed, max_tokens=200)
            return r.choices[0]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            choices = list(pool.map(one, range(20)))
        for c in choices:
            self.assertEqual(c.finish_reason, "stop", c.message.content)
            jsonschema.validate(json.loads(c.message.content), PROFILE)
        # Sampling at temperature 1 really varies the output.
        self.assertGreater(len({c.message.content for c in choices}), 5)

    def test_the_completions_endpoint_takes_a_schema_too(self):
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
                  "additionalProperties": False}
        r = client.completions.create(model=MODEL, prompt="A number as JSON:", max_tokens=30,
                                      temperature=1, seed=3,
                                      extra_body={"response_format": {"type": "json_schema",
                                                                      "json_schema": {"name": "n", "schema": schema}}})
        jsonschema.validate(json.loads(r.choices[0].text), schema)

    def test_json_object_mode_gives_parseable_objects(self):
        for seed in range(3):
            r = chat([{"role": "user", "content": "Describe a book as JSON."}],
                     response_format={"type": "json_object"}, temperature=1, seed=seed, max_tokens=300)
            c = r.choices[0]
            self.assertEqual(c.finish_reason, "stop", c.message.content)
            self.assertIsInstance(json.loads(c.message.content), dict)

    def test_an_unsupported_schema_keyword_is_a_400_that_names_it(self):
        bad = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
        r = common.post("/v1/chat/completions", {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "b", "schema": bad}}})
        self.assertEqual(r.status, 400, r)
        err = r.json()["error"]
        self.assertIn("uniqueItems", err["message"])
        self.assertEqual(err["param"], "response_format.json_schema.schema")


class ToolCalls(unittest.TestCase):
    def test_a_required_call_round_trips_through_the_chat_template(self):
        messages = [
            {"role": "system", "content": "You are a helpful assistant. When a tool result arrives, "
                                          "answer the user in one plain sentence."},
            {"role": "user", "content": "What is the weather like in Paris right now?"}]
        r = chat(messages, tools=WEATHER, tool_choice="required", temperature=0.7, seed=5, max_tokens=100)
        c = r.choices[0]
        self.assertEqual(c.finish_reason, "tool_calls")
        self.assertTrue(c.message.tool_calls, c.message)
        call = c.message.tool_calls[0]
        self.assertEqual(call.function.name, "get_weather")
        args = json.loads(call.function.arguments)
        jsonschema.validate(args, WEATHER[0]["function"]["parameters"])
        self.assertIn("paris", args["city"].lower())
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": json.dumps({"city": "Paris", "temperature_c": 23, "sky": "sunny"})})
        r = chat(messages, tools=WEATHER, tool_choice="none", temperature=0, max_tokens=80)
        final = r.choices[0]
        self.assertEqual(final.finish_reason, "stop")
        self.assertFalse(final.message.tool_calls)
        self.assertIn("23", final.message.content)

    def test_a_named_function_is_called(self):
        tools = WEATHER + [{"type": "function", "function": {
            "name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                                               "required": ["tz"]}}}]
        r = chat([{"role": "user", "content": "Weather in Oslo?"}], tools=tools, temperature=1, seed=2,
                 tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=80)
        calls = r.choices[0].message.tool_calls
        self.assertTrue(calls)
        self.assertTrue(all(c.function.name == "get_time" for c in calls))
        self.assertIn("tz", json.loads(calls[0].function.arguments))

    def test_tool_calls_stream_as_deltas(self):
        stream = chat([{"role": "user", "content": "Is it raining in Tokyo?"}], tools=WEATHER,
                      tool_choice="required", temperature=0.7, seed=9, max_tokens=100, stream=True)
        calls, finish, content = {}, None, ""
        for chunk in stream:
            if not chunk.choices:
                continue
            ch = chunk.choices[0]
            content += ch.delta.content or ""
            for d in ch.delta.tool_calls or []:
                entry = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = entry["id"] or d.id
                entry["name"] += d.function.name or ""
                entry["arguments"] += d.function.arguments or ""
            finish = ch.finish_reason or finish
        self.assertEqual(finish, "tool_calls")
        self.assertNotIn("<tool_call>", content)
        self.assertEqual(calls[0]["name"], "get_weather")
        self.assertTrue(calls[0]["id"])
        self.assertIn("tokyo", json.loads(calls[0]["arguments"])["city"].lower())


# ---- llama.cpp's example grammars ------------------------------------------

SDIST = "llama-cpp-python==0.3.36"
EXAMPLES = ["json", "arithmetic", "list", "chess", "c"]
CACHE = pathlib.Path(__file__).resolve().parents[2] / "target" / "gbnf-examples"


def example_grammars():
    """The example .gbnf files from the llama-cpp-python sdist (downloaded
    once into target/, which git ignores)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if all((CACHE / f"{n}.gbnf").is_file() for n in EXAMPLES):
        return {n: (CACHE / f"{n}.gbnf").read_text() for n in EXAMPLES}
    dl = CACHE / "sdist"
    if not list(dl.glob("llama_cpp_python-*.tar.gz")):
        # `--no-binary` for this package only: with `:all:` pip would build
        # its build tools (cmake) from source too, just to read metadata.
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                        "llama-cpp-python", SDIST, "-d", str(dl)], check=True)
    (tar_path,) = dl.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            p = pathlib.PurePosixPath(m.name)
            if p.parent.name == "grammars" and p.suffix == ".gbnf" and p.stem in EXAMPLES \
                    and "vendor/llama.cpp" in m.name:
                (CACHE / p.name).write_bytes(tar.extractfile(m).read())
    return {n: (CACHE / f"{n}.gbnf").read_text() for n in EXAMPLES}


# Independent grammars for Python's `lark` (its Earley parser with every
# match length tried, as GBNF means) of what arithmetic.gbnf and
# list.gbnf accept (written from their GBNF text, not translated by rfc).
ARITHMETIC_LARK = r"""
start: line+
line: expr "=" WS? term "\n"
expr: term (OP term)*
term: IDENT WS? | NUM WS? | "(" WS? expr ")" WS?
OP: /[-+*\/]/
IDENT: /[a-z][a-z0-9_]*/
NUM: /[0-9]+/
WS: /[ \t\n]+/
"""
LIST_LARK = r"""
start: item+
item: "- " /[^\r\n\x0b\x0c\x85\u2028\u2029]+/ "\n"
"""


# Endings that complete a cut-off sample: if one makes it parse, the
# sample was a valid beginning (a sound check; it could only miss).
ARITHMETIC_ENDINGS = ["", "\n", "1\n", " = 1\n", "1 = 1\n", ")\n", "1)\n", ") = 1\n", "1) = 1\n",
                      "))\n", "1))\n", ")) = 1\n", "1)) = 1\n", "= 1\n"]
LIST_ENDINGS = ["", "\n", "x\n", " x\n", "- x\n"]


def parses_as_prefix(parser, text, endings):
    for e in endings:
        try:
            parser.parse(text + e)
            return True
        except lark.exceptions.LarkError:
            pass
    return False


class GbnfExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.grammars = example_grammars()

    def sample(self, name, prompt, seed, max_tokens=120):
        r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens,
                                      temperature=1, seed=seed, extra_body={"grammar": self.grammars[name]})
        return r.choices[0]

    def test_every_example_translates_and_compiles(self):
        for name in EXAMPLES:
            with self.subTest(name):
                c = self.sample(name, "Output:", seed=1, max_tokens=4)
                self.assertIn(c.finish_reason, ("stop", "length"))

    def test_json_samples_parse(self):
        for seed in range(3):
            c = self.sample("json", "A JSON object describing a cat:\n", seed, max_tokens=200)
            if c.finish_reason == "stop":
                json.loads(c.text)
            else:
                # Cut by max_tokens: it must still be the start of JSON.
                with self.assertRaises(json.JSONDecodeError) as e:
                    json.loads(c.text)
                self.assertEqual(e.exception.pos, len(c.text.rstrip()), c.text)

    def test_arithmetic_and_list_samples_parse_with_lark(self):
        checks = [("arithmetic", "Equations:\n", ARITHMETIC_LARK, ARITHMETIC_ENDINGS),
                  ("list", "A shopping list:\n", LIST_LARK, LIST_ENDINGS)]
        for name, prompt, grammar, endings in checks:
            parser = lark.Lark(grammar, parser="earley", lexer="dynamic_complete")
            for seed in range(2):
                with self.subTest(name, seed=seed):
                    c = self.sample(name, prompt, seed, max_tokens=60)
                    if c.finish_reason == "stop":
                        parser.parse(c.text)
                    else:
                        # Cut by max_tokens: some ending completes it.
                        self.assertTrue(parses_as_prefix(parser, c.text, endings), repr(c.text))

    def test_the_independent_checks_can_fail(self):
        for grammar, text, endings in [(ARITHMETIC_LARK, "x = = 1\n", ARITHMETIC_ENDINGS),
                                       (LIST_LARK, "* milk\n", LIST_ENDINGS)]:
            self.assertFalse(parses_as_prefix(lark.Lark(grammar, parser="earley", lexer="dynamic_complete"), text, endings))

    def test_a_broken_grammar_is_a_400_naming_its_line(self):
        # An unterminated string literal in the `num` rule.
        broken = self.grammars["arithmetic"].replace("[0-9]+ ws", "[0-9]+ \"ws", 1)
        self.assertNotEqual(broken, self.grammars["arithmetic"])
        r = common.post("/v1/completions", {"prompt": "x", "max_tokens": 2, "grammar": broken})
        self.assertEqual(r.status, 400, r)
        err = r.json()["error"]
        line = next(i for i, l in enumerate(broken.splitlines(), 1) if l.startswith("num"))
        self.assertIn(f"GBNF line {line}, column", err["message"])
        self.assertIn("unterminated string", err["message"])
        self.assertEqual(err["code"], "invalid_grammar")


if __name__ == "__main__":
    unittest.main()
