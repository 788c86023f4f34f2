#!/usr/bin/env python3
"""HF transformers logits for tiny synthetic models: tests/fixtures/hf/<case>.json.

Each case is made by `rfc synth tiny` (our Rust generator, seeded), loaded by
transformers' own GGUF support (its config mapping, its dequantization
through the gguf package, and its un-permutation of LLaMA q/k rows), run in
float64 with eager attention, and the logits of every position of a few
fixed prompts are written with the settings and the SHA-256 of the model
file. tests/hf_goldens.rs regenerates the identical file from the settings,
checks the hash, runs our CPU executor and compares (shared/COMPARING.md).

The model files are not committed (most exceed 200 KB); the generator is
deterministic (src/synth/rng.rs pins it to reference vectors).

Where transformers' GGUF config does not express a setting, the HF model is
built from that config with the setting added: LLaMA q/k/v biases
(attention_bias, the o_proj bias left at zero) and Mistral's sliding window
(a MistralConfig with sliding_window; transformers only maps a file to
Mistral when general.name is exactly "mistral").
"""
import argparse
import hashlib
import importlib.metadata
import json
import pathlib
import subprocess
import sys
import tempfile

import gguf
import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

QUANTIZED_TOL, FLOAT_TOL = 2e-2, 1e-4

# name: (arch, type, heads, kv_heads, tied, bias, window, seed)
CASES = {
    # F32: every structural variant.
    "llama_mha_f32": ("llama", "F32", 4, 4, False, False, None, 101),
    "llama_gqa_f32": ("llama", "F32", 4, 2, False, False, None, 102),
    "llama_gqa_tied_bias_f32": ("llama", "F32", 4, 2, True, True, None, 103),
    "qwen2_gqa_tied_bias_f32": ("qwen2", "F32", 4, 2, True, True, None, 104),
    "qwen2_mha_untied_nobias_f32": ("qwen2", "F32", 4, 4, False, False, None, 105),
    "mistral_gqa_f32": ("mistral", "F32", 4, 2, False, False, None, 106),
    "mistral_gqa_window4_f32": ("mistral", "F32", 4, 2, False, False, 4, 107),
    # Weight types on the usual LLaMA and Qwen2 shapes.
    "llama_gqa_f16": ("llama", "F16", 4, 2, False, False, None, 201),
    "qwen2_gqa_tied_bias_f16": ("qwen2", "F16", 4, 2, True, True, None, 202),
    "llama_gqa_q8_0": ("llama", "Q8_0", 4, 2, False, False, None, 301),
    "qwen2_gqa_tied_bias_q8_0": ("qwen2", "Q8_0", 4, 2, True, True, None, 302),
    "llama_gqa_q4_0": ("llama", "Q4_0", 4, 2, False, False, None, 401),
    "qwen2_gqa_tied_bias_q4_0": ("qwen2", "Q4_0", 4, 2, True, True, None, 402),
    "llama_gqa_q4_k": ("llama", "Q4_K", 4, 2, False, False, None, 501),
    "qwen2_gqa_tied_bias_q4_k": ("qwen2", "Q4_K", 4, 2, True, True, None, 502),
    "mistral_gqa_window4_q4_k": ("mistral", "Q4_K", 4, 2, False, False, 4, 503),
    "llama_gqa_q6_k": ("llama", "Q6_K", 4, 2, False, False, None, 601),
    "qwen2_gqa_tied_bias_q6_k": ("qwen2", "Q6_K", 4, 2, True, True, None, 602),
    # Qwen3 (per-head Q/K RMSNorm, no biases; issue #17).
    "qwen3_gqa_f32": ("qwen3", "F32", 4, 2, False, False, None, 108),
    "qwen3_mha_tied_f32": ("qwen3", "F32", 4, 4, True, False, None, 109),
    "qwen3_gqa_f16": ("qwen3", "F16", 4, 2, False, False, None, 203),
    "qwen3_gqa_q8_0": ("qwen3", "Q8_0", 4, 2, False, False, None, 303),
    "qwen3_gqa_q4_k": ("qwen3", "Q4_K", 4, 2, False, False, None, 504),
    "qwen3_gqa_q6_k": ("qwen3", "Q6_K", 4, 2, True, False, None, 604),
    # Gemma 3 (issue #17): 6 layers, layer 5 global.
    "gemma3_mqa_tied_window4_f32": ("gemma3", "F32", 4, 1, True, False, 4, 110),
    "gemma3_gqa_untied_f32": ("gemma3", "F32", 4, 2, False, False, None, 111),
    "gemma3_mqa_tied_window4_q8_0": ("gemma3", "Q8_0", 4, 1, True, False, 4, 304),
    "gemma3_mqa_tied_window4_q4_k": ("gemma3", "Q4_K", 4, 1, True, False, 4, 505),
    # Phi-3 (issue #17): fused QKV and gate/up.
    "phi3_gqa_f32": ("phi3", "F32", 4, 2, False, False, None, 112),
    "phi3_mha_tied_f16": ("phi3", "F16", 4, 4, True, False, None, 205),
    "phi3_gqa_q8_0": ("phi3", "Q8_0", 4, 2, False, False, None, 306),
    "phi3_gqa_q4_k": ("phi3", "Q4_K", 4, 2, False, False, None, 507),
}
LAYERS = {"gemma3": 6}

# Token ids below every case's vocab (320); lengths 1, 6 and 20.
PROMPTS = [
    [1],
    [1, 72, 101, 108, 108, 111],
    [5, 300, 17, 42, 42, 260, 99, 3, 150, 151, 7, 8, 255, 256, 64, 31, 200, 12, 318, 77],
]


def synth(rfc, case, out):
    arch, ty, heads, kv_heads, tied, bias, window, seed = case
    cmd = [rfc, "synth", "tiny", "--arch", arch, "--type", ty, "--heads", str(heads),
           "--kv-heads", str(kv_heads), "--seed", str(seed)]
    cmd += ["--tied"] if tied else []
    cmd += ["--bias"] if bias else []
    cmd += ["--window", str(window)] if window else []
    cmd += ["--layers", str(LAYERS[arch])] if arch in LAYERS else []
    summary = json.loads(subprocess.run(cmd + [str(out)], check=True, capture_output=True,
                                        text=True).stdout)
    return {"arch": arch, "type": ty, "heads": heads, "kv_heads": kv_heads, "d": summary["hidden"],
            "ffn": summary["ffn"], "layers": summary["layers"], "vocab": summary["vocab"],
            "tied": tied, "bias": bias, "window": window, "seed": seed}


def hf_config(path, reader):
    cfg = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    if cfg.model_type == "llama" and "blk.0.attn_q.bias" in {t.name for t in reader.tensors}:
        cfg.attention_bias = True  # also gives o_proj a bias: left at zero
    key_length = reader.fields.get(f"{cfg.model_type}.attention.key_length")
    if key_length is not None:
        # Qwen3's head size is its own hparam (not hidden / heads): take the
        # file's value whether or not the GGUF config mapping carries it.
        cfg.head_dim = int(key_length.contents())
    if cfg.model_type in ("gemma3", "gemma3_text"):
        gemma3_defaults(cfg, reader)
    return cfg


def gemma3_defaults(cfg, reader):
    """What llama.cpp (and ir_specs/gemma3.toml's [defaults]) fill in for a
    gemma3 GGUF: every 6th layer global with the file's RoPE base, the
    others local (RoPE base 1e4, the file's window, if any), q scaled by
    1/sqrt(head_dim), no soft-capping."""
    field = reader.fields.get("gemma3.attention.sliding_window")
    window = int(field.contents()) if field is not None else None
    n = cfg.num_hidden_layers
    cfg.layer_types = ["full_attention" if window is None or (i + 1) % 6 == 0 else "sliding_attention"
                       for i in range(n)]
    cfg.sliding_window = window or 1 << 30
    cfg.query_pre_attn_scalar = cfg.head_dim
    cfg.final_logit_softcapping = None
    cfg.attn_logit_softcapping = None
    cfg.hidden_activation = "gelu_pytorch_tanh"
    theta = float(reader.fields["gemma3.rope.freq_base"].contents())
    cfg.rope_theta, cfg.rope_local_base_freq = theta, 10000.0
    if hasattr(cfg, "rope_parameters"):  # transformers 5: per layer type
        cfg.rope_parameters = {"full_attention": {"rope_type": "default", "rope_theta": theta},
                               "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}


def with_window(cfg, window):
    """The LLaMA config as a Mistral one with a sliding window (same
    parameter names, so the LLaMA-mapped tensors load as they are)."""
    d = cfg.to_dict()
    for k in ("model_type", "architectures", "transformers_version"):
        d.pop(k, None)
    mcfg = MistralConfig(**d)
    mcfg.sliding_window = window
    return mcfg


def zeroed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # a parameter the file lacks (a bias) must be 0, not random
    return model


def hf_model(path):
    reader = gguf.GGUFReader(str(path))
    cfg = hf_config(path, reader)
    model = zeroed(AutoModelForCausalLM.from_config(cfg, attn_implementation="eager"))
    # gguf-py has no tensor-name map for model_type mistral: map with the LLaMA model.
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
    window = reader.fields.get("llama.attention.sliding_window")
    if window is not None:
        cfg = with_window(cfg, int(window.contents()))
        model = zeroed(AutoModelForCausalLM.from_config(cfg, attn_implementation="eager"))
    assert len(tensors) == len(reader.tensors), "some GGUF tensors were not mapped"
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert not unexpected, unexpected
    allowed = ("o_proj.bias", "q_proj.bias", "k_proj.bias", "v_proj.bias", "lm_head.weight")
    if cfg.model_type in ("gemma3", "gemma3_text"):
        print(f"gemma3 config: {cfg}", file=sys.stderr)
    assert all(m.endswith(allowed) for m in missing), missing
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.to(torch.float64).eval(), cfg


def emulate_engine(model, weight_type):
    """--emulate: gives the HF model our CPU executor's two deliberate
    approximations, so that a remaining difference is a bug (up to rounding
    that lands on the other side of a boundary):
    K/V rounded to f16 (the KV cache) after RoPE, and the inputs of
    quantized-weight matmuls rounded to 8 bits with an f32 scale per 32
    (legacy weights) or 256 (K-quants) values."""
    import importlib
    for arch in ("llama", "qwen2", "mistral", "qwen3", "gemma3", "phi3"):
        mod = importlib.import_module(f"transformers.models.{arch}.modeling_{arch}")
        if getattr(mod.eager_attention_forward, "emulated", False):
            continue
        orig = mod.eager_attention_forward

        def f16_kv(module, query, key, value, *args, _orig=orig, **kw):
            return _orig(module, query, key.half().to(key.dtype), value.half().to(value.dtype), *args, **kw)

        f16_kv.emulated = True
        mod.eager_attention_forward = f16_kv
    if weight_type in ("F32", "F16"):
        return
    block = 256 if weight_type.endswith("_K") else 32

    def q8(module, args):
        x = args[0]
        xb = x.reshape(*x.shape[:-1], -1, block)
        d = (xb.abs().amax(dim=-1, keepdim=True) / 127).float().double()
        q = torch.where(d > 0, torch.round(xb / torch.where(d > 0, d, 1)), 0)
        return (q * d).reshape(x.shape)

    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_pre_hook(q8)


@torch.no_grad()
def logits(model, tokens):
    return model(input_ids=torch.tensor([tokens])).logits[0].numpy()


def check_window(model, window, n_layers):
    """With a window of W tokens (the last W, itself included) and L layers,
    position p sees token 0 exactly when p <= L*(W-1)."""
    a = PROMPTS[2]
    b = [a[0] + 1] + a[1:]
    changed = np.abs(logits(model, a) - logits(model, b)).max(axis=1) > 0
    reach = n_layers * (window - 1)
    assert changed[: reach + 1].all() and not changed[reach + 1:].any(), changed


def fmt(row):
    return "[" + ",".join(f"{v:.7g}" for v in row) + "]"


def write_fixture(out, name, settings, digest, size, tol, results, emulated):
    ref = {"emulated": emulated,"transformers": transformers.__version__, "torch": torch.__version__,
           "gguf": importlib.metadata.version("gguf"), "numpy": np.__version__,
           "dtype": "float64", "attention": "eager",
           "loader": "AutoConfig/load_gguf_checkpoint(gguf_file) (transformers' GGUF support)"}
    head = {"name": name, "reference": ref, "synth": settings, "gguf_sha256": digest,
            "gguf_bytes": size, "tolerance": tol}
    text = json.dumps(head, indent=1)[:-2] + ',\n "prompts": [\n'
    text += ",\n".join(
        '  {"tokens": ' + json.dumps(toks) + ', "logits": [\n   ' + ",\n   ".join(fmt(r) for r in lg) + "]}"
        for toks, lg in results)
    text += "\n ]\n}\n"
    json.loads(text)  # well-formed
    (out / f"{name}.json").write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rfc", default="target/release/rfc")
    ap.add_argument("--out", default="tests/fixtures/hf")
    ap.add_argument("--keep", help="also keep the model files in this folder")
    ap.add_argument("--emulate", action="store_true",
                    help="give HF our f16 KV cache (and 8-bit activations for quantized weights)")
    ap.add_argument("only", nargs="*", help="case names (default: all)")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, case in CASES.items():
        if a.only and name not in a.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(a.keep or tmp) / f"{name}.gguf"
            path.parent.mkdir(parents=True, exist_ok=True)
            settings = synth(a.rfc, case, path)
            data = path.read_bytes()
            model, cfg = hf_model(path)
            if settings["window"] and settings["arch"] != "gemma3":  # gemma3 has global layers
                check_window(model, settings["window"], settings["layers"])
            if a.emulate:
                emulate_engine(model, settings["type"])
            results = [(p, logits(model, p)) for p in PROMPTS]
        tol = FLOAT_TOL if settings["type"] in ("F32", "F16") else QUANTIZED_TOL
        emulated = None
        if a.emulate:
            emulated = "K/V rounded to f16" + ("" if settings["type"] in ("F32", "F16") else
                                                ", matmul inputs rounded to 8 bits per block")
        write_fixture(out, name, settings, hashlib.sha256(data).hexdigest(), len(data), tol, results,
                      emulated)
        rms = np.sqrt(np.mean(np.concatenate([r for _, r in results]) ** 2))
        print(f"{name}: {type(model).__name__}, {len(data)} bytes, logits rms {rms:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
