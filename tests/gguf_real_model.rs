//! The loader against the real Qwen2.5-Coder 0.5B Q4_K_M file.

mod common;

use std::collections::BTreeMap;

use common::real_model_or_skip;
use rocmforge::gguf::GgufFile;

#[test]
fn real_model_has_the_documented_tensor_table() {
    let path = real_model_or_skip!();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.tensors().len(), 291);
    assert_eq!(f.data_offset(), 5_947_776);
    let mut by_type = BTreeMap::new();
    for t in f.tensors() {
        *by_type.entry(t.ty.name()).or_insert(0) += 1;
    }
    let want: BTreeMap<&str, i32> = [
        ("F32", 121),
        ("Q5_0", 133),
        ("Q8_0", 13),
        ("Q4_K", 12),
        ("Q6_K", 12),
    ]
    .into();
    assert_eq!(by_type, want);
    assert_eq!(f.architecture(), Some("qwen2"));
    assert_eq!(f.metadata().get_u32("qwen2.block_count").unwrap(), 24);
    assert_eq!(
        f.tensor_info("token_embd.weight").unwrap().dims,
        vec![896, 151936]
    );
}
