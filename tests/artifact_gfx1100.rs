//! A gfx1100 artifact made on a machine without an AMD GPU, whose hiprtc
//! (Debian's ROCm 5.2) predates gfx11: `rfc compile --target gfx1100`
//! compiles every kernel with the offline clang (clang-15, ROCm device
//! libraries, hiprtc's prelude; skipped where they are missing, required
//! under CI=true, which installs them in scripts/ci-deps.sh). Each stored
//! code object must be an AMDGPU ELF for gfx1100 compiled for wave32, and
//! the artifact must name its compiler.

mod common;

use std::sync::{Arc, OnceLock};

use rocmforge::artifact::kernels::require_stored;
use rocmforge::artifact::{compile_artifact, Artifact, ArtifactTarget, CompileOptions, Silent};
use rocmforge::backend::{isa_version, OfflineClang};
use rocmforge::codegen::plan::PlanOptions;
use rocmforge::gguf::GgufFile;
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

/// ELF `e_machine` of AMD GPUs, and the `e_flags` machine number of gfx1100
/// (LLVM's AMDGPUUsage, "AMDGPU ELF Header").
const EM_AMDGPU: u16 = 224;
const EF_AMDGPU_MACH_GFX1100: u32 = 0x041;
const EF_AMDGPU_MACH_MASK: u32 = 0x0ff;

/// The tiny model compiled for gfx1100 once for all tests (`None`: skip).
fn compile_gfx1100() -> Option<Artifact> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| {
        let what = "an offline clang for AMD (clang-15, rocm-device-libs, libhiprtc-builtins5)";
        common::require(what, OfflineClang::find().ok())?;
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("m.gguf");
        let spec = TinySpec {
            d_model: 256,
            n_heads: 4,
            n_kv_heads: 2,
            ..TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q4_K)
        };
        std::fs::write(&gguf, spec.to_bytes(3).unwrap()).unwrap();
        let out = dir.path().join("m.rfc");
        let opts = CompileOptions {
            target: ArtifactTarget::parse("gfx1100").unwrap(),
            max_context: 256,
            ..CompileOptions::default()
        };
        compile_artifact(&gguf, &out, &opts, &Silent).unwrap();
        Some(std::fs::read(&out).unwrap())
    });
    let file = GgufFile::from_bytes(bytes.clone()?).unwrap();
    Some(Artifact::from_file(Arc::new(file)).unwrap())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn a_gfx1100_artifact_holds_a_gfx1100_code_object_for_every_kernel_its_graph_needs() {
    let Some(a) = compile_gfx1100() else { return };
    assert_eq!(a.target, ArtifactTarget::parse("gfx1100").unwrap());
    let (graph, _) = a.graph_and_plan().unwrap();
    let kernels = a.kernels().unwrap();
    require_stored(&graph, &plan_options(&a), &kernels).unwrap();
    for k in &kernels {
        let code = k.code;
        assert!(code.starts_with(b"\x7fELF"), "{}: not an ELF", k.label);
        assert_eq!(code[4], 2, "{}: not a 64-bit ELF", k.label);
        assert_eq!(
            u16_at(code, 18),
            EM_AMDGPU,
            "{}: not for an AMD GPU",
            k.label
        );
        let mach = u32_at(code, 48) & EF_AMDGPU_MACH_MASK;
        assert_eq!(
            mach, EF_AMDGPU_MACH_GFX1100,
            "{}: e_flags machine {mach:#x}",
            k.label
        );
    }
}

#[test]
fn every_kernel_is_compiled_for_wave32() {
    let Some(a) = compile_gfx1100() else { return };
    // The code object's metadata (a msgpack note) maps ".wavefront_size"
    // to a positive fixint: 0x20 for wave32 (0x40 would be wave64).
    let key = b".wavefront_size";
    for k in a.kernels().unwrap() {
        let at = k
            .code
            .windows(key.len())
            .position(|w| w == key)
            .unwrap_or_else(|| panic!("{}: no kernel metadata", k.label));
        assert_eq!(k.code[at + key.len()], 0x20, "{}: not wave32", k.label);
    }
}

#[test]
fn the_artifact_names_the_offline_compiler() {
    let Some(a) = compile_gfx1100() else { return };
    let compiler = a.get("rfc.kernel_compiler").unwrap();
    assert!(
        compiler.contains("clang") && compiler.contains("offline"),
        "{compiler}"
    );
}

#[test]
fn isa_version_of_gfx1100_is_the_one_the_device_libraries_expect() {
    assert_eq!(isa_version("gfx1100"), Some(11000));
}

/// The plan options the artifact's kernels were compiled with.
fn plan_options(a: &Artifact) -> PlanOptions {
    PlanOptions {
        page_size: a.plan.page_size as u32,
        vendor: rocmforge::backend::Vendor::Hip,
        kv: Default::default(),
    }
}

#[test]
fn a_gfx1100_artifact_made_without_its_gpu_records_the_stated_matmul_defaults_as_unmeasured() {
    let Some(a) = compile_gfx1100() else { return };
    let t = a
        .matmul_tuning()
        .unwrap()
        .expect("GPU artifacts record their matmul variants");
    assert_eq!(t.measured_on, None);
    assert!(t.tables.is_empty());
    let s = rocmforge::artifact::summary::summarize(a.file().clone(), false, &Silent).unwrap();
    assert_eq!(
        s.matmul_variants.as_deref(),
        Some("stated defaults, unmeasured")
    );
    assert!(s
        .to_text()
        .contains("matmul variants  stated defaults, unmeasured"));
}
