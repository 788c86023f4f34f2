//! What turns a specialized kernel source into a code object the driver
//! loads: the runtime compilers (NVRTC, hiprtc) and, for AMD targets the
//! installed hiprtc does not know, an offline clang run as a subprocess.

use super::error::Result;
use super::rtc_api::RtcApi;

/// A compiler of kernel sources into loadable code objects.
pub trait KernelCompiler: Send + Sync {
    /// Names the compiler and its version (`"nvrtc 13.0"`, `"clang 15.0.6
    /// (offline)"`): part of every cache key and of an artifact's header.
    fn version_string(&self) -> String;

    /// Compiles `source` (entry points `extern "C"`) for `target` (an
    /// `sm_*` or `gfx*` name). A compile error carries the compiler's log
    /// and the kernel's name.
    fn compile(
        &self,
        name: &str,
        source: &str,
        options: &[String],
        target: &str,
    ) -> Result<Vec<u8>>;
}

impl KernelCompiler for RtcApi {
    fn version_string(&self) -> String {
        RtcApi::version_string(self)
    }

    fn compile(
        &self,
        name: &str,
        source: &str,
        options: &[String],
        target: &str,
    ) -> Result<Vec<u8>> {
        RtcApi::compile(self, name, source, options, target)
    }
}
