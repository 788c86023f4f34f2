//! Finding and opening the vendor runtimes at run time, and resolving their
//! entry points into plain function pointers.
//!
//! The libraries are opened once per process (see `driver_api` and
//! `rtc_api`) and never closed, so the resolved pointers stay valid for the
//! life of the process.

use std::path::{Path, PathBuf};

use libloading::Library;

use super::error::{BackendError, Result};

/// An opened runtime library and the name it was found under.
#[derive(Debug)]
pub(crate) struct RuntimeLibrary {
    lib: Library,
    pub(crate) path: String,
}

impl RuntimeLibrary {
    /// Opens the first candidate that loads. `env_override` names a
    /// variable whose value, when set, is the only candidate.
    pub(crate) fn open_first(
        what: &'static str,
        env_override: &str,
        candidates: &[String],
    ) -> Result<RuntimeLibrary> {
        let list: Vec<String> = match std::env::var(env_override) {
            Ok(p) if !p.is_empty() => vec![p],
            _ => candidates.to_vec(),
        };
        let mut reason = String::from("no candidates");
        for name in &list {
            // SAFETY: loading a vendor runtime runs its initialisers; these
            // libraries are designed to be dlopen'ed by applications.
            match unsafe { Library::new(name) } {
                Ok(lib) => {
                    tracing::debug!(library = %name, "opened {what}");
                    return Ok(RuntimeLibrary {
                        lib,
                        path: name.clone(),
                    });
                }
                Err(e) => reason = e.to_string(),
            }
        }
        Err(BackendError::LibraryNotFound {
            what,
            tried: list.join(", "),
            reason,
        })
    }

    /// The entry point `name` as a function pointer of type `F`.
    ///
    /// # Safety
    /// `F` must be the C signature of `name` in this library.
    pub(crate) unsafe fn function<F: Copy>(&self, name: &'static str) -> Result<F> {
        let sym: libloading::Symbol<F> =
            self.lib
                .get(name.as_bytes())
                .map_err(|_| BackendError::MissingSymbol {
                    library: self.path.clone(),
                    symbol: name,
                })?;
        Ok(*sym)
    }

    /// The address of the data symbol `name` (an object of type `T`).
    ///
    /// # Safety
    /// `name` must be an object of type `T` in this library; the pointer is
    /// valid while the library stays open.
    pub(crate) unsafe fn data<T>(&self, name: &'static str) -> Result<*const T> {
        self.function::<*const T>(name)
    }

    /// Like [`function`](Self::function), `None` when absent.
    ///
    /// # Safety
    /// As for [`function`](Self::function).
    pub(crate) unsafe fn optional<F: Copy>(&self, name: &'static str) -> Option<F> {
        self.lib.get::<F>(name.as_bytes()).ok().map(|s| *s)
    }
}

/// `names` as given (the loader searches its default paths), then each of
/// them inside `dirs`, then every file in `dirs` whose name starts with
/// `prefix` (versioned names such as libnvrtc.so.13.0.48), newest last.
pub(crate) fn candidates(names: &[&str], dirs: &[PathBuf], prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    for dir in dirs {
        for n in names {
            push_existing(&mut out, &dir.join(n));
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(prefix) && !f.contains("builtins"))
            })
            .collect();
        found.sort();
        for p in found {
            push_existing(&mut out, &p);
        }
    }
    out
}

fn push_existing(out: &mut Vec<String>, p: &Path) {
    let s = p.to_string_lossy().into_owned();
    if p.exists() && !out.contains(&s) {
        out.push(s);
    }
}

/// Directories named by environment variables (each `VAR/sub`), then fixed
/// install locations.
pub(crate) fn search_dirs(env_vars: &[&str], sub: &str, fixed: &[&str]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = env_vars
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| PathBuf::from(root).join(sub))
        .collect();
    dirs.extend(fixed.iter().map(PathBuf::from));
    dirs
}
