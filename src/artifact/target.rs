//! What an artifact is compiled for: the CPU executor, or one GPU
//! architecture whose code objects it carries.

use std::fmt;

use super::error::{ArtifactError, Result};
use crate::backend::{DeviceInfo, Vendor};
use crate::codegen::Target;

/// The target named by `rfc compile --target` and stored as `rfc.target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactTarget {
    Cpu,
    Gpu(Target),
}

impl ArtifactTarget {
    /// `cpu`, `sm_NN` or `gfxNNNN`.
    pub fn parse(s: &str) -> Result<ArtifactTarget> {
        if s == "cpu" {
            return Ok(ArtifactTarget::Cpu);
        }
        match Target::parse(s) {
            Ok(t) => Ok(ArtifactTarget::Gpu(t)),
            // A GPU-shaped name that is not a known architecture says which are.
            Err(e @ crate::codegen::CodegenError::UnknownArch { .. }) => Err(e.into()),
            Err(_) => Err(ArtifactError::UnknownTarget(s.to_string())),
        }
    }

    /// Checks that an artifact for this target may run on the CPU executor.
    pub fn require_cpu(&self) -> Result<()> {
        match self {
            ArtifactTarget::Cpu => Ok(()),
            ArtifactTarget::Gpu(t) => Err(ArtifactError::WrongTarget {
                artifact: t.to_string(),
                wanted: "cpu".into(),
            }),
        }
    }

    /// Checks, before any device is opened, that an artifact for this
    /// target may run on a device of `vendor` (`asked` is the user's
    /// `--device` value, for the message).
    pub fn require_vendor(&self, vendor: Vendor, asked: &str) -> Result<()> {
        let hint = match self {
            ArtifactTarget::Gpu(t) if t.vendor() == vendor => return Ok(()),
            ArtifactTarget::Cpu => {
                "it holds no GPU code: run it with --device cpu, or compile the GGUF \
                 with `rfc compile --target sm_NN|gfxNNNN`"
                    .to_string()
            }
            ArtifactTarget::Gpu(t) => format!(
                "its code objects are for {} devices: run it with --device {}, or compile \
                 the GGUF for this device's architecture",
                t.vendor(),
                t.vendor()
            ),
        };
        Err(ArtifactError::NotForDevice {
            artifact: self.to_string(),
            asked: asked.to_string(),
            hint,
        })
    }

    /// Checks that an artifact for this target may run on `device`: the
    /// code objects are for one vendor and one architecture only.
    pub fn require_device(&self, device: &DeviceInfo) -> Result<()> {
        let on_device = Target::of(device);
        match self {
            ArtifactTarget::Gpu(t) if *t == on_device => Ok(()),
            _ => Err(ArtifactError::WrongDevice {
                artifact: self.to_string(),
                device: on_device.to_string(),
            }),
        }
    }
}

impl fmt::Display for ArtifactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactTarget::Cpu => f.write_str("cpu"),
            ArtifactTarget::Gpu(t) => write!(f, "{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_gpu_names_parse_and_print_back() {
        for name in ["cpu", "gfx1100", "sm_90"] {
            assert_eq!(ArtifactTarget::parse(name).unwrap().to_string(), name);
        }
        assert!(matches!(
            ArtifactTarget::parse("tpu"),
            Err(ArtifactError::UnknownTarget(_))
        ));
    }

    #[test]
    fn a_gpu_artifact_is_refused_by_the_cpu_executor() {
        let t = ArtifactTarget::parse("gfx1100").unwrap();
        assert!(matches!(
            t.require_cpu(),
            Err(ArtifactError::WrongTarget { .. })
        ));
    }

    fn device(vendor: crate::backend::Vendor, arch: &str) -> DeviceInfo {
        DeviceInfo {
            vendor,
            ordinal: 0,
            name: "test device".into(),
            arch: arch.into(),
            multiprocessors: 1,
            warp_size: 32,
            max_shared_per_block: 0,
            total_memory: 0,
            peak_bandwidth: None,
            driver_version: String::new(),
        }
    }

    #[test]
    fn a_device_of_another_vendor_is_refused_before_it_is_opened() {
        let gfx = ArtifactTarget::parse("gfx1100").unwrap();
        let e = gfx.require_vendor(Vendor::Cuda, "cuda").unwrap_err();
        assert!(e.to_string().contains("gfx1100"), "{e}");
        assert!(e.to_string().contains("--device hip"), "{e}");
        assert!(gfx.require_vendor(Vendor::Hip, "hip").is_ok());
        let sm = ArtifactTarget::parse("sm_90").unwrap();
        assert!(sm.require_vendor(Vendor::Hip, "hip:1").is_err());
        assert!(sm.require_vendor(Vendor::Cuda, "cuda").is_ok());
    }

    #[test]
    fn a_cpu_artifact_is_refused_for_any_gpu() {
        for v in [Vendor::Cuda, Vendor::Hip] {
            let e = ArtifactTarget::Cpu.require_vendor(v, "gpu").unwrap_err();
            assert!(e.to_string().contains("--device cpu"), "{e}");
        }
    }

    #[test]
    fn a_gpu_artifact_runs_only_on_its_own_architecture() {
        let t = ArtifactTarget::parse("sm_90").unwrap();
        assert!(t.require_device(&device(Vendor::Cuda, "sm_90")).is_ok());
        for (vendor, arch) in [(Vendor::Cuda, "sm_80"), (Vendor::Hip, "gfx1100")] {
            assert!(matches!(
                t.require_device(&device(vendor, arch)),
                Err(ArtifactError::WrongDevice { .. })
            ));
        }
        assert!(ArtifactTarget::Cpu
            .require_device(&device(Vendor::Cuda, "sm_90"))
            .is_err());
    }
}
