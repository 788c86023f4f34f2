//! Compiling specialized sources once: code objects are cached on disk by
//! content hash (source text, options, target, compiler version) and
//! loaded modules are kept in memory for the process.
//!
//! A cache made [`from_stored`](KernelCache::from_stored) (an artifact's
//! code objects) never compiles: every module is loaded up front with the
//! driver, looked up by the hash of its source text, and a source that is
//! not among them is an error. The runtime compiler is never loaded then.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::cache_entry;
use super::source::KernelSource;
use super::target::Target;
use crate::backend::{BackendError, Gpu, Kernel, KernelCompiler, Module, Result};

/// The compile-and-load cache of one process.
pub struct KernelCache {
    dir: Option<PathBuf>,
    modules: Mutex<HashMap<String, Arc<Module>>>,
    /// Loaded from stored code objects only (no compiler).
    stored: bool,
}

impl KernelCache {
    /// A cache storing code objects under `dir` (`None`: memory only).
    pub fn new(dir: Option<PathBuf>) -> KernelCache {
        KernelCache {
            dir,
            modules: Mutex::new(HashMap::new()),
            stored: false,
        }
    }

    /// A cache holding exactly `objects` (source text, code object), each
    /// loaded on `gpu` now with the driver; it compiles nothing.
    pub fn from_stored<'a>(
        gpu: &Arc<Gpu>,
        objects: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<KernelCache> {
        let mut modules = HashMap::new();
        for (text, code) in objects {
            modules.insert(text_key(text), Arc::new(Module::load(gpu, code)?));
        }
        Ok(KernelCache {
            dir: None,
            modules: Mutex::new(modules),
            stored: true,
        })
    }

    /// Whether this cache only serves stored code objects.
    pub fn is_stored(&self) -> bool {
        self.stored
    }

    /// Loaded modules.
    pub fn loaded(&self) -> usize {
        self.lock().len()
    }

    /// `$RFC_CACHE_DIR`, else `$XDG_CACHE_HOME/rfc/kernels`, else
    /// `~/.cache/rfc/kernels`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("RFC_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("rfc").join("kernels"))
    }

    /// A cache in [`default_dir`](Self::default_dir).
    pub fn with_default_dir() -> KernelCache {
        KernelCache::new(Self::default_dir())
    }

    /// The code object of `src` for `target`: from disk if compiled before,
    /// else compiled now (and stored).
    pub fn code_object(
        &self,
        compiler: &dyn KernelCompiler,
        target: &Target,
        src: &KernelSource,
    ) -> Result<Vec<u8>> {
        let options = target.compile_options();
        let key = src.cache_key(&options, target.arch(), &compiler.version_string());
        let path = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}-{key}.bin", src.template.file())));
        if let Some(p) = &path {
            if let Ok(bytes) = std::fs::read(p) {
                match cache_entry::open(&bytes) {
                    Ok(code) => {
                        tracing::debug!(kernel = %src.label, path = %p.display(), "kernel cache hit");
                        return Ok(code.to_vec());
                    }
                    // Recompiled below, and the entry rewritten.
                    Err(why) => tracing::warn!(
                        kernel = %src.label,
                        path = %p.display(),
                        "kernel cache entry unusable ({why}): compiling again"
                    ),
                }
            }
        }
        let started = std::time::Instant::now();
        let code = compiler.compile(&src.label, &src.text(), &options, target.arch())?;
        tracing::debug!(kernel = %src.label, ms = started.elapsed().as_millis() as u64, "compiled");
        if let Some(p) = &path {
            if let Err(e) = store(p, &code) {
                // A read-only cache costs time, not correctness.
                tracing::warn!("not caching kernel {}: {e}", src.label);
            }
        }
        Ok(code)
    }

    /// The loaded module of `src` on `gpu` (compiled and loaded once).
    pub fn module(&self, gpu: &Arc<Gpu>, src: &KernelSource) -> Result<Arc<Module>> {
        if self.stored {
            return self
                .lock()
                .get(&text_key(&src.text()))
                .cloned()
                .ok_or_else(|| BackendError::NotStored {
                    kernel: src.label.clone(),
                });
        }
        let target = Target::of(gpu.info());
        let compiler = gpu.compiler()?;
        let key = src.cache_key(
            &target.compile_options(),
            target.arch(),
            &compiler.version_string(),
        );
        if let Some(m) = self.lock().get(&key) {
            return Ok(m.clone());
        }
        let code = self.code_object(compiler, &target, src)?;
        let module = Arc::new(Module::load(gpu, &code)?);
        self.lock().insert(key, module.clone());
        Ok(module)
    }

    /// Entry point `entry` of `src`.
    pub fn kernel(&self, gpu: &Arc<Gpu>, src: &KernelSource, entry: &str) -> Result<Kernel> {
        self.module(gpu, src)?.kernel(entry)
    }

    /// Drops the loaded modules (kernels already handed out keep theirs).
    pub fn clear_loaded(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Module>>> {
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The key of a stored code object: the SHA-256 of its source text (the
/// text names the template, every constant and the target's prelude).
fn text_key(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes atomically: a temporary file renamed into place, so a crash or
/// a concurrent writer never leaves a truncated code object.
fn store(path: &Path, code: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| BackendError::Cache {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("k")
    ));
    std::fs::write(&tmp, cache_entry::seal(code)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::KernelCompiler;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Compiles every source to the same bytes, counting the calls.
    struct Counting(AtomicUsize);

    impl KernelCompiler for Counting {
        fn version_string(&self) -> String {
            "counting 1.0".into()
        }
        fn compile(&self, _: &str, _: &str, _: &[String], _: &str) -> Result<Vec<u8>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(b"\x7fELF good code".to_vec())
        }
    }

    fn source() -> KernelSource {
        KernelSource::new(super::super::source::Template::MatVec, "k", &["k"])
    }

    #[test]
    fn a_damaged_cache_entry_is_compiled_again_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KernelCache::new(Some(dir.path().to_path_buf()));
        let compiler = Counting(AtomicUsize::new(0));
        let target = Target::parse("gfx1100").unwrap();
        let first = cache.code_object(&compiler, &target, &source()).unwrap();
        assert_eq!(compiler.0.load(Ordering::SeqCst), 1);
        let entry = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // A hit: not compiled again.
        assert_eq!(
            cache.code_object(&compiler, &target, &source()).unwrap(),
            first
        );
        assert_eq!(compiler.0.load(Ordering::SeqCst), 1);
        for damage in [b"garbage garbage garbage".to_vec(), vec![0x7f]] {
            std::fs::write(&entry, damage).unwrap();
            let again = cache.code_object(&compiler, &target, &source()).unwrap();
            assert_eq!(again, first);
            assert!(cache_entry::open(&std::fs::read(&entry).unwrap()).is_ok());
        }
        assert_eq!(compiler.0.load(Ordering::SeqCst), 3);
    }
}
