//! AMD code objects from a clang run as a subprocess, for `rfc compile
//! --target gfx*` on machines whose hiprtc does not know the target (ROCm
//! 5's aborts the process on gfx11) or that have no AMD runtime at all.
//!
//! The source is compiled the way hiprtc would compile it: hiprtc's own
//! prelude (`hiprtc_runtime.h`, read out of `libhiprtc-builtins`) instead
//! of the system HIP headers, `__HIPCC_RTC__` defined, device code only,
//! one unbundled ELF code object per kernel (what `hipModuleLoadData`
//! takes). ROCm 5.2's device libraries predate gfx11 and lack its ISA
//! version file; the one constant it holds is generated here (the gfx10
//! code paths of ocml/ockl then apply, as ../shared/AMD.md found).
//!
//! Supported: Debian 12's clang-15 with rocm-device-libs 5.2 and
//! libhiprtc-builtins5 (what CI installs), or a ROCm installation's own
//! clang (`/opt/rocm/llvm/bin/clang++`) with its device libraries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::error::{BackendError, Result};
use super::kernel_compiler::KernelCompiler;
use super::library::RuntimeLibrary;

/// A usable clang, device libraries and hiprtc prelude, with a private
/// working directory (removed on drop).
#[derive(Debug)]
pub struct OfflineClang {
    clang: PathBuf,
    version: String,
    work: PathBuf,
    /// Device libraries: links to the installed ones plus generated ISA
    /// version files.
    device_libs: PathBuf,
    header: PathBuf,
    serial: AtomicU64,
    /// Kernels compile in parallel: one thread writes a missing ISA file
    /// while the others wait, so none reads it half-written.
    isa_lock: Mutex<()>,
}

/// Why no offline compiler could be set up (names what is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAvailable(pub String);

impl std::fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const CLANGS: &[&str] = &[
    "/opt/rocm/llvm/bin/clang++",
    "clang++-15",
    "clang++-16",
    "clang++-17",
    "clang++-18",
    "clang++-19",
    "clang++",
];

const DEVICE_LIB_DIRS: &[&str] = &[
    "/opt/rocm/amdgcn/bitcode",
    "/usr/lib/x86_64-linux-gnu/amdgcn/bitcode",
    "/usr/lib/amdgcn/bitcode",
];

const BUILTINS_LIBS: &[&str] = &[
    "libhiprtc-builtins.so",
    "libhiprtc-builtins.so.6",
    "libhiprtc-builtins.so.5",
    "/opt/rocm/lib/libhiprtc-builtins.so",
];

impl OfflineClang {
    /// Finds clang (`RFC_CLANG` overrides the search), the device
    /// libraries (`RFC_ROCM_DEVICE_LIBS`) and hiprtc's prelude.
    pub fn find() -> std::result::Result<OfflineClang, NotAvailable> {
        let clang = find_clang()?;
        let version = clang_version(&clang)?;
        let libs = find_device_libs()?;
        let header = hiprtc_prelude()?;
        let work = std::env::temp_dir().join(format!(
            "rfc-offline-clang-{}-{}",
            std::process::id(),
            next_id()
        ));
        let device_libs = work.join("devlibs");
        let setup = || -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(&device_libs)?;
            for entry in std::fs::read_dir(&libs)? {
                let entry = entry?;
                std::os::unix::fs::symlink(entry.path(), device_libs.join(entry.file_name()))?;
            }
            let h = work.join("hiprtc_runtime.h");
            std::fs::write(&h, &header)?;
            Ok(h)
        };
        let header = setup().map_err(|e| {
            let _ = std::fs::remove_dir_all(&work);
            NotAvailable(format!(
                "offline clang work directory {}: {e}",
                work.display()
            ))
        })?;
        tracing::info!(clang = %clang.display(), %version, device_libs = %libs.display(), "offline AMD compiler");
        Ok(OfflineClang {
            clang,
            version,
            work,
            device_libs,
            header,
            serial: AtomicU64::new(0),
            isa_lock: Mutex::new(()),
        })
    }

    /// Makes sure the device libraries have the ISA version file of `arch`.
    fn ensure_isa_file(&self, arch: &str) -> Result<()> {
        let Some(isa) = isa_version(arch) else {
            return Err(self.error("", arch, format!("{arch} is not an AMD GPU name")));
        };
        let file = self
            .device_libs
            .join(format!("oclc_isa_version_{}.bc", &arch[3..]));
        let _one_writer = self.isa_lock.lock().unwrap_or_else(|p| p.into_inner());
        if file.exists() {
            return Ok(());
        }
        let ll = self.work.join(format!("isa_{arch}.ll"));
        let text = format!(
            "target triple = \"amdgcn-amd-amdhsa\"\n\
             @__oclc_ISA_version = linkonce_odr protected local_unnamed_addr addrspace(4) constant i32 {isa}, align 4\n"
        );
        std::fs::write(&ll, text).map_err(|e| self.error("", arch, e.to_string()))?;
        let out = Command::new(&self.clang)
            .args([
                "-target",
                "amdgcn-amd-amdhsa",
                "-nogpulib",
                "-c",
                "-emit-llvm",
            ])
            .arg(&ll)
            .arg("-o")
            .arg(&file)
            .output()
            .map_err(|e| self.error("", arch, format!("running {}: {e}", self.clang.display())))?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(self.error("", arch, format!("ISA version file: {log}")));
        }
        Ok(())
    }

    fn error(&self, kernel: &str, target: &str, log: String) -> BackendError {
        BackendError::Compile {
            kernel: kernel.to_string(),
            target: target.to_string(),
            log: format!("{} ({}): {log}", self.clang.display(), self.version),
        }
    }
}

impl KernelCompiler for OfflineClang {
    fn version_string(&self) -> String {
        format!("{} (offline)", self.version)
    }

    /// `options` are the runtime compiler's; clang gets the equivalent
    /// flags of hiprtc's environment instead (the cache key still covers
    /// them and this compiler's version).
    fn compile(
        &self,
        name: &str,
        source: &str,
        _options: &[String],
        target: &str,
    ) -> Result<Vec<u8>> {
        self.ensure_isa_file(target)?;
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let src = self.work.join(format!("k{n}.hip"));
        let out = self.work.join(format!("k{n}.co"));
        std::fs::write(&src, source).map_err(|e| self.error(name, target, e.to_string()))?;
        // clang leaves an empty directory per HIP compile in TMPDIR
        // (<source>-XXXXXX): keep them in the work directory, removed on drop.
        let run = Command::new(&self.clang)
            .env("TMPDIR", &self.work)
            .args(["-x", "hip", "-std=c++17", "-O3", "--cuda-device-only"])
            .arg("--no-gpu-bundle-output")
            .arg(format!("--offload-arch={target}"))
            .arg(format!(
                "--rocm-device-lib-path={}",
                self.device_libs.display()
            ))
            .args(["-nogpuinc", "-D__HIPCC_RTC__", "-mcumode", "-include"])
            .arg(&self.header)
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .output();
        let result = match run {
            Err(e) => Err(self.error(name, target, format!("could not run: {e}"))),
            Ok(o) if !o.status.success() => Err(self.error(
                name,
                target,
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )),
            Ok(_) => std::fs::read(&out).map_err(|e| self.error(name, target, e.to_string())),
        };
        let _ = std::fs::remove_file(&src);
        let _ = std::fs::remove_file(&out);
        result
    }
}

impl Drop for OfflineClang {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn find_clang() -> std::result::Result<PathBuf, NotAvailable> {
    if let Some(p) = std::env::var_os("RFC_CLANG") {
        return Ok(PathBuf::from(p));
    }
    CLANGS.iter().find_map(|c| on_path(c)).ok_or_else(|| {
        NotAvailable(format!(
            "no clang found (tried {}; set RFC_CLANG)",
            CLANGS.join(", ")
        ))
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// The first line of `clang --version`, shortened to `clang 15.0.6`.
fn clang_version(clang: &Path) -> std::result::Result<String, NotAvailable> {
    let out = Command::new(clang)
        .arg("--version")
        .output()
        .map_err(|e| NotAvailable(format!("running {}: {e}", clang.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let version = first
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .ok_or_else(|| NotAvailable(format!("{} --version said {first:?}", clang.display())))?;
    Ok(format!("clang {version}"))
}

fn find_device_libs() -> std::result::Result<PathBuf, NotAvailable> {
    let candidates: Vec<PathBuf> = match std::env::var_os("RFC_ROCM_DEVICE_LIBS") {
        Some(p) => vec![PathBuf::from(p)],
        None => DEVICE_LIB_DIRS.iter().map(PathBuf::from).collect(),
    };
    candidates
        .iter()
        .find(|d| d.join("ocml.bc").is_file())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
            NotAvailable(format!(
                "no ROCm device libraries (ocml.bc) in {} (Debian: rocm-device-libs; or set RFC_ROCM_DEVICE_LIBS)",
                tried.join(", ")
            ))
        })
}

/// hiprtc's builtin prelude, as the library that hiprtc itself reads it
/// from exports it (`__hipRTC_header`, `__hipRTC_header_size`).
fn hiprtc_prelude() -> std::result::Result<Vec<u8>, NotAvailable> {
    let candidates: Vec<String> = BUILTINS_LIBS.iter().map(|s| s.to_string()).collect();
    let lib = RuntimeLibrary::open_first("hiprtc builtins", "RFC_HIPRTC_BUILTINS_LIB", &candidates)
        .map_err(|e| {
            NotAvailable(format!(
                "hiprtc's prelude: {e} (Debian: libhiprtc-builtins5)"
            ))
        })?;
    // SAFETY: both are data symbols of that library: a u32 byte count and
    // the first byte of an array of that many bytes; the library is never
    // unloaded while they are read (RuntimeLibrary is dropped after).
    unsafe {
        let size = lib
            .data::<u32>("__hipRTC_header_size")
            .map_err(|e| NotAvailable(e.to_string()))?;
        let start = lib
            .data::<u8>("__hipRTC_header")
            .map_err(|e| NotAvailable(e.to_string()))?;
        Ok(std::slice::from_raw_parts(start, *size as usize).to_vec())
    }
}

/// `__oclc_ISA_version` of an AMD GPU name: gfx1100 → 11000, gfx90a →
/// 9010 (major, minor, stepping; the stepping is a hex digit).
pub fn isa_version(arch: &str) -> Option<u32> {
    let digits = arch.strip_prefix("gfx")?;
    if digits.len() < 3 || !digits.is_ascii() {
        return None;
    }
    let (major, rest) = digits.split_at(digits.len() - 2);
    let major: u32 = major.parse().ok()?;
    let minor = rest[..1].parse::<u32>().ok()?;
    let step = u32::from_str_radix(&rest[1..], 16).ok()?;
    Some(major * 1000 + minor * 100 + step)
}

#[cfg(test)]
mod tests {
    use super::isa_version;

    #[test]
    fn isa_versions_follow_the_device_library_names() {
        assert_eq!(isa_version("gfx1100"), Some(11000));
        assert_eq!(isa_version("gfx1030"), Some(10300));
        assert_eq!(isa_version("gfx90a"), Some(9010));
        assert_eq!(isa_version("gfx906"), Some(9006));
        assert_eq!(isa_version("sm_90"), None);
        assert_eq!(isa_version("gfx1x0"), None);
    }
}
