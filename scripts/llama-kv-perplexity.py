#!/usr/bin/env python3
"""llama.cpp's perplexity of a text with a chosen KV cache type, through
llama-cpp-python's `type_k`/`type_v`, chunked and scored as llama-perplexity
does (../shared/COMPARING.md): floor(n_tokens / n_ctx) chunks, each from an
empty cache, the second half of each chunk scored. Produces the figures in
tests/fixtures/kv_cache_perplexity.json.

    python3 scripts/llama-kv-perplexity.py MODEL TEXT TYPE_K TYPE_V FLASH_ATTN [N_CTX]

TYPE_K/TYPE_V: f16, q8_0, q4_0 (ggml type ids 1, 8, 2). FLASH_ATTN: on|off
(llama.cpp needs it on for a quantized V cache). Prints JSON."""
import json, math, sys
import numpy as np
from llama_cpp import Llama

GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}
model, text_path, tk, tv, fa = sys.argv[1:6]
n_ctx = int(sys.argv[6]) if len(sys.argv) > 6 else 512
llm = Llama(model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=2,
            n_threads_batch=2, logits_all=True, flash_attn=(fa == "on"),
            type_k=GGML_TYPES[tk], type_v=GGML_TYPES[tv], verbose=False)
add_bos = llm._model.add_bos_token()
text = open(text_path, "rb").read()
tokens = llm.tokenize(text, add_bos=add_bos, special=False)
n_chunks = len(tokens) // n_ctx
nll, count = 0.0, 0
for c in range(n_chunks):
    chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
    if add_bos:
        chunk[0] = llm.token_bos()
    llm.reset()
    llm.eval(chunk)
    logits = np.asarray(llm.scores[:n_ctx], dtype=np.float64)
    for j in range(n_ctx // 2, n_ctx - 1):
        row = logits[j]
        m = row.max()
        lse = m + math.log(np.exp(row - m).sum())
        nll += lse - row[chunk[j + 1]]
        count += 1
print(json.dumps({"type_k": tk, "type_v": tv, "flash_attn": fa, "n_ctx": n_ctx,
                  "chunks": n_chunks, "scored": count, "ppl": math.exp(nll / count)}))
