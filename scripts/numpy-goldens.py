#!/usr/bin/env python3
"""A float64 numpy reference for tiny synthetic Qwen3, Gemma 3 and Phi-3 models, for where HF
transformers (torch) cannot be installed: tests/fixtures/hf/<case>.json in
the format scripts/make-hf-goldens.py writes (tests/hf_goldens.rs reads
both the same way). scripts/make-hf-goldens.sh's HF fixtures replace these
files when it runs.

Independent of our Rust: the model is read with the gguf package's reader
and dequantized by its numpy code, and the forward pass below follows HF
transformers' Qwen3 (modeling_qwen3.py): RMSNorm x/sqrt(mean(x²)+eps)*w;
q, k, v projections without bias; per-head RMSNorm of q and k over the
head dim; RoPE on the two halves of each head (rotate_half) with
inv_freq = base^(-2i/d); causal softmax attention scaled by 1/sqrt(head_dim)
with grouped KV heads; o projection; residual; RMSNorm; down(silu(gate)·up);
residual; final RMSNorm; the output projection (token_embd when tied).

Gemma 3 follows HF's modeling_gemma3.py with the GGUF conventions
llama.cpp's converter writes (the "1 +" of Gemma's RMSNorm already added
to every norm weight): embeddings times sqrt(hidden); RMSNorm before and
after attention and before and after the FFN; per-head q/k RMSNorm; RoPE
on halves; layers l with (l + 1) % 6 == 0 global (RoPE base from the file),
the others local (base 10000, a window of the last W positions, itself
included); scale 1/sqrt(head_dim); down(gelu_tanh(gate)·up).

Phi-3 follows HF's modeling_phi3.py: the LLaMA block with qkv_proj split
into q, k, v rows and gate_up_proj split into gate (first half) and up;
RoPE on halves; no sliding window (as llama.cpp runs Phi-3).

Qwen3-MoE follows HF's modeling_qwen3_moe.py (norm_topk_prob, as llama.cpp
applies to every qwen3moe file) and Mixtral HF's modeling_mixtral.py on
the LLaMA block (RoPE on adjacent pairs, GGUF's permuted q/k rows): the
router's logits h·Wrᵀ, softmax over all experts, the top k (float64
argsort, ties to the lower id), renormalized to sum 1; each token's
output Σ_k w_k · down_k(silu(gate_k·h) · up_k·h), computed token by token
with nothing grouped. The fixture records, per prompt, the smallest gap
between the k-th and (k+1)-th router logits over every token and layer: a
gap near 0 would let rounding pick another expert.

Gemma 2 follows HF's modeling_gemma2.py: Gemma 3's block without the q/k
norms and with one RoPE base, layers l with (l + 1) % 2 == 0 global, each
q·k/sqrt(head_dim) soft-capped to cap·tanh(s/cap) before the mask, the
final logits soft-capped likewise, the output projection token_embd.
LongRoPE (Phi-3 files with rope_factors_long/short) follows HF's
_compute_longrope_parameters: inv_freq divided by one set's factors, cos
and sin times sqrt(1 + ln(context_length/orig) / ln(orig)); the set is
chosen as llama.cpp does, by the run's context (the fixture's `context`),
not HF's by sequence length.

    .venv-np/bin/python scripts/numpy-goldens.py --rfc target/release/rfc CASE...
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

QUANTIZED_TOL, FLOAT_TOL = 2e-2, 1e-4

# The qwen3 cases of make-hf-goldens.py (same settings and seeds).
CASES = {
    "qwen3_gqa_f32": ("qwen3", "F32", 4, 2, False, False, None, 108),
    "qwen3_mha_tied_f32": ("qwen3", "F32", 4, 4, True, False, None, 109),
    "qwen3_gqa_f16": ("qwen3", "F16", 4, 2, False, False, None, 203),
    "qwen3_gqa_q8_0": ("qwen3", "Q8_0", 4, 2, False, False, None, 303),
    "qwen3_gqa_q4_k": ("qwen3", "Q4_K", 4, 2, False, False, None, 504),
    "qwen3_gqa_q6_k": ("qwen3", "Q6_K", 4, 2, True, False, None, 604),
    # Gemma 3: 6 layers (layer 5 global), window 4, one KV head, tied.
    "gemma3_mqa_tied_window4_f32": ("gemma3", "F32", 4, 1, True, False, 4, 110),
    "gemma3_gqa_untied_f32": ("gemma3", "F32", 4, 2, False, False, None, 111),
    "gemma3_mqa_tied_window4_q8_0": ("gemma3", "Q8_0", 4, 1, True, False, 4, 304),
    "gemma3_mqa_tied_window4_q4_k": ("gemma3", "Q4_K", 4, 1, True, False, 4, 505),
    # Phi-3: fused QKV and gate/up projections.
    "phi3_gqa_f32": ("phi3", "F32", 4, 2, False, False, None, 112),
    "phi3_mha_tied_f16": ("phi3", "F16", 4, 4, True, False, None, 205),
    "phi3_gqa_q8_0": ("phi3", "Q8_0", 4, 2, False, False, None, 306),
    "phi3_gqa_q4_k": ("phi3", "Q4_K", 4, 2, False, False, None, 507),
    # The IQ, TQ and MXFP4 weight types (issue #18), on Qwen3's block. The
    # lattice types are random valid blocks (no quantizer); the others are
    # quantized from normal draws by rfc synth.
    "qwen3_gqa_iq4_nl": ("qwen3", "IQ4_NL", 4, 2, False, False, None, 1801),
    "qwen3_gqa_iq4_xs": ("qwen3", "IQ4_XS", 4, 2, False, False, None, 1802),
    "qwen3_gqa_tq1_0": ("qwen3", "TQ1_0", 4, 2, False, False, None, 1803),
    "qwen3_gqa_tq2_0": ("qwen3", "TQ2_0", 4, 2, False, False, None, 1804),
    "qwen3_gqa_mxfp4": ("qwen3", "MXFP4", 4, 2, False, False, None, 1805),
    "qwen3_gqa_iq2_xxs": ("qwen3", "IQ2_XXS", 4, 2, False, False, None, 1806),
    "qwen3_gqa_iq2_xs": ("qwen3", "IQ2_XS", 4, 2, False, False, None, 1807),
    "qwen3_gqa_iq2_s": ("qwen3", "IQ2_S", 4, 2, False, False, None, 1808),
    "qwen3_gqa_iq3_xxs": ("qwen3", "IQ3_XXS", 4, 2, False, False, None, 1809),
    "qwen3_gqa_iq3_s": ("qwen3", "IQ3_S", 4, 2, False, False, None, 1810),
    "qwen3_gqa_iq1_s": ("qwen3", "IQ1_S", 4, 2, False, False, None, 1811),
    "qwen3_gqa_iq1_m": ("qwen3", "IQ1_M", 4, 2, False, False, None, 1812),
    # A mixed file as llama.cpp's quantizer writes one: IQ4_XS matrices,
    # a Q8_0 embedding and a Q6_K output projection.
    "qwen3_gqa_iq4_xs_mixed": ("qwen3", "IQ4_XS", 4, 2, False, False, None, 1813,
                               {"embd_type": "Q8_0", "output_type": "Q6_K"}),
    # Mixture of experts: (experts, used) after the seed. 8 experts of which
    # 2 (Mixtral's), 4 of 2, 4 of 1 (one expert per token: prompts leave
    # experts without a token), 4 of 3. A quantized case needs a smallest
    # router gap (printed, and kept in the fixture) well above how far 8-bit
    # activations move the router's input, or one token takes another
    # expert and its logits differ by 0.1-0.2: seeds 308 and 605 (gaps 1e-3
    # and 8e-4) did so exactly at their smallest-gap tokens, so the mixtral
    # Q8_0/Q6_K seeds are the first after them with a gap of at least 0.01.
    "qwen3moe_e4k2_f32": ("qwen3moe", "F32", 4, 2, False, False, None, 113, 4, 2),
    "qwen3moe_e8k2_tied_f32": ("qwen3moe", "F32", 4, 4, True, False, None, 114, 8, 2),
    "qwen3moe_e4k1_f16": ("qwen3moe", "F16", 4, 2, False, False, None, 206, 4, 1),
    "qwen3moe_e4k2_q8_0": ("qwen3moe", "Q8_0", 4, 2, False, False, None, 307, 4, 2),
    "qwen3moe_e4k2_q4_k": ("qwen3moe", "Q4_K", 4, 2, False, False, None, 508, 4, 2),
    "mixtral_e8k2_f32": ("mixtral", "F32", 4, 2, False, False, None, 115, 8, 2),
    "mixtral_e4k3_f32": ("mixtral", "F32", 4, 1, True, False, None, 116, 4, 3),
    "mixtral_e8k2_q8_0": ("mixtral", "Q8_0", 4, 2, False, False, None, 312, 8, 2),
    "mixtral_e8k2_q6_k": ("mixtral", "Q6_K", 4, 2, False, False, None, 608, 8, 2),
}
LAYERS = {"gemma3": 6}
# YaRN RoPE scaling (factor, original context): with head_dim 16, base 1e4
# and 64 original positions the correction range is pairs 0..3, so pairs
# are extrapolated, blended and interpolated.
YARN = {
    "qwen3_gqa_yarn4_f32": (4.0, 64),
    "qwen3_gqa_yarn4_q8_0": (4.0, 64),
    "mixtral_e4k2_yarn8_f32": (8.0, 64),
}
CASES.update({
    "qwen3_gqa_yarn4_f32": ("qwen3", "F32", 4, 2, False, False, None, 118),
    "qwen3_gqa_yarn4_q8_0": ("qwen3", "Q8_0", 4, 2, False, False, None, 313),
    "mixtral_e4k2_yarn8_f32": ("mixtral", "F32", 4, 2, False, False, None, 119, 4, 2),
})

# Gemma 2: 4 layers (layers 1 and 3 global), window 4, always tied; tiny
# soft-caps (attention 2, final 5) in the file so that tanh bends.
CASES.update({
    "gemma2_gqa_window4_f32": ("gemma2", "F32", 4, 2, True, False, 4, 120),
    "gemma2_mqa_window4_q8_0": ("gemma2", "Q8_0", 4, 1, True, False, 4, 314),
    "gemma2_gqa_window4_q4_k": ("gemma2", "Q4_K", 4, 2, True, False, 4, 509),
})
LAYERS["gemma2"] = 4
# LongRoPE (Phi-3): (original context, the context rfc and the reference
# run with). The file's context is 512, so attn_factor = sqrt(1 + ln 2 /
# ln 256); a 512 context takes the long factors, 256 the short ones (as
# llama.cpp: long iff its per-sequence context > the original).
LONGROPE = {
    "phi3_gqa_longrope_long_f32": (256, 512),
    "phi3_gqa_longrope_short_f32": (256, 256),
    "phi3_gqa_longrope_long_q8_0": (256, 512),
}
CASES.update({
    "phi3_gqa_longrope_long_f32": ("phi3", "F32", 4, 2, False, False, None, 121),
    "phi3_gqa_longrope_short_f32": ("phi3", "F32", 4, 2, False, False, None, 121),
    "phi3_gqa_longrope_long_q8_0": ("phi3", "Q8_0", 4, 2, False, False, None, 315),
})

PROMPTS = [
    [1],
    [1, 72, 101, 108, 108, 111],
    [5, 300, 17, 42, 42, 260, 99, 3, 150, 151, 7, 8, 255, 256, 64, 31, 200, 12, 318, 77],
]


def synth(rfc, case, out, name=None):
    arch, ty, heads, kv_heads, tied, bias, window, seed = case[:8]
    # After the seed: (experts, used) for MoE cases, a dict of synth
    # settings (embd_type, output_type) for mixed files.
    mixed = next((x for x in case[8:] if isinstance(x, dict)), {})
    experts = [x for x in case[8:] if not isinstance(x, dict)]
    cmd = [rfc, "synth", "tiny", "--arch", arch, "--type", ty, "--heads", str(heads),
           "--kv-heads", str(kv_heads), "--seed", str(seed)]
    for key, value in mixed.items():
        cmd += ["--" + key.replace("_", "-"), value]
    cmd += ["--experts", str(experts[0]), "--experts-used", str(experts[1])] if experts else []
    yarn = YARN.get(name)
    cmd += ["--yarn", f"{yarn[0]:g},{yarn[1]}"] if yarn else []
    longrope = LONGROPE.get(name)
    cmd += ["--longrope", str(longrope[0])] if longrope else []
    cmd += ["--tied"] if tied else []
    cmd += ["--window", str(window)] if window else []
    cmd += ["--layers", str(LAYERS[arch])] if arch in LAYERS else []
    summary = json.loads(subprocess.run(cmd + [str(out)], check=True, capture_output=True,
                                        text=True).stdout)
    settings = {"arch": arch, "type": ty, "heads": heads, "kv_heads": kv_heads, "d": summary["hidden"],
                "ffn": summary["ffn"], "layers": summary["layers"], "vocab": summary["vocab"],
                "tied": tied, "bias": bias, "window": window, "seed": seed, **mixed}
    if experts:
        settings["experts"], settings["experts_used"] = experts
    if yarn:
        settings["yarn"] = list(yarn)
    if longrope:
        settings["longrope"] = longrope[0]
    return settings


class Model:
    def __init__(self, path):
        r = gguf.GGUFReader(str(path))
        arch = r.fields["general.architecture"].contents()
        f = lambda k: r.fields[f"{arch}.{k}"].contents()
        self.layers, self.heads, self.kv_heads = f("block_count"), f("attention.head_count"), f("attention.head_count_kv")
        key_length = r.fields.get(f"{arch}.attention.key_length")
        self.head_dim = int(key_length.contents()) if key_length is not None else f("embedding_length") // self.heads
        self.eps, self.base = f("attention.layer_norm_rms_epsilon"), f("rope.freq_base")
        self.arch, self.d = arch, f("embedding_length")
        window = r.fields.get(f"{arch}.attention.sliding_window")
        self.window = int(window.contents()) if window is not None else None
        count = r.fields.get(f"{arch}.expert_count")
        self.experts = int(count.contents()) if count is not None else 0
        self.used = int(f("expert_used_count")) if self.experts else 0
        self.min_gap = np.inf
        kind = r.fields.get(f"{arch}.rope.scaling.type")
        self.yarn = None
        if kind is not None and kind.contents() == "yarn":
            self.yarn = (float(f("rope.scaling.factor")), int(f("rope.scaling.original_context_length")))
        self.longrope = None
        if "rope_factors_long.weight" in [t.name for t in r.tensors]:
            # HF's _compute_longrope_parameters: attention factor from the
            # context stretch, computed here, not read from the file.
            orig, ctx = int(f("rope.scaling.original_context_length")), int(f("context_length"))
            self.longrope = (orig, np.sqrt(1 + np.log(ctx / orig) / np.log(orig)))
        self.context = None  # the run's context, set by the case
        caps = [r.fields.get(f"{arch}.{k}_logit_softcapping") for k in ("attn", "final")]
        self.caps = tuple(float(c.contents()) if c is not None else None for c in caps)
        self.t = {}
        for t in r.tensors:
            # GGUF dims are ne0 first; numpy rows first.
            shape = tuple(int(d) for d in reversed(t.shape))
            self.t[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)

    def w(self, name):
        return self.t[name]

    def norm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def angles(self, pos, base=None):
        """[T, hd/2] pair angles and the cos/sin magnitude. YaRN after HF's
        _compute_yarn_parameters (beta_fast 32, beta_slow 1, attention
        factor 0.1 ln(factor) + 1): pair i's frequency blends the
        extrapolated (trained) and interpolated (÷ factor) ones by a ramp
        over the correction range [low, high]."""
        hd, base = self.head_dim, base or self.base
        inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        mag = 1.0
        if self.yarn:
            factor, orig = self.yarn
            dim = lambda rot: hd * np.log(orig / (rot * 2 * np.pi)) / (2 * np.log(base))
            low, high = max(np.floor(dim(32.0)), 0), min(np.ceil(dim(1.0)), hd - 1)
            ramp = np.clip((np.arange(hd // 2) - low) / max(high - low, 0.001), 0, 1)
            extrapolated = 1 - ramp
            inv = inv / factor * (1 - extrapolated) + inv * extrapolated
            mag = 0.1 * np.log(factor) + 1
        if self.longrope:
            orig, mag = self.longrope
            inv = inv / self.w("rope_factors_long.weight" if self.context > orig
                               else "rope_factors_short.weight")
        return np.outer(pos, inv), mag

    def rope(self, x, pos, base=None):
        # x: [T, heads, hd]; the two halves of each head rotate together.
        hd = self.head_dim
        ang, mag = self.angles(pos, base)
        cos, sin = mag * np.cos(np.concatenate([ang, ang], -1)), mag * np.sin(np.concatenate([ang, ang], -1))
        half = np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], -1)
        return x * cos[:, None, :] + half * sin[:, None, :]

    def forward(self, tokens):
        if self.arch == "llama" and self.experts:
            return self.mixtral(tokens)
        return {"gemma3": self.gemma3, "gemma2": self.gemma2, "phi3": self.phi3}.get(self.arch, self.qwen3)(tokens)

    def moe(self, h, l):
        """The routed experts of layer l, one token at a time."""
        p = lambda s: self.w(f"blk.{l}.{s}")
        logits = h @ p("ffn_gate_inp.weight").T
        gate, up, down = p("ffn_gate_exps.weight"), p("ffn_up_exps.weight"), p("ffn_down_exps.weight")
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            probs = np.exp(logits[t] - logits[t].max())
            probs /= probs.sum()
            order = np.argsort(-logits[t], kind="stable")
            chosen = order[: self.used]
            if self.used < self.experts:
                self.min_gap = min(self.min_gap, logits[t, order[self.used - 1]] - logits[t, order[self.used]])
            w = probs[chosen] / probs[chosen].sum()
            for e, we in zip(chosen, w):
                g, u = gate[e] @ h[t], up[e] @ h[t]
                out[t] += we * (down[e] @ (g / (1 + np.exp(-g)) * u))
        return out

    def rope_pairs(self, x, pos):
        # LLaMA as GGUF stores it: adjacent pairs (x[2i], x[2i+1]) rotate.
        ang, mag = self.angles(pos)
        ang = ang[:, None, :]
        cos, sin = mag * np.cos(ang), mag * np.sin(ang)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    def mixtral(self, tokens):
        n, hd, H, KV = len(tokens), self.head_dim, self.heads, self.kv_heads
        pos = np.arange(n, dtype=np.float64)
        x = self.w("token_embd.weight")[tokens]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(self.layers):
            p = lambda s: self.w(f"blk.{l}.{s}")
            h = self.norm(x, p("attn_norm.weight"))
            q = (h @ p("attn_q.weight").T).reshape(n, H, hd)
            k = (h @ p("attn_k.weight").T).reshape(n, KV, hd)
            v = (h @ p("attn_v.weight").T).reshape(n, KV, hd)
            a = self.attend(self.rope_pairs(q, pos), self.rope_pairs(k, pos), v, mask)
            x = x + a @ p("attn_output.weight").T
            x = x + self.moe(self.norm(x, p("ffn_norm.weight")), l)
        x = self.norm(x, self.w("output_norm.weight"))
        out = self.t.get("output.weight", self.w("token_embd.weight"))
        return x @ out.T

    def phi3(self, tokens):
        n, hd, H, KV = len(tokens), self.head_dim, self.heads, self.kv_heads
        pos = np.arange(n, dtype=np.float64)
        x = self.w("token_embd.weight")[tokens]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(self.layers):
            p = lambda s: self.w(f"blk.{l}.{s}")
            h = self.norm(x, p("attn_norm.weight"))
            qkv = h @ p("attn_qkv.weight").T
            q = qkv[:, : H * hd].reshape(n, H, hd)
            k = qkv[:, H * hd: (H + KV) * hd].reshape(n, KV, hd)
            v = qkv[:, (H + KV) * hd:].reshape(n, KV, hd)
            a = self.attend(self.rope(q, pos), self.rope(k, pos), v, mask)
            x = x + a @ p("attn_output.weight").T
            h = self.norm(x, p("ffn_norm.weight"))
            gu = h @ p("ffn_up.weight").T
            g, u = np.split(gu, 2, axis=-1)
            x = x + (g / (1 + np.exp(-g)) * u) @ p("ffn_down.weight").T
        x = self.norm(x, self.w("output_norm.weight"))
        out = self.t.get("output.weight", self.w("token_embd.weight"))
        return x @ out.T

    def attend(self, q, k, v, mask):
        n, H, hd = q.shape
        KV = k.shape[1]
        out = np.empty((n, H, hd))
        for head in range(H):
            kh = head // (H // KV)
            s = q[:, head] @ k[:, kh].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, kh]
        return out.reshape(n, H * hd)

    def gemma3(self, tokens):
        n, hd, H, KV = len(tokens), self.head_dim, self.heads, self.kv_heads
        pos = np.arange(n, dtype=np.float64)
        x = self.w("token_embd.weight")[tokens] * np.sqrt(self.d)
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        for l in range(self.layers):
            p = lambda s: self.w(f"blk.{l}.{s}")
            local = (l + 1) % 6 != 0 and self.window is not None
            hidden = (j > i) | ((i - j >= self.window) if local else False)
            mask = np.where(hidden, -np.inf, 0.0)
            base = 10000.0 if local else self.base
            h = self.norm(x, p("attn_norm.weight"))
            q = self.norm((h @ p("attn_q.weight").T).reshape(n, H, hd), p("attn_q_norm.weight"))
            k = self.norm((h @ p("attn_k.weight").T).reshape(n, KV, hd), p("attn_k_norm.weight"))
            v = (h @ p("attn_v.weight").T).reshape(n, KV, hd)
            a = self.attend(self.rope(q, pos, base), self.rope(k, pos, base), v, mask)
            x = x + self.norm(a @ p("attn_output.weight").T, p("post_attention_norm.weight"))
            h = self.norm(x, p("ffn_norm.weight"))
            g, u = h @ p("ffn_gate.weight").T, h @ p("ffn_up.weight").T
            gelu = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
            x = x + self.norm((gelu * u) @ p("ffn_down.weight").T, p("post_ffw_norm.weight"))
        x = self.norm(x, self.w("output_norm.weight"))
        out = self.t.get("output.weight", self.w("token_embd.weight"))
        return x @ out.T

    def gemma2(self, tokens):
        """HF's modeling_gemma2.py: Gemma 3's block without q/k norms, one
        RoPE base, layers l with (l + 1) % 2 == 0 global, scores
        q·k/sqrt(query_pre_attn_scalar = head_dim) soft-capped before the
        mask, final logits soft-capped, output = token_embd."""
        n, hd, H, KV = len(tokens), self.head_dim, self.heads, self.kv_heads
        cap_a, cap_f = self.caps
        pos = np.arange(n, dtype=np.float64)
        x = self.w("token_embd.weight")[tokens] * np.sqrt(self.d)
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        for l in range(self.layers):
            p = lambda s: self.w(f"blk.{l}.{s}")
            local = (l + 1) % 2 != 0
            hidden = (j > i) | ((i - j >= self.window) if local else False)
            mask = np.where(hidden, -np.inf, 0.0)
            h = self.norm(x, p("attn_norm.weight"))
            q = self.rope((h @ p("attn_q.weight").T).reshape(n, H, hd), pos)
            k = self.rope((h @ p("attn_k.weight").T).reshape(n, KV, hd), pos)
            v = (h @ p("attn_v.weight").T).reshape(n, KV, hd)
            out = np.empty((n, H, hd))
            for head in range(H):
                kh = head // (H // KV)
                s = q[:, head] @ k[:, kh].T / np.sqrt(hd)
                s = cap_a * np.tanh(s / cap_a) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, kh]
            x = x + self.norm(out.reshape(n, H * hd) @ p("attn_output.weight").T, p("post_attention_norm.weight"))
            h = self.norm(x, p("ffn_norm.weight"))
            g, u = h @ p("ffn_gate.weight").T, h @ p("ffn_up.weight").T
            gelu = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
            x = x + self.norm((gelu * u) @ p("ffn_down.weight").T, p("post_ffw_norm.weight"))
        x = self.norm(x, self.w("output_norm.weight"))
        logits = x @ self.w("token_embd.weight").T
        return cap_f * np.tanh(logits / cap_f)

    def qwen3(self, tokens):
        n, hd, H, KV = len(tokens), self.head_dim, self.heads, self.kv_heads
        pos = np.arange(n, dtype=np.float64)
        x = self.w("token_embd.weight")[tokens]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(self.layers):
            p = lambda s: self.w(f"blk.{l}.{s}")
            h = self.norm(x, p("attn_norm.weight"))
            q = (h @ p("attn_q.weight").T).reshape(n, H, hd)
            k = (h @ p("attn_k.weight").T).reshape(n, KV, hd)
            v = (h @ p("attn_v.weight").T).reshape(n, KV, hd)
            q = self.rope(self.norm(q, p("attn_q_norm.weight")), pos)
            k = self.rope(self.norm(k, p("attn_k_norm.weight")), pos)
            out = np.empty((n, H, hd))
            for head in range(H):
                kh = head // (H // KV)
                s = q[:, head] @ k[:, kh].T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, kh]
            x = x + out.reshape(n, H * hd) @ p("attn_output.weight").T
            h = self.norm(x, p("ffn_norm.weight"))
            if self.experts:
                x = x + self.moe(h, l)
                continue
            g, u = h @ p("ffn_gate.weight").T, h @ p("ffn_up.weight").T
            x = x + (g / (1 + np.exp(-g)) * u) @ p("ffn_down.weight").T
        x = self.norm(x, self.w("output_norm.weight"))
        out = self.t.get("output.weight", self.w("token_embd.weight"))
        return x @ out.T


def fmt(row):
    return "[" + ",".join(f"{v:.7g}" for v in row) + "]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rfc", default="target/release/rfc")
    ap.add_argument("--out", default="tests/fixtures/hf")
    ap.add_argument("only", nargs="*", help="case names (default: all)")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        if a.only and name not in a.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / f"{name}.gguf"
            settings = synth(a.rfc, case, path, name)
            data = path.read_bytes()
            model = Model(path)
            model.context = LONGROPE.get(name, (0, 64))[1]
            results = [(p, model.forward(p)) for p in PROMPTS]
        tol = FLOAT_TOL if settings["type"] in ("F32", "F16") else QUANTIZED_TOL
        family = {"qwen3moe": "Qwen3-MoE", "mixtral": "Mixtral", "gemma3": "Gemma 3", "gemma2": "Gemma 2",
                  "phi3": "Phi-3"}.get(settings["arch"], "Qwen3")
        ref = {"emulated": None, "numpy": np.__version__, "gguf": importlib.metadata.version("gguf"),
               "dtype": "float64", "attention": "eager",
               "loader": f"numpy float64 forward of HF's {family} (scripts/numpy-goldens.py), "
                         "weights dequantized by the gguf package"}
        if model.experts:
            ref["min_router_gap"] = float(model.min_gap) if np.isfinite(model.min_gap) else None
        if name in LONGROPE:
            ref["factors"] = "long" if model.context > LONGROPE[name][0] else "short"
        head = {"name": name, "reference": ref, "synth": settings,
                **({"context": LONGROPE[name][1]} if name in LONGROPE else {}),
                "gguf_sha256": hashlib.sha256(data).hexdigest(), "gguf_bytes": len(data), "tolerance": tol}
        text = json.dumps(head, indent=1)[:-2] + ',\n "prompts": [\n'
        text += ",\n".join('  {"tokens": ' + json.dumps(t) + ', "logits": [\n   '
                           + ",\n   ".join(fmt(r) for r in lg) + "]}" for t, lg in results)
        text += "\n ]\n}\n"
        json.loads(text)
        (out / f"{name}.json").write_text(text)
        rms = np.sqrt(np.mean(np.concatenate([r for _, r in results]) ** 2))
        gap = f", smallest top-k router gap {model.min_gap:.3g}" if model.experts else ""
        print(f"{name}: {len(data)} bytes, logits rms {rms:.3f}{gap}", file=sys.stderr)


if __name__ == "__main__":
    main()
