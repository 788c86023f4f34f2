//! `--device auto|cpu|hip[:N]|cuda[:N]`.

use std::fmt;
use std::str::FromStr;

use super::error::BackendError;
use super::vendor::Vendor;

/// Which device the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// A GPU if one works (CUDA first, then HIP), else the CPU.
    #[default]
    Auto,
    Cpu,
    Gpu {
        vendor: Vendor,
        ordinal: u32,
    },
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Result<DeviceSpec, BackendError> {
        let bad = |reason: &str| BackendError::BadDeviceSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let lower = s.trim().to_ascii_lowercase();
        let (name, ordinal) = match lower.split_once(':') {
            Some((n, o)) => {
                let o = o
                    .parse::<u32>()
                    .map_err(|_| bad("the device number must be a non-negative integer"))?;
                (n, Some(o))
            }
            None => (lower.as_str(), None),
        };
        let vendor = match name {
            "auto" | "cpu" if ordinal.is_some() => {
                return Err(bad("auto and cpu take no device number"))
            }
            "auto" => return Ok(DeviceSpec::Auto),
            "cpu" => return Ok(DeviceSpec::Cpu),
            "cuda" => Vendor::Cuda,
            "hip" | "rocm" => Vendor::Hip,
            _ => return Err(bad("expected auto, cpu, hip[:N] or cuda[:N]")),
        };
        Ok(DeviceSpec::Gpu {
            vendor,
            ordinal: ordinal.unwrap_or(0),
        })
    }
}

impl FromStr for DeviceSpec {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceSpec::parse(s)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Gpu { vendor, ordinal } => write!(f, "{vendor}:{ordinal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ordinals_parse() {
        assert_eq!(DeviceSpec::parse("auto").unwrap(), DeviceSpec::Auto);
        assert_eq!(DeviceSpec::parse("CPU").unwrap(), DeviceSpec::Cpu);
        assert_eq!(
            DeviceSpec::parse("cuda").unwrap(),
            DeviceSpec::Gpu {
                vendor: Vendor::Cuda,
                ordinal: 0
            }
        );
        assert_eq!(
            DeviceSpec::parse("hip:2").unwrap(),
            DeviceSpec::Gpu {
                vendor: Vendor::Hip,
                ordinal: 2
            }
        );
    }

    #[test]
    fn malformed_specs_are_refused_with_the_reason() {
        for s in ["gpu", "cuda:", "cuda:-1", "hip:x", "cpu:0", ""] {
            let e = DeviceSpec::parse(s).unwrap_err();
            assert!(matches!(e, BackendError::BadDeviceSpec { .. }), "{s}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["auto", "cpu", "cuda:1", "hip:0"] {
            assert_eq!(DeviceSpec::parse(s).unwrap().to_string(), s);
        }
    }
}
