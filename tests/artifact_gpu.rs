//! GPU artifacts, checked without a GPU: a target/device mismatch is
//! refused before any device is opened (a CPU artifact for a GPU, a gfx
//! artifact for CUDA, an sm artifact for HIP), and the stored code objects
//! are checked against what the stored graph needs. A gfx1030 artifact
//! compiled here through Debian's hiprtc (skipped without it, required
//! under CI=true) stores a code object for every kernel; one whose stored
//! source differs, or whose code object is damaged, is refused naming it.
//! Running a GPU artifact on a GPU: devbin check in docs/ARTIFACT.md.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rocmforge::artifact::kernels::require_stored;
use rocmforge::artifact::{
    compile_artifact, reseal, Artifact, ArtifactError, ArtifactTarget, CompileOptions, Silent,
};
use rocmforge::backend::{DeviceSpec, RtcApi, Vendor};
use rocmforge::codegen::plan::PlanOptions;
use rocmforge::gguf::{GgufFile, Value};
use rocmforge::load::{LoadError, LoadOptions};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

/// A tiny llama the GPU kernels take (head size 64), with Llama-3.1-style
/// RoPE frequency factors.
fn model_bytes() -> Vec<u8> {
    let spec = TinySpec {
        d_model: 128,
        n_heads: 2,
        n_kv_heads: 1,
        rope_freqs: true,
        ..TinySpec::for_type(TinyArch::Llama, GgmlType::Q8_0)
    };
    spec.to_bytes(5).unwrap()
}

/// Compiles the tiny model for `target` into a fresh directory.
fn compiled(target: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("m.gguf");
    std::fs::write(&gguf, model_bytes()).unwrap();
    let out = dir.path().join("m.rfc");
    let opts = CompileOptions {
        target: ArtifactTarget::parse(target).unwrap(),
        max_context: 256,
        ..CompileOptions::default()
    };
    compile_artifact(&gguf, &out, &opts, &Silent).unwrap();
    (dir, out)
}

/// The CPU artifact with `rfc.target` rewritten (and resealed).
fn retargeted(target: &str) -> Vec<u8> {
    let (_dir, path) = compiled("cpu");
    let file = GgufFile::open(&path).unwrap();
    reseal(&file, |entries| {
        let t = entries.iter_mut().find(|(k, _)| k == "rfc.target").unwrap();
        t.1 = Value::from(target);
    })
    .unwrap()
}

/// Loads `path` for `device` the way `rfc run --device DEVICE` does.
fn load_for(path: &Path, device: &str) -> Result<(), LoadError> {
    let spec = DeviceSpec::parse(device).unwrap();
    rocmforge::load::load(path, &LoadOptions::default(), spec).map(|_| ())
}

fn artifact_error(r: Result<impl Sized, LoadError>) -> ArtifactError {
    match r {
        Err(LoadError::Artifact(e)) => e,
        Err(e) => panic!("expected an artifact error, got {e}"),
        Ok(_) => panic!("expected an artifact error, got a working model"),
    }
}

fn write_temp(bytes: Vec<u8>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.rfc");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn a_cpu_artifact_is_refused_for_a_gpu_before_any_device_opens() {
    let (_dir, path) = compiled("cpu");
    for device in ["cuda", "hip:1"] {
        let e = artifact_error(load_for(&path, device));
        assert!(matches!(e, ArtifactError::NotForDevice { .. }), "{e}");
        assert!(e.to_string().contains("--device cpu"), "{e}");
    }
}

#[test]
fn a_gpu_artifact_is_refused_for_a_device_of_another_vendor() {
    let cases = [
        ("gfx1100", "cuda", "--device hip"),
        ("sm_90", "hip", "--device cuda"),
    ];
    for (target, device, hint) in cases {
        let (_dir, path) = write_temp(retargeted(target));
        let e = artifact_error(load_for(&path, device));
        let text = e.to_string();
        assert!(matches!(e, ArtifactError::NotForDevice { .. }), "{text}");
        assert!(text.contains(target) && text.contains(hint), "{text}");
    }
}

#[test]
fn a_gpu_artifact_with_device_auto_and_no_such_gpu_names_what_it_needs() {
    // No AMD GPU on the machines that run the tests (else it would open,
    // and this artifact without code objects would fail later).
    let (_dir, path) = write_temp(retargeted("gfx1100"));
    let e = load_for(&path, "auto").expect_err("no gfx1100 here");
    let text = e.to_string();
    assert!(text.contains("gfx1100"), "{text}");
    if let LoadError::Artifact(ArtifactError::NotForDevice { asked, .. }) = e {
        assert_eq!(asked, "auto");
        assert!(text.contains("needs a hip device"), "{text}");
    }
}

#[test]
fn a_gpu_artifact_is_refused_by_the_cpu() {
    let (_dir, path) = write_temp(retargeted("sm_90"));
    let e = artifact_error(load_for(&path, "cpu"));
    assert!(matches!(e, ArtifactError::WrongTarget { .. }), "{e}");
}

#[test]
fn a_gpu_artifact_without_the_code_objects_its_graph_needs_names_one() {
    let file = GgufFile::from_bytes(retargeted("sm_90")).unwrap();
    let a = Artifact::from_file(Arc::new(file)).unwrap();
    let (graph, _) = a.graph_and_plan().unwrap();
    assert!(a.kernels().unwrap().is_empty());
    let e = require_stored(&graph, &plan_options(&a), &a.kernels().unwrap()).unwrap_err();
    match e {
        ArtifactError::MissingKernel { label } => assert!(!label.is_empty()),
        e => panic!("expected a missing kernel, got {e}"),
    }
}

/// The tiny model compiled for gfx1030 through hiprtc, or `None` (skip)
/// where this machine has no hiprtc.
fn gfx1030() -> Option<&'static Vec<u8>> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let available = RtcApi::load(Vendor::Hip).ok();
            common::require("hiprtc (libamdhip64)", available)?;
            let (_dir, path) = compiled("gfx1030");
            Some(std::fs::read(path).unwrap())
        })
        .as_ref()
}

fn open(bytes: Vec<u8>) -> Result<Artifact, ArtifactError> {
    Artifact::from_file(Arc::new(GgufFile::from_bytes(bytes).unwrap()))
}

#[test]
fn a_gfx1030_artifact_stores_a_code_object_for_every_kernel_its_graph_needs() {
    let Some(bytes) = gfx1030() else { return };
    let a = open(bytes.clone()).unwrap();
    assert_eq!(a.target, ArtifactTarget::parse("gfx1030").unwrap());
    let (graph, _) = a.graph_and_plan().unwrap();
    let kernels = a.kernels().unwrap();
    require_stored(&graph, &plan_options(&a), &kernels).unwrap();
    assert!(kernels.iter().all(|k| k.code.starts_with(b"\x7fELF")));
    assert!(kernels
        .iter()
        .any(|k| k.source.contains("#define ROPE_FREQS 1")));
}

#[test]
fn a_stored_source_that_differs_from_the_graph_is_refused_naming_the_kernel() {
    let Some(bytes) = gfx1030() else { return };
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    let a = open(bytes.clone()).unwrap();
    let first = a.kernels().unwrap()[0].label.to_string();
    let edited = reseal(&file, |entries| {
        let (_, v) = entries
            .iter_mut()
            .find(|(k, _)| k == "rfc.kernel.sources")
            .unwrap();
        let Value::Array(ty, items) = v else {
            panic!("sources are an array")
        };
        let mut items = items.clone();
        let Value::String(s) = &items[0] else {
            panic!("a source is a string")
        };
        items[0] = Value::String(format!("{s}\n// edited\n"));
        *v = Value::Array(*ty, items);
    })
    .unwrap();
    let a = open(edited).unwrap();
    let (graph, _) = a.graph_and_plan().unwrap();
    match require_stored(&graph, &plan_options(&a), &a.kernels().unwrap()) {
        Err(ArtifactError::MissingKernel { label }) => assert_eq!(label, first),
        other => panic!("expected a missing kernel, got {other:?}"),
    }
}

#[test]
fn a_damaged_code_object_is_a_kernels_checksum_mismatch() {
    let Some(bytes) = gfx1030() else { return };
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    let t = file.tensor_info("rfc.kernel.0001").unwrap();
    let at = (file.data_offset() + t.offset + t.size / 2) as usize;
    let mut damaged = bytes.clone();
    damaged[at] ^= 0x40;
    match open(damaged) {
        Err(ArtifactError::ChecksumMismatch { part, .. }) => assert_eq!(part, "kernels"),
        Err(e) => panic!("expected a kernels checksum mismatch, got {e}"),
        Ok(_) => panic!("a damaged code object was accepted"),
    }
}

/// The plan options the artifact's kernels were compiled with.
fn plan_options(a: &Artifact) -> PlanOptions {
    // The target's vendor: the two compile different variants (the tall
    // tile and the fragment product are NVIDIA's only).
    let vendor = match &a.target {
        ArtifactTarget::Gpu(t) => t.vendor(),
        ArtifactTarget::Cpu => panic!("a GPU artifact"),
    };
    PlanOptions {
        page_size: a.plan.page_size as u32,
        vendor,
        kv: Default::default(),
    }
}
