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
}

# Types with a quantizer in the package (F16 is numpy's astype).
QUANT_TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16]

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


def random_blocks(rng, qtype) -> np.ndarray:
    block_len, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = RANDOM_ELEMENTS // block_len
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    if qtype in (T.F32, T.F16, T.BF16):
        # Each element is its own "block" of one float.
        raw = raw.reshape(n_blocks, block_bytes)
    force_finite(raw, DEQUANT_TYPES[qtype])
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
        if qtype in model_types:
            raw, names = model_blocks(reader, qtype)
            sources.append(("model", raw, names))
        for source, raw, names in sources:
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
    }
    for name, x in inputs.items():
        write(out, f"quantize_input_{name}.f32", x.astype("<f4"))
    for qtype in QUANT_TYPES:
        name = "floats" if qtype in (T.F16, T.BF16) else "blocks"
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
