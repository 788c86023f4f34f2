"""Writes the quant fixtures: block bytes with the gguf package's dequantized
f32 values, and the package's quantizer output on fixed inputs.

Usage: make-quant-fixtures.py MODEL.gguf OUT_DIR (see make-quant-fixtures.sh).

Every file is little-endian binary: `*.blocks` raw ggml blocks, `*.f32`
f32 values. index.json lists what each file is and how it was made.
"""

import json
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

SEED = 20240607

# Types the package can dequantize, with the byte offsets of the float fields
# inside one block that random bytes must keep finite (width 2 = f16/bf16).
DEQUANT_TYPES = {
    T.F32: [(0, 4)],
    T.F16: [(0, 2)],
    T.BF16: [(0, 2)],
    T.Q4_0: [(0, 2)],
    T.Q4_1: [(0, 2), (2, 2)],
    T.Q5_0: [(0, 2)],
    T.Q5_1: [(0, 2), (2, 2)],
    T.Q8_0: [(0, 2)],
    T.Q2_K: [(80, 2), (82, 2)],
    T.Q3_K: [(108, 2)],
    T.Q4_K: [(0, 2), (2, 2)],
    T.Q5_K: [(0, 2), (2, 2)],
    T.Q6_K: [(208, 2)],
    T.IQ4_NL: [(0, 2)],
    T.IQ4_XS: [(0, 2)],
    T.TQ1_0: [(52, 2)],
    T.TQ2_0: [(64, 2)],
    T.MXFP4: [],  # one E8M0 byte: every value is a finite power of two
    T.IQ2_XXS: [(0, 2)],
    T.IQ2_XS: [(0, 2)],
    T.IQ2_S: [(0, 2)],
    T.IQ3_XXS: [(0, 2)],
    T.IQ3_S: [(0, 2)],
    T.IQ1_S: [(0, 2)],
    T.IQ1_M: [],  # its f16 d is spread over four nibbles: see iq1m_force_finite
}

# Types whose fixtures also include blocks of edge values (edge_blocks).
EDGE_TYPES = [T.IQ4_NL, T.IQ4_XS, T.TQ1_0, T.TQ2_0, T.MXFP4, T.IQ2_XXS, T.IQ2_XS, T.IQ2_S,
              T.IQ3_XXS, T.IQ3_S, T.IQ1_S, T.IQ1_M]

# Types with a quantizer in the package (F16 is numpy's astype).
QUANT_TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16, T.TQ1_0, T.TQ2_0, T.MXFP4]

RANDOM_ELEMENTS = 4096  # per type: 16 K-quant super-blocks, 128 legacy blocks
MODEL_ELEMENTS = 8192  # per model tensor type, taken from a few places


def force_finite(raw: np.ndarray, fields) -> None:
    """Clears the top exponent bit of any Inf/NaN float field, in place."""
    for offset, width in fields:
        if width == 2:
            v = raw[:, offset : offset + 2].copy().view("<u2")
            # f16 exponent 0x7c00; bf16 exponent 0x7f80 contains 0x7c00 too,
            # so clearing bit 14 makes both finite.
            bad = (v & 0x7C00) == 0x7C00
            v[bad] &= np.uint16(0xBFFF)
            raw[:, offset : offset + 2] = v.view(np.uint8)
        else:
            v = raw[:, offset : offset + 4].copy().view("<u4")
            bad = (v & 0x7F800000) == 0x7F800000
            v[bad] &= np.uint32(0xBFFFFFFF)
            raw[:, offset : offset + 4] = v.view(np.uint8)


def iq1m_force_finite(raw: np.ndarray) -> None:
    """IQ1_M keeps d's f16 bits in the top nibbles of the LE u16 words at
    bytes 48..56 (word w -> bits 4w..4w+4); its exponent (bits 10..14) is all
    ones when bits 2..3 of word 2's nibble and 0..2 of word 3's are: clear
    bit 14 of word 3 (byte 55, bit 6) there, as force_finite does."""
    w2 = raw[:, 53] >> 4
    w3 = raw[:, 55] >> 4
    bad = ((w2 & 0xC) == 0xC) & ((w3 & 0x7) == 0x7)
    raw[bad, 55] &= np.uint8(0xBF)


def set_d(raw: np.ndarray, qtype, bits: int) -> None:
    """Writes the f16 bits `bits` into every block's scale field."""
    if qtype == T.IQ1_M:
        for w in range(4):
            nib = (bits >> (4 * w)) & 0xF
            raw[:, 49 + 2 * w] = (raw[:, 49 + 2 * w] & 0x0F) | (nib << 4)
    elif qtype == T.MXFP4:
        raw[:, 0] = bits
    else:
        offset = DEQUANT_TYPES[qtype][0][0]
        raw[:, offset] = bits & 0xFF
        raw[:, offset + 1] = bits >> 8


def edge_blocks(qtype) -> np.ndarray:
    """Blocks of edge values: every byte 0x00, 0xff, 0x55, 0xaa, 0x0f or
    0xf0 (lowest and highest indices, scales and signs, alternating bits),
    each with the scale set to 1, the smallest subnormal, the largest
    subnormal, the smallest normal, the largest finite f16, its negative
    and -0 (MXFP4: E8M0 exponents 0, 1, 2, 127, 128, 254, 255)."""
    block_len, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == T.MXFP4:
        scales = [0, 1, 2, 127, 128, 254, 255]
    else:
        scales = [0x3C00, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x8000]
    parts = []
    for pattern in (0x00, 0xFF, 0x55, 0xAA, 0x0F, 0xF0):
        for bits in scales:
            raw = np.full((1, block_bytes), pattern, dtype=np.uint8)
            set_d(raw, qtype, bits)
            parts.append(raw)
    raw = np.concatenate(parts)
    # Pad to a multiple of 8 blocks so every fixture is whole 256-value rows.
    while (raw.shape[0] * block_len) % 256:
        raw = np.concatenate([raw, raw[:1]])
    return raw


def random_blocks(rng, qtype) -> np.ndarray:
    block_len, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = RANDOM_ELEMENTS // block_len
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    if qtype in (T.F32, T.F16, T.BF16):
        # Each element is its own "block" of one float.
        raw = raw.reshape(n_blocks, block_bytes)
    force_finite(raw, DEQUANT_TYPES[qtype])
    if qtype == T.IQ1_M:
        iq1m_force_finite(raw)
    return raw


def model_blocks(reader, qtype) -> tuple[np.ndarray, list[str]]:
    """Blocks of `qtype` from the model: runs from the start, middle and end
    of up to three tensors, so embeddings, attention and FFN weights all occur."""
    block_len, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    tensors = [t for t in reader.tensors if t.tensor_type == qtype]
    tensors = tensors[:: max(1, len(tensors) // 3)][:3]
    want = MODEL_ELEMENTS // block_len // len(tensors)
    parts, names = [], []
    for t in tensors:
        raw = np.asarray(t.data).view(np.uint8).reshape(-1, block_bytes)
        run = max(1, min(want // 3, len(raw) // 3))
        for start in (0, len(raw) // 2, len(raw) - run):
            parts.append(raw[start : start + run])
        names.append(t.name)
    return np.concatenate(parts), names


def quantize_input_blocks() -> np.ndarray:
    """Finite f32 values, 32 per block, probing the legacy quantizers' edges."""
    rng = np.random.default_rng(SEED + 1)
    blocks = []
    i = np.arange(512, dtype=np.float32)
    blocks.append((0.1 + 2.0 * np.cos(i)).astype(np.float32))  # llama.cpp's test pattern
    for scale in (1e-3, 1.0, 100.0, 3e4):
        blocks.append((rng.standard_normal(128) * scale).astype(np.float32))
    blocks.append(rng.uniform(0.5, 2.0, 64).astype(np.float32))  # all positive
    blocks.append(rng.uniform(-2.0, -0.5, 64).astype(np.float32))  # all negative
    zero = np.zeros(32, np.float32)
    blocks.append(zero)
    one_pos = zero.copy(); one_pos[7] = 0.75
    one_neg = zero.copy(); one_neg[30] = -5.0
    tie_pos_first = rng.uniform(-1, 1, 32).astype(np.float32); tie_pos_first[[5, 20]] = [3.0, -3.0]
    tie_neg_first = rng.uniform(-1, 1, 32).astype(np.float32); tie_neg_first[[5, 20]] = [-3.0, 3.0]
    constant = np.full(32, 1.5, np.float32)
    # Exact halves relative to a scale of 1 (Q8_0: amax 127 -> d = 1).
    halves = np.array([127.0] + [k + 0.5 for k in range(-15, 16)], np.float32)
    # Points exactly on Q4 level boundaries for d = -1 (max -8).
    q4_edges = np.array([-8.0] + [k * 0.5 for k in range(-15, 16)], np.float32)
    blocks += [one_pos, one_neg, tie_pos_first, tie_neg_first, constant, halves, q4_edges]
    for magnitude in (6e5, 1e7, 1e-5, 1e-9, 1e-30):  # f16 scale overflows / subnormal / zero
        blocks.append((rng.uniform(-1, 1, 32) * magnitude).astype(np.float32))
    x = np.concatenate(blocks).astype(np.float32)
    assert x.size % 32 == 0
    return x


def quantize_input_blocks256() -> np.ndarray:
    """The legacy-block inputs cut to whole 256-value blocks, plus blocks
    probing the ternary and MXFP4 rounding: exact halves of the maximum
    (ties round away from zero), an all-zero block, E2M1 midpoints, and
    maxima just below and at powers of two."""
    x = quantize_input_blocks()
    x = x[: x.size // 256 * 256]
    rng = np.random.default_rng(SEED + 3)
    halves = rng.choice(np.array([-2.0, -1.0, 0.0, 1.0, 2.0], np.float32), 256)
    halves[0] = 2.0
    mid = np.tile(np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -6.0], np.float32), 32)
    below = rng.uniform(-1, 1, 256).astype(np.float32)
    below[3] = np.nextafter(np.float32(8.0), np.float32(0.0))
    at = rng.uniform(-1, 1, 256).astype(np.float32)
    at[9] = -16.0
    blocks = [x, halves, np.zeros(256, np.float32), mid, below, at]
    out = np.concatenate(blocks).astype(np.float32)
    assert out.size % 256 == 0
    return out


def quantize_input_floats() -> np.ndarray:
    """Values probing F16/BF16 rounding: ties, overflow, subnormals, specials."""
    rng = np.random.default_rng(SEED + 2)
    specials = [
        0.0, -0.0, np.inf, -np.inf, np.float32(np.nan),
        1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,  # f16 ties to even
        1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8,  # bf16 ties to even
        65504.0, 65519.0, 65520.0, 70000.0, 3.4e38, -3.4e38,  # f16 max / overflow
        6.1e-5, 6e-8, 5.9604645e-8, 2.98e-8, 1e-10, 1e-40, -1e-45,  # subnormals
    ]
    x = np.array(specials, np.float32)
    randoms = rng.standard_normal(1024 - x.size).astype(np.float32) * np.float32(10.0) ** rng.integers(-8, 8, 1024 - x.size).astype(np.float32)
    return np.concatenate([x, randoms.astype(np.float32)])


def write(out: Path, name: str, data: np.ndarray) -> str:
    (out / name).write_bytes(np.ascontiguousarray(data).tobytes())
    return name


def main() -> None:
    model_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    rng = np.random.default_rng(SEED)
    reader = gguf.GGUFReader(model_path)
    model_types = {t.tensor_type for t in reader.tensors}
    index = {
        "generator": {
            "script": "scripts/make-quant-fixtures.py",
            "gguf": "0.19.0",
            "numpy": np.__version__,
            "model": model_path.name,
        },
        "dequantize": [],
        "quantize": [],
    }

    for qtype in DEQUANT_TYPES:
        sources = [("random", random_blocks(rng, qtype), [])]
        if qtype in EDGE_TYPES:
            sources.append(("edge", edge_blocks(qtype), []))
        if qtype in model_types:
            raw, names = model_blocks(reader, qtype)
            sources.append(("model", raw, names))
        for source, raw, names in sources:
            with np.errstate(over="ignore"):  # MXFP4 edge scales overflow to ±Inf
                expected = dequantize(raw.reshape(-1), qtype).astype("<f4")
            stem = f"{qtype.name.lower()}_{source}"
            index["dequantize"].append({
                "type": qtype.name,
                "source": source,
                "tensors": names,
                "elements": int(expected.size),
                "blocks_file": write(out, stem + ".blocks", raw),
                "expected_file": write(out, stem + ".f32", expected),
            })

    inputs = {
        "blocks": quantize_input_blocks(),
        "floats": quantize_input_floats(),
        "blocks256": quantize_input_blocks256(),
    }
    for name, x in inputs.items():
        write(out, f"quantize_input_{name}.f32", x.astype("<f4"))
    for qtype in QUANT_TYPES:
        name = {T.F16: "floats", T.BF16: "floats", T.TQ1_0: "blocks256", T.TQ2_0: "blocks256"}.get(qtype, "blocks")
        x = inputs[name]
        with np.errstate(all="ignore"):
            got = quantize(x, qtype)
        index["quantize"].append({
            "type": qtype.name,
            "input_file": f"quantize_input_{name}.f32",
            "elements": int(x.size),
            "expected_file": write(out, f"{qtype.name.lower()}_quantized.blocks", got.view(np.uint8)),
        })

    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
