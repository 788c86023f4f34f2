//! Compiling every kernel a compiled graph needs before the first step:
//! the specialized sources of `codegen::plan::kernel_sources`, compiled
//! in parallel (NVRTC/hiprtc are thread-safe) and loaded into the cache,
//! so that building the launches afterwards only looks them up. A cache
//! of an artifact's stored code objects has them all loaded already.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::artifact::progress::{Progress, Unit};
use crate::backend::Gpu;
use crate::codegen::plan::{kernel_sources, PlanOptions};
use crate::codegen::{CodegenError, KernelCache, KernelSource};
use crate::ir::Graph;

/// Compiles and loads every source `graph` needs into `cache`.
pub fn precompile(
    gpu: &Arc<Gpu>,
    cache: &KernelCache,
    graph: &Graph,
    opts: &PlanOptions,
    progress: &dyn Progress,
) -> Result<(), CodegenError> {
    if cache.is_stored() {
        return Ok(());
    }
    let started = Instant::now();
    let sources: Vec<KernelSource> = kernel_sources(graph, opts)?.into_values().collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(sources.len().max(1));
    progress.begin("kernels", sources.len() as u64, Unit::Items);
    let next = Mutex::new(0usize);
    let first_error: Mutex<Option<CodegenError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                    *n - 1
                };
                let Some(src) = sources.get(i) else { break };
                if let Err(e) = cache.module(gpu, src) {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e.into());
                    break;
                }
                progress.advance(1);
            });
        }
    });
    progress.end();
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    tracing::info!(
        "{} kernels ready in {:.2} s ({threads} threads)",
        sources.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
