//! Compile targets: an NVIDIA SM version or an AMD gfx name.

use std::fmt;

use super::error::CodegenError;
use super::known_targets;
use crate::backend::{DeviceInfo, Vendor};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `sm_90` etc. (NVRTC `--gpu-architecture`).
    Cuda { arch: String },
    /// `gfx1100` etc. (hiprtc `--offload-arch`).
    Amdgpu { arch: String },
}

impl Target {
    /// `sm_NN` or `gfxNNNN`, one of [`known_targets`]: a name no compiler
    /// knows is refused here, before any runtime compiler can see it.
    pub fn parse(s: &str) -> Result<Target, CodegenError> {
        let unknown = |amd: bool| CodegenError::UnknownArch {
            arch: s.to_string(),
            vendor: if amd { "AMD" } else { "NVIDIA" },
            known: known_targets::list(amd),
        };
        if s.starts_with("sm_") {
            if !known_targets::is_known_nvidia(s) {
                return Err(unknown(false));
            }
            return Ok(Target::Cuda {
                arch: s.to_string(),
            });
        }
        if s.starts_with("gfx") {
            if !known_targets::is_known_amd(s) {
                return Err(unknown(true));
            }
            return Ok(Target::Amdgpu {
                arch: s.to_string(),
            });
        }
        Err(CodegenError::UnknownTarget(s.to_string()))
    }

    /// The target of an opened device.
    pub fn of(info: &DeviceInfo) -> Target {
        match info.vendor {
            Vendor::Cuda => Target::Cuda {
                arch: info.arch.clone(),
            },
            Vendor::Hip => Target::Amdgpu {
                arch: info.arch.clone(),
            },
        }
    }

    pub fn arch(&self) -> &str {
        match self {
            Target::Cuda { arch } | Target::Amdgpu { arch } => arch,
        }
    }

    pub fn vendor(&self) -> Vendor {
        match self {
            Target::Cuda { .. } => Vendor::Cuda,
            Target::Amdgpu { .. } => Vendor::Hip,
        }
    }

    /// Threads per warp/wavefront the kernels are compiled for: 32 on
    /// NVIDIA and on RDNA (gfx10+, wave32 by default), 64 on GCN/CDNA.
    pub fn warp_size(&self) -> u32 {
        match self {
            Target::Cuda { .. } => 32,
            Target::Amdgpu { arch } if arch.starts_with("gfx9") || arch.starts_with("gfx8") => 64,
            Target::Amdgpu { .. } => 32,
        }
    }

    /// Options for the runtime compiler.
    pub fn compile_options(&self) -> Vec<String> {
        match self {
            Target::Cuda { arch } => {
                vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()]
            }
            Target::Amdgpu { arch } => vec![
                format!("--offload-arch={arch}"),
                "-O3".into(),
                "-std=c++17".into(),
            ],
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.arch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm_and_gfx_names_parse_and_others_do_not() {
        assert_eq!(Target::parse("sm_90").unwrap().vendor(), Vendor::Cuda);
        assert_eq!(Target::parse("gfx1100").unwrap().warp_size(), 32);
        assert_eq!(Target::parse("gfx90a").unwrap().warp_size(), 64);
        for bad in [
            "", "sm_", "gfx", "cuda", "gfx11 00", "gfx9999", "gfx1234", "sm_1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
