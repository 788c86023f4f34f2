//! Hostile and broken GGUF input: every class of damage gives its own typed
//! error that names what is wrong and where, never a panic, an unbounded
//! allocation or a stack overflow.

use rocmforge::gguf::{GgufError, GgufFile, GgufWriter, Value, ValueType};
use rocmforge::quant::GgmlType;

/// Hand-assembled GGUF bytes, for damage the writer refuses to produce.
struct Raw(Vec<u8>);

impl Raw {
    /// Magic, version and the two counts.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        Raw(b"GGUF".to_vec()).u32(version).u64(n_tensors).u64(n_kv)
    }

    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    fn str(self, s: &[u8]) -> Self {
        self.u64(s.len() as u64).bytes(s)
    }

    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.str(key.as_bytes()).u32(ValueType::U32 as u32).u32(v)
    }

    fn tensor(self, name: &[u8], dims: &[u64], type_id: u32, offset: u64) -> Self {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(type_id).u64(offset)
    }

    /// Zero padding up to the next multiple of `alignment`, then `data_len`
    /// bytes of tensor data.
    fn data(mut self, alignment: usize, data_len: usize) -> Self {
        let padded = self.0.len().div_ceil(alignment) * alignment;
        self.0.resize(padded + data_len, 0);
        self
    }

    fn parse(self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0)
    }
}

fn parse_err(raw: Raw) -> GgufError {
    match raw.parse() {
        Ok(f) => panic!("hostile input was accepted: {f:?}"),
        Err(e) => e,
    }
}

/// A small valid file with every kind of header item and tensor data that
/// ends exactly at the end of the file (no trailing padding).
fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("a.u32", 7u32).unwrap();
    w.add_metadata("a.f64", 0.5f64).unwrap();
    w.add_metadata("a.bool", true).unwrap();
    w.add_metadata("a.strings", vec!["x", "yz"]).unwrap();
    let nested = Value::Array(ValueType::Array, vec![vec![1i16, 2].into()]);
    w.add_metadata("a.nested", nested).unwrap();
    w.add_tensor("t.q8", &[32], GgmlType::Q8_0, vec![1; 34])
        .unwrap();
    w.add_tensor("t.f32", &[8], GgmlType::F32, vec![2; 32])
        .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn truncation_at_every_byte_offset_is_a_truncation_error() {
    let bytes = small_valid_file();
    assert!(GgufFile::from_bytes(bytes.clone()).is_ok());
    for len in 0..bytes.len() {
        match GgufFile::from_bytes(bytes[..len].to_vec()) {
            Err(GgufError::Truncated { file_len, .. }) => assert_eq!(file_len, len as u64),
            Err(GgufError::CountTooLarge { .. } | GgufError::TensorOutOfBounds { .. }) => {}
            other => panic!("truncated to {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn empty_input_is_truncated_at_the_magic() {
    let e = parse_err(Raw(vec![]));
    assert!(
        matches!(&e, GgufError::Truncated { what, offset: 0, .. } if what == "magic"),
        "{e:?}"
    );
}

#[test]
fn bad_magic_is_refused() {
    let e = parse_err(Raw(b"GGML\x03\0\0\0".to_vec()));
    assert!(matches!(e, GgufError::BadMagic { ref found } if found == b"GGML"));
}

#[test]
fn unsupported_versions_are_refused_with_a_hint() {
    for (version, hint) in [(1, "obsolete"), (4, ""), (3u32.swap_bytes(), "big-endian")] {
        let e = parse_err(Raw::header(version, 0, 0));
        assert!(
            matches!(e, GgufError::UnsupportedVersion { version: v, .. } if v == version),
            "{e:?}"
        );
        assert!(e.to_string().contains(hint), "{e}");
    }
}

#[test]
fn tensor_count_larger_than_the_file_is_refused() {
    let e = parse_err(Raw::header(3, u64::MAX / 2, 0));
    assert!(
        matches!(
            e,
            GgufError::CountTooLarge {
                what: "tensor",
                offset: 8,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn key_count_larger_than_the_file_is_refused() {
    let e = parse_err(Raw::header(3, 0, 1_000_000).kv_u32("k", 1));
    assert!(
        matches!(
            e,
            GgufError::CountTooLarge {
                what: "metadata key/value",
                offset: 16,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn array_length_larger_than_the_file_is_refused() {
    let raw = Raw::header(3, 0, 1)
        .str(b"arr")
        .u32(ValueType::Array as u32)
        .u32(ValueType::U64 as u32)
        .u64(1 << 40);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::CountTooLarge { what: "array element", count, .. } if count == 1 << 40),
        "{e:?}"
    );
}

#[test]
fn string_length_larger_than_the_file_is_refused() {
    let raw = Raw::header(3, 0, 1)
        .str(b"s")
        .u32(ValueType::String as u32)
        .u64(u64::MAX)
        .bytes(b"abc");
    let e = parse_err(raw);
    assert!(
        matches!(
            e,
            GgufError::CountTooLarge {
                what: "string length",
                offset: 37,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn deeply_nested_arrays_are_refused_without_recursing() {
    let depth = 100_000;
    let mut raw = Raw::header(3, 0, 1)
        .str(b"deep")
        .u32(ValueType::Array as u32);
    for _ in 0..depth {
        raw = raw.u32(ValueType::Array as u32).u64(1);
    }
    let raw = raw.u32(ValueType::U8 as u32).u64(0);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::NestingTooDeep { ref key, .. } if key == "deep"),
        "{e:?}"
    );
}

#[test]
fn unknown_value_type_is_refused() {
    let raw = Raw::header(3, 0, 1).str(b"k").u32(13).u32(0);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::UnknownValueType { type_id: 13, offset: 33, ref key } if key == "k"),
        "{e:?}"
    );
}

#[test]
fn unknown_array_element_type_is_refused() {
    let raw = Raw::header(3, 0, 1)
        .str(b"k")
        .u32(ValueType::Array as u32)
        .u32(99)
        .u64(0);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::UnknownValueType { type_id: 99, .. }),
        "{e:?}"
    );
}

#[test]
fn unknown_tensor_type_is_refused() {
    // Id 4 was Q4_2, removed from ggml long ago.
    let raw = Raw::header(3, 1, 0).tensor(b"w", &[32], 4, 0).data(32, 64);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::UnknownTensorType { type_id: 4, ref tensor } if tensor == "w"),
        "{e:?}"
    );
}

#[test]
fn non_utf8_key_is_refused() {
    let raw = Raw::header(3, 0, 1)
        .str(b"bad\xffkey")
        .u32(ValueType::U8 as u32)
        .bytes(&[0]);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::NotUtf8 { offset: 32, ref what } if what == "metadata key"),
        "{e:?}"
    );
}

#[test]
fn non_utf8_tensor_name_is_refused() {
    let raw = Raw::header(3, 1, 0)
        .tensor(b"\xc3\x28", &[1], 0, 0)
        .data(32, 32);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::NotUtf8 { offset: 32, ref what } if what.contains("tensor #0")),
        "{e:?}"
    );
}

#[test]
fn duplicate_key_is_refused() {
    let raw = Raw::header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::DuplicateKey { offset: 41, ref key } if key == "k"),
        "{e:?}"
    );
}

#[test]
fn duplicate_tensor_name_is_refused() {
    let raw = Raw::header(3, 2, 0)
        .tensor(b"w", &[1], 0, 0)
        .tensor(b"w", &[1], 0, 32)
        .data(32, 64);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::DuplicateTensor { ref name } if name == "w"),
        "{e:?}"
    );
}

#[test]
fn tensor_offset_past_the_end_is_refused() {
    let raw = Raw::header(3, 1, 0)
        .tensor(b"w", &[8], 0, 1 << 20)
        .data(32, 32);
    let e = parse_err(raw);
    assert!(
        matches!(
            e,
            GgufError::TensorOutOfBounds {
                offset: 1048576,
                size: 32,
                data_len: 32,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn tensor_size_past_the_end_is_refused() {
    let raw = Raw::header(3, 1, 0)
        .tensor(b"w", &[1 << 30], 0, 0)
        .data(32, 32);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { size, .. } if size == 4 << 30),
        "{e:?}"
    );
}

#[test]
fn tensor_offset_plus_size_overflowing_is_out_of_bounds() {
    let raw = Raw::header(3, 1, 0)
        .tensor(b"w", &[8], 0, u64::MAX - 31)
        .data(32, 32);
    let e = parse_err(raw);
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e:?}");
}

#[test]
fn misaligned_tensor_offset_is_refused() {
    let raw = Raw::header(3, 1, 0).tensor(b"w", &[1], 0, 4).data(32, 32);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::MisalignedTensor { offset: 4, alignment: 32, ref tensor } if tensor == "w"),
        "{e:?}"
    );
}

#[test]
fn alignment_zero_is_refused() {
    let e = parse_err(Raw::header(3, 0, 1).kv_u32("general.alignment", 0));
    assert!(matches!(e, GgufError::BadAlignment { value: 0 }), "{e:?}");
}

#[test]
fn alignment_not_a_power_of_two_is_refused() {
    let e = parse_err(Raw::header(3, 0, 1).kv_u32("general.alignment", 48));
    assert!(matches!(e, GgufError::BadAlignment { value: 48 }), "{e:?}");
}

#[test]
fn alignment_of_the_wrong_type_is_refused() {
    let raw = Raw::header(3, 0, 1)
        .str(b"general.alignment")
        .u32(ValueType::String as u32)
        .str(b"32");
    let e = parse_err(raw);
    assert!(matches!(e, GgufError::WrongType { .. }), "{e:?}");
}

#[test]
fn huge_alignment_past_the_end_of_the_file_is_truncation_not_a_panic() {
    // A zero-sized tensor needs no data, but the data section it lives in
    // would start 2 GiB into a file of a hundred bytes.
    let raw = Raw::header(3, 1, 1)
        .kv_u32("general.alignment", 1 << 31)
        .tensor(b"empty", &[0], 0, 0);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::Truncated { ref what, .. } if what.contains("padding")),
        "{e:?}"
    );
}

#[test]
fn dims_whose_product_overflows_are_refused() {
    let dims = [1 << 32, 1 << 32, 2];
    let raw = Raw::header(3, 1, 0).tensor(b"w", &dims, 0, 0).data(32, 32);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::ShapeOverflow { ref tensor, .. } if tensor == "w"),
        "{e:?}"
    );
}

#[test]
fn byte_size_overflowing_is_a_shape_overflow() {
    // 2^62 f32 elements fit in u64, their 2^64 bytes do not.
    let raw = Raw::header(3, 1, 0)
        .tensor(b"w", &[1 << 62], 0, 0)
        .data(32, 32);
    let e = parse_err(raw);
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e:?}");
}

#[test]
fn more_than_four_dims_are_refused() {
    for n_dims in [5, u32::MAX] {
        let raw = Raw::header(3, 1, 0).str(b"w").u32(n_dims).bytes(&[0; 64]);
        let e = parse_err(raw);
        assert!(
            matches!(e, GgufError::TooManyDims { n_dims: n, .. } if n == n_dims),
            "{e:?}"
        );
    }
}

#[test]
fn row_not_a_multiple_of_the_block_size_is_refused() {
    let q4_k = GgmlType::Q4_K.id();
    let raw = Raw::header(3, 1, 0)
        .tensor(b"w", &[100, 2], q4_k, 0)
        .data(32, 1024);
    let e = parse_err(raw);
    assert!(
        matches!(
            e,
            GgufError::RowNotBlockMultiple {
                row_len: 100,
                block_len: 256,
                ty: GgmlType::Q4_K,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn errors_name_the_tensor_in_their_message() {
    let raw = Raw::header(3, 1, 0)
        .tensor(b"blk.0.attn_q.weight", &[1], 0, 4)
        .data(32, 32);
    let msg = parse_err(raw).to_string();
    assert!(msg.contains("blk.0.attn_q.weight"), "{msg}");
}

#[test]
fn zero_dim_does_not_hide_an_overflowing_row_count() {
    // Zero elements, but the product of the other dims (the row count) is
    // 2^80: found by fuzzing, it overflowed in `TensorInfo::n_rows`.
    let dims = [0, 1 << 40, 1 << 40];
    let raw = Raw::header(3, 1, 0).tensor(b"w", &dims, 0, 0).data(32, 32);
    let e = parse_err(raw);
    assert!(
        matches!(e, GgufError::ShapeOverflow { ref tensor, .. } if tensor == "w"),
        "{e:?}"
    );
}

/// Reads everything a loader would: every value, every row of every tensor.
fn touch_everything(f: &GgufFile) {
    for (_, v) in f.metadata().iter() {
        let _ = v.to_json_summary(4);
    }
    for info in f.tensors() {
        let view = f.tensor(&info.name).unwrap();
        assert_eq!(view.data.len() as u64, info.size);
        for i in 0..info.n_rows().min(64) as usize {
            let _ = view.row(i);
        }
    }
}

#[test]
fn inputs_found_by_fuzzing_are_handled_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("fuzz-") {
            if let Ok(f) = GgufFile::from_bytes(std::fs::read(&path).unwrap()) {
                touch_everything(&f);
            }
            n += 1;
        }
    }
    assert!(n > 0, "no fuzz-* fixtures found");
}

#[test]
fn first_fuzz_crash_is_now_a_shape_overflow() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf/fuzz-crash-zero-dim-hides-row-overflow.gguf");
    let e = GgufFile::from_bytes(std::fs::read(path).unwrap()).unwrap_err();
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e:?}");
}
