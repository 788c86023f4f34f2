//! The driver layer's one error type: every failed call names the call and
//! the code's name, so a user can look it up in the vendor's documentation.

use thiserror::Error;

use super::vendor::Vendor;

#[derive(Debug, Clone, Error)]
pub enum BackendError {
    /// No candidate file of a runtime library could be opened.
    #[error("{what} not found (tried {tried}); last error: {reason}")]
    LibraryNotFound {
        what: &'static str,
        tried: String,
        reason: String,
    },

    /// The library opened but lacks an entry point the layer uses: usually
    /// a driver or runtime older than the layer supports.
    #[error("{library} has no symbol {symbol} (driver or runtime too old?)")]
    MissingSymbol {
        library: String,
        symbol: &'static str,
    },

    #[error("{vendor} driver version {found} is older than the oldest supported ({required})")]
    DriverTooOld {
        vendor: Vendor,
        found: String,
        required: String,
    },

    /// The runtime loaded but sees no device (e.g. hipInit → 101,
    /// hipGetDeviceCount → 100 on a machine without an AMD GPU).
    #[error("no {vendor} device: {detail}")]
    NoDevice { vendor: Vendor, detail: String },

    #[error("{vendor} device {ordinal} does not exist ({count} found)")]
    NoSuchDevice {
        vendor: Vendor,
        ordinal: u32,
        count: u32,
    },

    /// A driver call returned an error code.
    #[error("{call} failed: {name} ({code})")]
    Call {
        call: &'static str,
        code: i32,
        name: String,
    },

    /// An allocation did not fit (the driver's out-of-memory code, or an
    /// injected fault: see `backend::fault`).
    #[error("out of device memory: {call} of {bytes} bytes failed ({detail})")]
    OutOfMemory {
        call: &'static str,
        bytes: usize,
        detail: String,
    },

    /// A kernel did not compile; `log` is the compiler's own output.
    #[error("kernel {kernel} failed to compile for {target}:\n{log}")]
    Compile {
        kernel: String,
        target: String,
        log: String,
    },

    /// A host buffer does not match the device buffer it is copied to/from.
    #[error("{what}: expected {expected} bytes, found {found}")]
    SizeMismatch {
        what: &'static str,
        expected: usize,
        found: usize,
    },

    /// A launch or copy asked for something the layer can tell is wrong
    /// before calling the driver (an offset past a buffer's end, ...).
    #[error("invalid request: {0}")]
    Invalid(String),

    #[error("bad --device value {spec:?}: {reason}")]
    BadDeviceSpec { spec: String, reason: String },

    /// A kernel was asked of a cache holding only an artifact's code
    /// objects, and the artifact has none for it.
    #[error("kernel {kernel} is not among the artifact's code objects (compile the artifact again with this rfc)")]
    NotStored { kernel: String },

    /// The disk cache of compiled kernels could not be read or written.
    #[error("kernel cache {path}: {reason}")]
    Cache { path: String, reason: String },
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
