#!/usr/bin/env python3
"""Requantize a GGUF file to IQ types with llama.cpp's own quantizer
(llama-cpp-python's `llama_model_quantize`, allow_requantize on), for issue
#18's real-weight check (tests/e2e_iq_requant_perplexity.rs).

    python3 scripts/requant-iq.py MODEL OUT_DIR [TYPE ...]

TYPE: iq4_xs, iq4_nl, iq3_s (default: all three). Writes OUT_DIR/<type>.gguf.
No importance matrix: llama.cpp's rules then send rows it can't take in the
asked type (Qwen2.5-0.5B's 896-wide matrices) to IQ4_NL. Point
LLAMA_CPP_LIB_PATH at a llama.cpp build if the package's own is not wanted."""
import os, sys, time
import llama_cpp

FTYPES = {
    "iq4_xs": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_XS,
    "iq4_nl": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL,
    "iq3_s": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ3_S,
}
model, out_dir = sys.argv[1], sys.argv[2]
types = sys.argv[3:] or list(FTYPES)
os.makedirs(out_dir, exist_ok=True)
for t in types:
    out = os.path.join(out_dir, f"{t}.gguf")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[t]
    p.allow_requantize = True
    p.nthread = os.cpu_count() or 1
    t0 = time.time()
    rc = llama_cpp.llama_model_quantize(model.encode(), out.encode(), p)
    if rc != 0:
        sys.exit(f"llama_model_quantize({t}) failed: {rc}")
    print(f"{out}: {os.path.getsize(out)} bytes, {time.time() - t0:.1f} s", flush=True)
