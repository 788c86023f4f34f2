//! A damaged artifact is a clean typed error, never a crash or a silently
//! wrong model: truncated at many offsets, bytes flipped in the header, the
//! IR, the plan, a checksum or (with verification) a weight, trailing
//! bytes, an unknown format version, the wrong target, a well-sealed but
//! inconsistent plan or IR.

mod common;

use std::sync::{Arc, OnceLock};

use rocmforge::artifact::{
    compile_artifact, reseal, Artifact, ArtifactError, CompileOptions, Silent,
};
use rocmforge::gguf::{GgufFile, Value};
use rocmforge::load::{load_cpu, load_cpu_artifact, LoadError, LoadOptions};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

/// A tiny Qwen2 model (Q8_0 matrices) and its CPU artifact, made once.
fn pristine() -> &'static (Vec<u8>, Vec<u8>) {
    static BYTES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q8_0);
        let gguf = dir.path().join("m.gguf");
        std::fs::write(&gguf, spec.to_bytes(11).unwrap()).unwrap();
        let rfc = dir.path().join("m.rfc");
        compile_artifact(&gguf, &rfc, &CompileOptions::default(), &Silent).unwrap();
        (std::fs::read(gguf).unwrap(), std::fs::read(rfc).unwrap())
    })
}

fn artifact_bytes() -> Vec<u8> {
    pristine().1.clone()
}

/// Opens and checks `bytes` as an artifact (weights too with `verify`).
fn open(bytes: Vec<u8>, verify: bool) -> Result<Artifact, LoadError> {
    let file = GgufFile::from_bytes(bytes)?;
    let a = Artifact::from_file(Arc::new(file))?;
    if verify {
        a.verify_weights(&Silent)?;
    }
    Ok(a)
}

/// Loads `bytes` all the way to a CPU model.
fn load(bytes: Vec<u8>, verify: bool) -> Result<(), LoadError> {
    let file = Arc::new(GgufFile::from_bytes(bytes)?);
    load_cpu_artifact(file, &LoadOptions::default(), verify, &Silent).map(|_| ())
}

fn artifact_error(r: Result<impl Sized, LoadError>) -> ArtifactError {
    match r {
        Err(LoadError::Artifact(e)) => e,
        Err(e) => panic!("expected an artifact error, got {e}"),
        Ok(_) => panic!("expected an artifact error, got a working artifact"),
    }
}

fn mismatch_part(r: Result<impl Sized, LoadError>) -> String {
    match artifact_error(r) {
        ArtifactError::ChecksumMismatch { part, .. } => part,
        e => panic!("expected a checksum mismatch, got {e}"),
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

/// Flips the lowest bit of the byte at `at` (an ASCII letter or digit
/// stays ASCII, so the text stays valid UTF-8).
fn flipped(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    bytes[at] ^= 1;
    bytes
}

#[test]
fn the_pristine_artifact_opens_verifies_and_loads() {
    open(artifact_bytes(), true).unwrap();
    load(artifact_bytes(), true).unwrap();
}

#[test]
fn truncation_anywhere_is_a_typed_error() {
    let bytes = artifact_bytes();
    let data_start = GgufFile::from_bytes(bytes.clone()).unwrap().data_offset() as usize;
    // Every byte of the header (the tokenizer, IR and plan live there),
    // then a stride through the data, and the last bytes of the file.
    let offsets = (0..data_start + 8)
        .chain((data_start..bytes.len()).step_by(997))
        .chain(bytes.len() - 8..bytes.len());
    for n in offsets {
        match open(bytes[..n].to_vec(), false) {
            Err(LoadError::Gguf(_)) => {}
            Err(LoadError::Artifact(ArtifactError::Truncated { expected, found })) => {
                assert_eq!((expected, found), (bytes.len() as u64, n as u64));
            }
            Err(e) => panic!("truncated at {n}: unexpected error {e}"),
            Ok(_) => panic!("truncated at {n}: opened"),
        }
    }
}

#[test]
fn truncation_in_the_last_padding_names_both_lengths() {
    // The container still parses (the last tensor fits): only the
    // artifact's length check can tell.
    let bytes = artifact_bytes();
    let n = bytes.len() - 1;
    match artifact_error(load(bytes[..n].to_vec(), false)) {
        ArtifactError::Truncated { expected, found } => {
            assert_eq!((expected, found), (bytes.len() as u64, n as u64))
        }
        e => panic!("expected Truncated, got {e}"),
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = artifact_bytes();
    bytes.push(0);
    assert!(matches!(
        artifact_error(open(bytes, false)),
        ArtifactError::TrailingBytes { .. }
    ));
}

#[test]
fn a_flipped_byte_in_the_ir_text_is_an_ir_checksum_mismatch() {
    let bytes = artifact_bytes();
    let at = find(&bytes, b"rocmforge IR:") + 2;
    assert_eq!(mismatch_part(load(flipped(bytes, at), false)), "IR");
}

#[test]
fn a_flipped_byte_in_the_plan_is_a_plan_checksum_mismatch() {
    let bytes = artifact_bytes();
    let at = find(&bytes, b"\"arena_bytes\":") + 14;
    assert!(bytes[at].is_ascii_digit());
    assert_eq!(mismatch_part(load(flipped(bytes, at), false)), "plan");
}

#[test]
fn a_flipped_byte_in_the_launch_schedule_is_a_plan_checksum_mismatch() {
    let bytes = artifact_bytes();
    let at = find(&bytes, b"\"op\":\"embed\"") + 7;
    assert_eq!(mismatch_part(load(flipped(bytes, at), false)), "plan");
}

#[test]
fn a_flipped_byte_in_the_header_is_a_header_checksum_mismatch() {
    let bytes = artifact_bytes();
    let sha = rocmforge::artifact::checksum::sha256_hex(&pristine().0);
    let in_source_sha = find(&bytes, sha.as_bytes()) + 10;
    let in_tokenizer = find(&bytes, b"tokenizer.ggml.model") + 30;
    let in_compiler = find(&bytes, b"rocmforge 0.") + 1;
    for at in [in_source_sha, in_tokenizer, in_compiler] {
        let r = load(flipped(bytes.clone(), at), false);
        match r {
            Err(LoadError::Artifact(ArtifactError::ChecksumMismatch { part, .. })) => {
                assert_eq!(part, "header", "byte {at}")
            }
            // A flip in a length or type field breaks the container first.
            Err(LoadError::Gguf(_)) => {}
            Err(e) => panic!("byte {at}: unexpected error {e}"),
            Ok(()) => panic!("byte {at}: loaded"),
        }
    }
}

#[test]
fn a_flipped_stored_checksum_is_a_mismatch_of_its_part() {
    let bytes = artifact_bytes();
    let key = b"rfc.checksum.kernels";
    // key, then the value type (u32) and the string length (u64).
    let at = find(&bytes, key) + key.len() + 4 + 8 + 3;
    assert_eq!(mismatch_part(load(flipped(bytes, at), false)), "kernels");
}

#[test]
fn a_flipped_weight_byte_is_found_by_every_load_and_names_the_tensor() {
    let bytes = artifact_bytes();
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    let t = file.tensor_info("blk.1.ffn_down.weight").unwrap();
    let at = (file.data_offset() + t.offset + t.size / 2) as usize;
    let damaged = flipped(bytes, at);
    // The fast checksum (every load) and the SHA-256 (--verify) both find it.
    for verify in [false, true] {
        let part = mismatch_part(load(damaged.clone(), verify));
        assert!(part.contains("blk.1.ffn_down.weight"), "{part}");
    }
    // Only skipping the check (`--no-verify`) loads it.
    let skip = LoadOptions {
        skip_weight_check: true,
        ..Default::default()
    };
    let file = Arc::new(GgufFile::from_bytes(damaged).unwrap());
    load_cpu_artifact(file, &skip, false, &Silent).unwrap();
}

#[test]
fn every_flipped_header_byte_is_an_error_with_verification() {
    let bytes = artifact_bytes();
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    // The header ends at its last non-zero byte (zero padding follows).
    let end = bytes[..file.data_offset() as usize]
        .iter()
        .rposition(|&b| b != 0)
        .unwrap();
    for at in 0..=end {
        let r = open(flipped(bytes.clone(), at), true);
        assert!(r.is_err(), "a flip at byte {at} of {end} went unnoticed");
    }
}

#[test]
fn an_unknown_format_version_is_named() {
    let bytes = artifact_bytes();
    let key = b"rfc.format_version";
    let at = find(&bytes, key) + key.len() + 4;
    let mut damaged = bytes;
    damaged[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
    assert!(matches!(
        artifact_error(load(damaged, false)),
        ArtifactError::UnsupportedVersion {
            found: 7,
            supported: 1
        }
    ));
}

/// The pristine artifact with one metadata value replaced, well sealed.
fn resealed(key: &str, value: Value) -> Vec<u8> {
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    reseal(&file, |entries| {
        let slot = entries.iter_mut().find(|(k, _)| k == key).unwrap();
        slot.1 = value;
    })
    .unwrap()
}

#[test]
fn a_resealed_artifact_with_nothing_changed_still_loads() {
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let bytes = reseal(&file, |_| {}).unwrap();
    // Byte for byte: the checksums do not depend on when they are computed.
    assert!(bytes == artifact_bytes());
}

#[test]
fn a_gpu_artifact_is_refused_by_the_cpu_loader() {
    let bytes = resealed("rfc.target", Value::from("gfx1100"));
    let e = artifact_error(load(bytes.clone(), false));
    assert!(matches!(e, ArtifactError::WrongTarget { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu.rfc");
    std::fs::write(&path, bytes).unwrap();
    let e = artifact_error(load_cpu(&path, &LoadOptions::default()));
    assert!(e.to_string().contains("--target cpu"), "{e}");
}

#[test]
fn a_well_sealed_unknown_version_is_refused() {
    let bytes = resealed("rfc.format_version", Value::U32(2));
    assert!(matches!(
        artifact_error(load(bytes, false)),
        ArtifactError::UnsupportedVersion { found: 2, .. }
    ));
}

#[test]
fn a_plan_naming_a_node_the_ir_lacks_is_a_plan_error() {
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let plan = file.metadata().get_str("rfc.plan").unwrap();
    let bad = plan.replacen("\"schedule\":[0,", "\"schedule\":[9999,", 1);
    assert_ne!(bad, plan);
    let bytes = resealed("rfc.plan", Value::from(bad.as_str()));
    assert!(matches!(
        artifact_error(load(bytes, false)),
        ArtifactError::Plan(_)
    ));
}

#[test]
fn a_plan_with_absurd_limits_is_refused_before_allocating() {
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let plan = file.metadata().get_str("rfc.plan").unwrap();
    let bad = plan.replacen("\"tokens\":512", "\"tokens\":4000000000", 1);
    assert_ne!(bad, plan);
    let bytes = resealed("rfc.plan", Value::from(bad.as_str()));
    assert!(matches!(
        artifact_error(load(bytes, false)),
        ArtifactError::Plan(_)
    ));
}

#[test]
fn an_ir_that_does_not_parse_is_an_ir_error_with_its_line() {
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let ir = file.metadata().get_str("rfc.ir").unwrap();
    let bad = ir.replacen("= embed", "= embedd", 1);
    let bytes = resealed("rfc.ir", Value::from(bad.as_str()));
    match artifact_error(load(bytes, false)) {
        ArtifactError::Ir(e) => assert!(e.line > 1, "{e}"),
        e => panic!("expected an IR error, got {e}"),
    }
}

#[test]
fn a_gguf_model_is_not_an_artifact() {
    let e = artifact_error(open(pristine().0.clone(), false));
    assert!(matches!(e, ArtifactError::NotAnArtifact { .. }), "{e}");
}

#[test]
fn rfc_run_of_a_damaged_artifact_exits_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = artifact_bytes();
    let at = find(&bytes, b"rocmforge IR:") + 2;
    let path = dir.path().join("bad.rfc");
    std::fs::write(&path, flipped(bytes, at)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(["run", path.to_str().unwrap(), "-p", "hi", "-n", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("artifact IR checksum mismatch"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn rfc_inspect_of_a_damaged_artifact_shows_the_file_then_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = artifact_bytes();
    let at = find(&bytes, b"\"arena_bytes\":") + 14;
    let path = dir.path().join("bad.rfc");
    std::fs::write(&path, flipped(bytes, at)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(["inspect", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("artifact plan checksum mismatch"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("general.architecture"));
}

#[test]
fn a_plan_slot_smaller_than_its_value_is_a_plan_error() {
    // The slot shrinks in the plan and in the IR's arena ranges alike, so
    // that only the check of sizes against types can tell.
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let plan = file.metadata().get_str("rfc.plan").unwrap();
    let ir = file.metadata().get_str("rfc.ir").unwrap();
    let mut json: serde_json::Value = serde_json::from_str(plan).unwrap();
    let last = json["slots"].as_array_mut().unwrap().last_mut().unwrap();
    let (node, offset, bytes) = (last[0].clone(), last[1].as_u64().unwrap(), last[2].clone());
    last[2] = serde_json::json!(4);
    let was = format!("arena[{offset}..{}]", offset + bytes.as_u64().unwrap());
    let now = format!("arena[{offset}..{}]", offset + 4);
    let prefix = format!("%{node} = ");
    let ir: String = ir
        .lines()
        .map(|l| match l.starts_with(&prefix) {
            true => l.replace(&was, &now) + "\n",
            false => l.to_string() + "\n",
        })
        .collect();
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let bytes = reseal(&file, |entries| {
        for (k, v) in entries.iter_mut() {
            match k.as_str() {
                "rfc.plan" => *v = Value::from(json.to_string().as_str()),
                "rfc.ir" => *v = Value::from(ir.as_str()),
                _ => {}
            }
        }
    })
    .unwrap();
    match artifact_error(load(bytes, false)) {
        ArtifactError::Plan(why) => assert!(why.contains("needs"), "{why}"),
        e => panic!("expected a plan error, got {e}"),
    }
}

#[test]
fn an_ir_that_parses_but_breaks_a_type_rule_is_invalid() {
    let file = GgufFile::from_bytes(artifact_bytes()).unwrap();
    let ir = file.metadata().get_str("rfc.ir").unwrap();
    let bad: Vec<String> = ir
        .lines()
        .map(|l| {
            if l.contains("= embed ") {
                l.replace("f32[T,64]", "f32[T,63]")
            } else {
                l.to_string()
            }
        })
        .collect();
    let bad = bad.join("\n") + "\n";
    assert_ne!(bad, ir);
    let bytes = resealed("rfc.ir", Value::from(bad.as_str()));
    let e = artifact_error(load(bytes, false));
    assert!(matches!(e, ArtifactError::InvalidIr(_)), "{e}");
}
