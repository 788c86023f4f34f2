#!/usr/bin/env python3
"""llama.cpp's own logits for tiny synthetic models: tests/fixtures/hf/llamacpp/<case>.json
in the format of scripts/numpy-goldens.py (tests/hf_goldens.rs reads both).

For rules llama.cpp defines and HF transformers applies differently, such as
which LongRoPE factor set a run takes (llama.cpp: by the context size,
fixed for the run; HF: by the sequence length so far). The model files are
made by `rfc synth tiny` with numpy-goldens.py's case settings and seeds
(the same bytes), run through llama-cpp-python built from source (see
scripts/make-llamacpp-goldens.sh) with the case's context, an f32 KV
cache and flash attention off, every prompt from an empty cache, logits
of every position.

    .venv-llamacpp/bin/python scripts/llamacpp-goldens.py --rfc target/release/rfc [CASE...]
"""
import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import pathlib
import sys
import tempfile

import numpy as np
import llama_cpp

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("numpy_goldens", HERE / "numpy-goldens.py")
ng = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ng)

CASES = ["phi3_gqa_longrope_long_f32", "phi3_gqa_longrope_short_f32", "phi3_gqa_longrope_long_q8_0",
         "qwen3_gqa_yarn4_f32", "qwen3_gqa_yarn4_q8_0", "mixtral_e4k2_yarn8_f32",
         "gemma2_gqa_window4_f32", "gemma2_mqa_window4_q8_0"]
GGML_TYPE_F32 = 0


def run(path, context, prompts):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=context, n_batch=64, logits_all=True,
                          n_threads=2, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32,
                          flash_attn=False, verbose=False)
    out = []
    for p in prompts:
        llm.reset()  # the next eval drops the cache from position 0
        llm.eval(p)
        out.append(np.array(llm.scores[: len(p)], dtype=np.float64))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rfc", default="target/release/rfc")
    ap.add_argument("--out", default="tests/fixtures/hf/llamacpp")
    ap.add_argument("only", nargs="*", help="case names (default: all)")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        if a.only and name not in a.only:
            continue
        context = ng.LONGROPE.get(name, (0, 64))[1]
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / f"{name}.gguf"
            settings = ng.synth(a.rfc, ng.CASES[name], path, name)
            data = path.read_bytes()
            # llama.cpp's vocabulary loader gives files named "phi3" the
            # real Phi-3's special tokens, which the tiny byte vocabulary
            # lacks: llama.cpp reads a copy renamed (same length, so the
            # same offsets and tensor bytes).
            renamed = pathlib.Path(tmp) / "renamed.gguf"
            renamed.write_bytes(data.replace(b"tiny-phi3", b"tiny-phi_", 1))
            results = list(zip(ng.PROMPTS, run(renamed, context, ng.PROMPTS)))
        tol = ng.FLOAT_TOL if settings["type"] in ("F32", "F16") else ng.QUANTIZED_TOL
        if settings["arch"] == "gemma2":
            # ggml's CPU GELU reads a table of f16 inputs and outputs: the
            # exact-GELU numpy reference sits 8.9e-5 from llama.cpp on the
            # F32 case, 5.9e-6 with the table emulated. Not f32 activations,
            # so not the F32 tolerance.
            tol = max(tol, 1e-3)
        ref = {"emulated": None, "llama_cpp_python": llama_cpp.__version__,
               "dtype": "float32", "attention": "no flash attention, f32 KV cache",
               "loader": f"llama.cpp (llama-cpp-python built from source), n_ctx {context}"}
        head = {"name": name, "reference": ref, "synth": settings, "context": context,
                "gguf_sha256": hashlib.sha256(data).hexdigest(), "gguf_bytes": len(data), "tolerance": tol}
        text = json.dumps(head, indent=1)[:-2] + ',\n "prompts": [\n'
        text += ",\n".join('  {"tokens": ' + json.dumps(t) + ', "logits": [\n   '
                           + ",\n   ".join(ng.fmt(r) for r in lg) + "]}" for t, lg in results)
        text += "\n ]\n}\n"
        json.loads(text)
        (out / f"{name}.json").write_text(text)
        # Against the numpy float64 reference of the same file and context.
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / f"{name}.gguf"
            ng.synth(a.rfc, ng.CASES[name], path, name)
            model = ng.Model(path)
            model.context = context
            worst = max(np.linalg.norm(lg - model.forward(t)) / np.linalg.norm(model.forward(t))
                        for t, lg in results)
        print(f"{name}: llama.cpp vs numpy worst relative error {worst:.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
