//! The two GPU vendors and the few numbers in which their mirrored driver
//! APIs differ (attribute ids, error codes, oldest supported driver).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// NVIDIA: libcuda (driver API) + libnvrtc.
    Cuda,
    /// AMD: libamdhip64 (module API) + hiprtc (inside libamdhip64 in ROCm 5,
    /// libhiprtc from ROCm 6).
    Hip,
}

/// Device attributes the layer reads, by meaning; [`Vendor::attribute_id`]
/// maps them to each API's enum value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAttr {
    MultiprocessorCount,
    WarpSize,
    MaxSharedPerBlock,
    ComputeMajor,
    ComputeMinor,
    /// Peak memory clock in kHz.
    MemoryClockKhz,
    /// Memory bus width in bits.
    MemoryBusBits,
}

/// Kernel attributes read for the resource report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncAttr {
    MaxThreadsPerBlock,
    SharedBytes,
    LocalBytes,
    NumRegs,
    /// The dynamic shared memory a launch may ask for (set above 48 KiB).
    MaxDynamicSharedBytes,
}

impl Vendor {
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Cuda => "cuda",
            Vendor::Hip => "hip",
        }
    }

    /// `CUdevice_attribute` (cuda.h) / `hipDeviceAttribute_t`
    /// (hip_runtime_api.h, ROCm 5.x; unchanged for these in 6.x).
    pub(crate) fn attribute_id(self, a: DeviceAttr) -> i32 {
        match (self, a) {
            (Vendor::Cuda, DeviceAttr::MultiprocessorCount) => 16,
            (Vendor::Cuda, DeviceAttr::WarpSize) => 10,
            (Vendor::Cuda, DeviceAttr::MaxSharedPerBlock) => 8,
            (Vendor::Cuda, DeviceAttr::ComputeMajor) => 75,
            (Vendor::Cuda, DeviceAttr::ComputeMinor) => 76,
            (Vendor::Cuda, DeviceAttr::MemoryClockKhz) => 36,
            (Vendor::Cuda, DeviceAttr::MemoryBusBits) => 37,
            (Vendor::Hip, DeviceAttr::MultiprocessorCount) => 63,
            (Vendor::Hip, DeviceAttr::WarpSize) => 87,
            (Vendor::Hip, DeviceAttr::MaxSharedPerBlock) => 74,
            (Vendor::Hip, DeviceAttr::ComputeMajor) => 23,
            (Vendor::Hip, DeviceAttr::ComputeMinor) => 61,
            (Vendor::Hip, DeviceAttr::MemoryBusBits) => 59,
            (Vendor::Hip, DeviceAttr::MemoryClockKhz) => 60,
        }
    }

    /// `CUfunction_attribute` / `hipFunction_attribute`: the same numbers.
    pub(crate) fn func_attribute_id(self, a: FuncAttr) -> i32 {
        match a {
            FuncAttr::MaxThreadsPerBlock => 0,
            FuncAttr::SharedBytes => 1,
            FuncAttr::LocalBytes => 3,
            FuncAttr::NumRegs => 4,
            FuncAttr::MaxDynamicSharedBytes => 8,
        }
    }

    /// The out-of-memory code (CUDA_ERROR_OUT_OF_MEMORY, hipErrorOutOfMemory).
    pub(crate) fn oom_code(self) -> i32 {
        2
    }

    /// Codes meaning "this machine has no such device": CUDA_ERROR_NO_DEVICE
    /// / hipErrorNoDevice (100) and CUDA_ERROR_INVALID_DEVICE /
    /// hipErrorInvalidDevice (101, what hipInit returns with no GPU).
    pub(crate) fn is_no_device_code(self, code: i32) -> bool {
        code == 100 || code == 101
    }

    /// Oldest driver the layer supports, in the API's own version number:
    /// CUDA 11.4 (cuGraphInstantiateWithFlags, NVRTC cubin output), HIP 5.0
    /// (hipGraphInstantiateWithFlags, hiprtc with -O3 code objects).
    pub(crate) fn min_driver_version(self) -> i32 {
        match self {
            Vendor::Cuda => 11040,
            Vendor::Hip => 50_000_000,
        }
    }

    /// A driver version number as people write it.
    pub(crate) fn format_version(self, v: i32) -> String {
        match self {
            Vendor::Cuda => format!("{}.{}", v / 1000, (v % 1000) / 10),
            Vendor::Hip => format!("{}.{}.{}", v / 10_000_000, (v / 100_000) % 100, v % 100_000),
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
