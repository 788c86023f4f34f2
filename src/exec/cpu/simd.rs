//! Which instruction-set path the kernels take, chosen once at run time.

use std::sync::OnceLock;

/// A family of kernel implementations. Every kernel has a `Portable` body
/// that compiles everywhere; the others exist only on x86-64 and are taken
/// only where the CPU reports the features at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimdPath {
    /// Plain Rust; the reference the other paths are tested against.
    Portable,
    /// AVX2 + FMA + F16C (int8 dot products through `vpmaddubsw`).
    Avx2,
    /// AVX-512 F/BW/VL + VNNI (`vpdpbusd`), on top of everything `Avx2` needs.
    Avx512Vnni,
}

impl SimdPath {
    /// The fastest path this CPU supports (detected once, then cached), or
    /// the slower one that `RFC_CPU_PATH` (`portable`, `avx2`, `avx512`)
    /// names: measuring the AVX2 path on an AVX-512 machine needs it. A name
    /// this CPU cannot run, or no name, gives the fastest path.
    pub fn detect() -> SimdPath {
        static BEST: OnceLock<SimdPath> = OnceLock::new();
        *BEST.get_or_init(|| {
            let fastest = [SimdPath::Avx512Vnni, SimdPath::Avx2]
                .into_iter()
                .find(|p| p.is_available())
                .unwrap_or(SimdPath::Portable);
            let asked = std::env::var("RFC_CPU_PATH").ok();
            match asked.as_deref().map(SimdPath::from_name) {
                Some(Some(p)) if p.is_available() => p,
                Some(_) => {
                    tracing::warn!(
                        ?asked,
                        ?fastest,
                        "RFC_CPU_PATH not usable here; taking the fastest path"
                    );
                    fastest
                }
                None => fastest,
            }
        })
    }

    /// The path `RFC_CPU_PATH` names.
    pub fn from_name(name: &str) -> Option<SimdPath> {
        match name {
            "portable" => Some(SimdPath::Portable),
            "avx2" => Some(SimdPath::Avx2),
            "avx512" => Some(SimdPath::Avx512Vnni),
            _ => None,
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            SimdPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            // Emulated, the AVX-512 kernels need AVX2 only (the path's other
            // types run AVX2 code).
            #[cfg(all(target_arch = "x86_64", feature = "emulate-avx512"))]
            SimdPath::Avx512Vnni => SimdPath::Avx2.is_available(),
            #[cfg(all(target_arch = "x86_64", not(feature = "emulate-avx512")))]
            SimdPath::Avx512Vnni => {
                SimdPath::Avx2.is_available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, slowest first.
    pub fn available() -> Vec<SimdPath> {
        [SimdPath::Portable, SimdPath::Avx2, SimdPath::Avx512Vnni]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }
}
