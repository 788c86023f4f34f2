//! The GPU code objects an artifact carries: every specialized kernel the
//! compiled graph needs (codegen's `kernel_sources`), compiled for the
//! target through the disk-cached runtime compiler, or, for AMD targets
//! the installed hiprtc does not know, an offline clang.

use rayon::prelude::*;

use crate::backend::{KernelCompiler, OfflineClang, RtcApi, Vendor};
use crate::codegen::plan::{kernel_sources, node_sources, PlanOptions};
use crate::codegen::{CodegenError, KernelCache, Target};
use crate::ir::{Graph, NodeId};

use super::error::{ArtifactError, Result};
use super::progress::{Progress, Unit};
use super::read::StoredKernel;

/// One compiled kernel with the source it was compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelObject {
    /// codegen's label (what the specialization is for).
    pub label: String,
    /// The `extern "C"` entry points, space-separated.
    pub entries: String,
    pub source: String,
    /// The code object the driver loads (cubin / AMDGPU code object).
    pub code: Vec<u8>,
}

/// Compiles every kernel `g` needs for `target`, and returns them with the
/// compiler's version (`"nvrtc 12.4"`).
pub fn compile_kernels(
    g: &Graph,
    target: &Target,
    page_size: u32,
    progress: &dyn Progress,
) -> Result<(Vec<KernelObject>, String)> {
    let sources = kernel_sources(g, &PlanOptions::for_target(page_size, target))?;
    let offline;
    let compiler: &dyn KernelCompiler = match choose_compiler(target)? {
        Chosen::Runtime(rtc) => rtc,
        Chosen::Offline(clang) => {
            offline = clang;
            &offline
        }
    };
    let cache = KernelCache::with_default_dir();
    progress.begin("compiling kernels", sources.len() as u64, Unit::Items);
    // Independent compiles, in parallel (hiprtc serializes itself); the
    // order of `sources` is kept, so the artifact's bytes do not depend on
    // the scheduling.
    let out = sources
        .par_iter()
        .map(|(label, src)| {
            let code = cache
                .code_object(compiler, target, src)
                .map_err(CodegenError::from)?;
            if code.is_empty() {
                return Err(ArtifactError::KernelsUnavailable {
                    target: target.to_string(),
                    reason: format!("the compiler gave an empty code object for {label}"),
                });
            }
            progress.advance(1);
            Ok(KernelObject {
                label: label.clone(),
                entries: src.entries.join(" "),
                source: src.text(),
                code,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    progress.end();
    tracing::info!(kernels = out.len(), %target, "kernels compiled");
    Ok((out, compiler.version_string()))
}

enum Chosen {
    Runtime(&'static RtcApi),
    Offline(OfflineClang),
}

/// The vendor's runtime compiler when it knows `target`; for AMD targets
/// it does not know (ROCm 5's hiprtc and gfx11), or with no hiprtc at all,
/// an offline clang.
fn choose_compiler(target: &Target) -> Result<Chosen> {
    let runtime = RtcApi::get(target.vendor());
    match (&runtime, target.vendor()) {
        (Ok(rtc), _) if rtc.knows_target(target.arch()) => return Ok(Chosen::Runtime(rtc)),
        (Err(e), Vendor::Cuda) => {
            return Err(ArtifactError::KernelsUnavailable {
                target: target.to_string(),
                reason: format!("no runtime compiler: {e}"),
            })
        }
        _ => {}
    }
    let why_not_runtime = match runtime {
        Ok(rtc) => format!(
            "{} ({}) does not know {target}",
            rtc.version_string(),
            rtc.library
        ),
        Err(e) => format!("no hiprtc: {e}"),
    };
    match OfflineClang::find() {
        Ok(clang) => {
            tracing::info!(%target, compiler = %clang.version_string(), "{why_not_runtime}: compiling offline");
            Ok(Chosen::Offline(clang))
        }
        Err(e) => Err(ArtifactError::KernelsUnavailable {
            target: target.to_string(),
            reason: format!("{why_not_runtime}, and no offline clang: {e}"),
        }),
    }
}

/// The kernel labels node `id` launches on a GPU target.
pub fn node_kernels(g: &Graph, id: NodeId, opts: &PlanOptions) -> Result<Vec<String>> {
    Ok(node_sources(g, id, opts)?
        .into_iter()
        .map(|s| s.label)
        .collect())
}

/// Checks that `stored` holds a code object for every kernel `g` needs
/// (by exact source text): a missing one is named before anything is
/// allocated on a device.
pub fn require_stored(g: &Graph, opts: &PlanOptions, stored: &[StoredKernel<'_>]) -> Result<()> {
    let have: std::collections::HashSet<&str> = stored.iter().map(|k| k.source).collect();
    for (label, src) in kernel_sources(g, opts)? {
        if !have.contains(src.text().as_str()) {
            return Err(ArtifactError::MissingKernel { label });
        }
    }
    Ok(())
}
