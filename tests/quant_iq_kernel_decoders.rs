//! The GPU decoders of the IQ, TQ and MXFP4 types (kernel_templates/
//! quant_iq.h), compiled for the host with a C++ compiler and run on the
//! gguf package's fixture blocks (random and edge-value blocks of every
//! type, tests/fixtures/quant/): `dequant8` and the int8 form the int8
//! kernels multiply with (`i8_part` times `i8_scales`) must give numpy's
//! f32 bit for bit, through the CUDA branch and the HIP branch of the
//! codebook lookups. The lattice grids are the text codegen emits into
//! the kernels. No GPU is needed; the kernels' own compilers are checked
//! by tests/backend_kernels_compile.rs and scripts/ci-gfx1100.sh.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rocmforge::codegen::lattice_grids::LatticeGrid;
use rocmforge::quant::GgmlType;

const GRIDS: [LatticeGrid; 6] = [
    LatticeGrid::Iq2Xxs,
    LatticeGrid::Iq2Xs,
    LatticeGrid::Iq2S,
    LatticeGrid::Iq3Xxs,
    LatticeGrid::Iq3S,
    LatticeGrid::Iq1S,
];

/// A C++17 compiler: $CXX, else c++, g++ or clang++-15 from PATH.
fn cxx() -> Option<String> {
    let candidates = std::env::var("CXX")
        .into_iter()
        .chain(["c++", "g++", "clang++-15"].map(String::from));
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The fixture cases of the new types: "TYPE_ID ELEMENTS BLOCKS EXPECTED" lines.
fn case_list(fixtures: &Path) -> (String, usize) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("index.json")).unwrap()).unwrap();
    let mut lines = String::new();
    let mut n = 0;
    for case in index["dequantize"].as_array().unwrap() {
        let ty = GgmlType::from_name(case["type"].as_str().unwrap()).unwrap();
        if !GgmlType::NEWER_WEIGHT_QUANTS.contains(&ty) {
            continue;
        }
        let file = |key: &str| fixtures.join(case[key].as_str().unwrap());
        lines += &format!(
            "{} {} {} {}\n",
            ty.id(),
            case["elements"].as_u64().unwrap(),
            file("blocks_file").display(),
            file("expected_file").display()
        );
        n += 1;
    }
    (lines, n)
}

fn build(cxx: &str, dir: &Path, hip: bool) -> PathBuf {
    let root = common::repo_root();
    let exe = dir.join(if hip { "decoders_hip" } else { "decoders_cuda" });
    let mut cmd = Command::new(cxx);
    cmd.args(["-std=c++17", "-O1", "-Wall", "-Wno-unused-function", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(dir)
        .arg("-I")
        .arg(root.join("kernel_templates"))
        .arg(root.join("tests/kernel_host/quant_iq_decoders.cpp"));
    if hip {
        cmd.arg("-DHOST_AS_HIP");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cxx} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn the_gpu_decoders_of_every_newer_type_give_numpys_values_bit_for_bit() {
    let Some(cxx) = common::require("a C++ compiler (c++, g++ or clang++-15)", cxx()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let grids: String = GRIDS.iter().map(|g| g.text()).collect();
    std::fs::write(dir.path().join("grids.h"), grids).unwrap();
    let fixtures = common::repo_root().join("tests/fixtures/quant");
    let (list, cases) = case_list(&fixtures);
    // Random and edge-value blocks of each of the twelve types.
    assert_eq!(cases, 2 * GgmlType::NEWER_WEIGHT_QUANTS.len(), "{list}");
    let list_file = dir.path().join("cases.txt");
    std::fs::write(&list_file, list).unwrap();
    for hip in [false, true] {
        let exe = build(&cxx, dir.path(), hip);
        let out = Command::new(&exe).arg(&list_file).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "hip={hip}:\n{report}");
        assert_eq!(
            report.lines().filter(|l| l.starts_with("OK")).count(),
            cases,
            "{report}"
        );
    }
}
