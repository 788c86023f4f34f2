//! The GPU architectures `--target` accepts, checked before any runtime
//! compiler sees a name: ROCm 5's hiprtc aborts the whole process (inside
//! the AMD code-object library) on an architecture it does not know, so an
//! unchecked name could kill `rfc` instead of giving an error.
//!
//! AMD names are LLVM's AMDGPU processors
//! (<https://llvm.org/docs/AMDGPUUsage.html#processors>), each with the ROCm
//! release whose compiler first knows it; NVIDIA names are the compute
//! capabilities NVRTC takes (`sm_NN`, and the `a` variants of 9.0 and up).

/// AMD architectures and the oldest ROCm (major, minor) whose hiprtc
/// compiles for them.
pub const AMD: &[(&str, (i32, i32))] = &[
    ("gfx803", (5, 0)),
    ("gfx900", (5, 0)),
    ("gfx906", (5, 0)),
    ("gfx908", (5, 0)),
    ("gfx90a", (5, 0)),
    ("gfx90c", (5, 0)),
    ("gfx1010", (5, 0)),
    ("gfx1011", (5, 0)),
    ("gfx1012", (5, 0)),
    ("gfx1013", (5, 0)),
    ("gfx1030", (5, 0)),
    ("gfx1031", (5, 0)),
    ("gfx1032", (5, 0)),
    ("gfx1033", (5, 0)),
    ("gfx1034", (5, 0)),
    ("gfx1035", (5, 0)),
    ("gfx1036", (5, 3)),
    ("gfx940", (5, 5)),
    ("gfx941", (5, 5)),
    ("gfx942", (5, 7)),
    ("gfx1100", (5, 5)),
    ("gfx1101", (5, 5)),
    ("gfx1102", (5, 5)),
    ("gfx1103", (5, 5)),
    ("gfx1150", (6, 1)),
    ("gfx1151", (6, 1)),
    ("gfx1200", (6, 2)),
    ("gfx1201", (6, 2)),
    ("gfx950", (6, 4)),
];

/// NVIDIA compute capabilities NVRTC 11 to 13 know between them.
pub const NVIDIA: &[&str] = &[
    "sm_50", "sm_52", "sm_53", "sm_60", "sm_61", "sm_62", "sm_70", "sm_72", "sm_75", "sm_80",
    "sm_86", "sm_87", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_100a", "sm_101", "sm_101a",
    "sm_103", "sm_103a", "sm_110", "sm_110a", "sm_120", "sm_120a", "sm_121", "sm_121a",
];

/// Whether `arch` is a known AMD architecture.
pub fn is_known_amd(arch: &str) -> bool {
    AMD.iter().any(|(a, _)| *a == arch)
}

/// Whether `arch` is a known NVIDIA architecture.
pub fn is_known_nvidia(arch: &str) -> bool {
    NVIDIA.contains(&arch)
}

/// The oldest ROCm release whose hiprtc knows `arch` (`None`: unknown).
/// A device's name may carry target features (`gfx90a:sramecc+:xnack-`).
pub fn amd_since(arch: &str) -> Option<(i32, i32)> {
    let base = arch.split(':').next().unwrap_or(arch);
    AMD.iter().find(|(a, _)| *a == base).map(|&(_, v)| v)
}

/// The known names of one vendor, for error messages.
pub fn list(amd: bool) -> String {
    if amd {
        AMD.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
    } else {
        NVIDIA.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_crashed_rocm5_hiprtc_are_unknown() {
        for bad in ["gfx9999", "gfx1234", "gfx0000", "gfxzz"] {
            assert!(!is_known_amd(bad), "{bad}");
        }
        assert!(is_known_amd("gfx1100"));
        assert!(is_known_nvidia("sm_90"));
        assert!(!is_known_nvidia("sm_1"));
    }

    #[test]
    fn gfx11_needs_rocm_5_5() {
        assert_eq!(amd_since("gfx1100"), Some((5, 5)));
        assert!(amd_since("gfx1030").unwrap() < (5, 2));
        assert_eq!(amd_since("gfx9999"), None);
        assert_eq!(amd_since("gfx90a:sramecc+:xnack-"), Some((5, 0)));
    }
}
