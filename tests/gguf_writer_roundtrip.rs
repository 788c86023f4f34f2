//! The writer's output, read back by the parser, holds exactly what was
//! written: every metadata value type, nested arrays, tensors, alignment, and
//! both versions.

use rocmforge::gguf::{GgufFile, GgufWriter, Value, ValueType};
use rocmforge::quant::GgmlType;

fn round_trip(w: &GgufWriter) -> GgufFile {
    let bytes = w.to_bytes().unwrap();
    assert_eq!(bytes.len() as u64, w.file_len());
    GgufFile::from_bytes(bytes).unwrap()
}

/// One value of every type, including edge values.
fn every_scalar() -> Vec<(&'static str, Value)> {
    vec![
        ("t.u8", Value::U8(u8::MAX)),
        ("t.i8", Value::I8(i8::MIN)),
        ("t.u16", Value::U16(u16::MAX)),
        ("t.i16", Value::I16(i16::MIN)),
        ("t.u32", Value::U32(u32::MAX)),
        ("t.i32", Value::I32(i32::MIN)),
        ("t.f32", Value::F32(-1.5e-7)),
        ("t.bool.true", Value::Bool(true)),
        ("t.bool.false", Value::Bool(false)),
        ("t.string", Value::from("héllo\0wörld")),
        ("t.string.empty", Value::from("")),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f64", Value::F64(std::f64::consts::PI)),
    ]
}

#[test]
fn every_scalar_value_type_round_trips() {
    let mut w = GgufWriter::new();
    for (k, v) in every_scalar() {
        w.add_metadata(k, v).unwrap();
    }
    let f = round_trip(&w);
    let got: Vec<(&str, &Value)> = f.metadata().iter().collect();
    let want = every_scalar();
    assert_eq!(got.len(), want.len());
    for ((gk, gv), (wk, wv)) in got.iter().zip(&want) {
        assert_eq!(gk, wk);
        assert_eq!(*gv, wv, "{wk}");
    }
}

#[test]
fn arrays_of_every_element_type_round_trip() {
    let mut w = GgufWriter::new();
    for (k, v) in every_scalar() {
        let arr = Value::Array(v.value_type(), vec![v.clone(), v]);
        w.add_metadata(&format!("arr.{k}"), arr).unwrap();
    }
    w.add_metadata("arr.empty", Vec::<u32>::new()).unwrap();
    w.add_metadata("arr.strings", vec!["a", "", "ccc"]).unwrap();
    let f = round_trip(&w);
    for (k, v) in every_scalar() {
        let items = f.metadata().get_array(&format!("arr.{k}")).unwrap();
        assert_eq!(items, [v.clone(), v]);
    }
    assert_eq!(
        f.metadata().get("arr.empty"),
        Some(&Value::Array(ValueType::U32, vec![]))
    );
    assert_eq!(
        f.metadata().get_str_array("arr.strings").unwrap(),
        ["a", "", "ccc"]
    );
}

#[test]
fn nested_arrays_round_trip() {
    let inner = |n: u8| Value::from(vec![n; n as usize]);
    let two_deep = Value::Array(ValueType::Array, vec![inner(1), inner(2), inner(0)]);
    let three_deep = Value::Array(
        ValueType::Array,
        vec![two_deep.clone(), Value::Array(ValueType::Array, vec![])],
    );
    let mut w = GgufWriter::new();
    w.add_metadata("nested.2", two_deep.clone()).unwrap();
    w.add_metadata("nested.3", three_deep.clone()).unwrap();
    let f = round_trip(&w);
    assert_eq!(f.metadata().get("nested.2"), Some(&two_deep));
    assert_eq!(f.metadata().get("nested.3"), Some(&three_deep));
}

#[test]
fn tensors_round_trip_with_dims_types_and_data() {
    let mut w = GgufWriter::new();
    let f32_data: Vec<u8> = (0..24u8).collect();
    let q8_data: Vec<u8> = (0..68u8).collect(); // 2 blocks of 34 bytes
    w.add_tensor("a.f32", &[3, 2], GgmlType::F32, f32_data.clone())
        .unwrap();
    w.add_tensor("b.q8_0", &[64], GgmlType::Q8_0, q8_data.clone())
        .unwrap();
    w.add_tensor("c.scalar", &[], GgmlType::F32, vec![1, 2, 3, 4])
        .unwrap();
    w.add_tensor("d.4d", &[1, 1, 1, 2], GgmlType::F16, vec![9; 4])
        .unwrap();
    let f = round_trip(&w);
    assert_eq!(f.tensors(), w.tensors());
    assert_eq!(f.tensor("a.f32").unwrap().data, &f32_data[..]);
    assert_eq!(f.tensor("b.q8_0").unwrap().data, &q8_data[..]);
    assert_eq!(f.tensor("c.scalar").unwrap().data, [1, 2, 3, 4]);
    assert_eq!(f.tensor("d.4d").unwrap().info.dims, [1, 1, 1, 2]);
    for t in f.tensors() {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
    }
}

#[test]
fn custom_alignment_is_written_and_honoured() {
    let mut w = GgufWriter::new();
    w.set_alignment(256).unwrap();
    w.add_tensor("a", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    w.add_tensor("b", &[1], GgmlType::F32, vec![1; 4]).unwrap();
    let f = round_trip(&w);
    assert_eq!(f.alignment(), 256);
    assert_eq!(
        f.metadata().get("general.alignment"),
        Some(&Value::U32(256))
    );
    assert_eq!(f.data_offset() % 256, 0);
    assert_eq!(f.tensor_info("b").unwrap().offset, 256);
    assert_eq!(f.tensor("b").unwrap().data, [1; 4]);
}

#[test]
fn alignment_must_be_a_power_of_two_set_before_tensors() {
    let mut w = GgufWriter::new();
    assert!(w.set_alignment(0).is_err());
    assert!(w.set_alignment(48).is_err());
    w.add_tensor("a", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    assert!(w.set_alignment(64).is_err());
}

#[test]
fn version_2_is_written_on_request() {
    let mut w = GgufWriter::new();
    w.set_version(2).unwrap();
    w.add_metadata("general.architecture", "llama").unwrap();
    let f = round_trip(&w);
    assert_eq!(f.version(), 2);
    assert_eq!(f.architecture(), Some("llama"));
    assert!(GgufWriter::new().set_version(1).is_err());
}

#[test]
fn duplicate_keys_and_tensor_names_are_refused() {
    let mut w = GgufWriter::new();
    w.add_metadata("k", 1u32).unwrap();
    assert!(w.add_metadata("k", 2u32).is_err());
    w.add_tensor("t", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    assert!(w.add_tensor("t", &[1], GgmlType::F32, vec![0; 4]).is_err());
}

#[test]
fn streamed_data_gives_the_same_file_as_stored_data() {
    let data = [vec![1u8; 8], vec![2u8; 34]];
    let mut stored = GgufWriter::new();
    stored
        .add_tensor("x", &[2], GgmlType::F32, data[0].clone())
        .unwrap();
    stored
        .add_tensor("y", &[32], GgmlType::Q8_0, data[1].clone())
        .unwrap();
    let mut declared = GgufWriter::new();
    declared.declare_tensor("x", &[2], GgmlType::F32).unwrap();
    declared.declare_tensor("y", &[32], GgmlType::Q8_0).unwrap();
    let mut s = declared.begin(Vec::new()).unwrap();
    s.write_tensor("x", &data[0]).unwrap();
    s.write_tensor("y", &data[1]).unwrap();
    assert_eq!(s.finish().unwrap(), stored.to_bytes().unwrap());
}

#[test]
fn write_file_then_open_maps_the_same_bytes() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.name", "tiny").unwrap();
    w.add_tensor("t", &[2, 2], GgmlType::F32, vec![7; 16])
        .unwrap();
    let path = std::env::temp_dir().join(format!("rfc-writer-{}.gguf", std::process::id()));
    w.write_file(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(f.bytes(), w.to_bytes().unwrap());
    assert_eq!(f.tensor("t").unwrap().data, [7; 16]);
}
