//! Captured graphs: a stream's launches recorded once and replayed with one
//! call (the executor's per-step plan on GPU).

use std::sync::Arc;

use super::driver_api::Handle;
use super::error::Result;
use super::gpu::Gpu;
use super::stream::Stream;

/// `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL` / `hipStreamCaptureModeThreadLocal`:
/// other threads' unsafe calls do not invalidate this capture.
const CAPTURE_THREAD_LOCAL: i32 = 1;

/// A capture in progress on a stream. Dropping it without [`finish`]
/// ends the capture and discards what was recorded.
///
/// [`finish`]: Capture::finish
pub struct Capture<'s> {
    stream: &'s Stream,
    done: bool,
}

impl<'s> Capture<'s> {
    /// Starts recording `stream`'s work instead of running it.
    pub fn begin(stream: &'s Stream) -> Result<Capture<'s>> {
        let gpu = stream.gpu();
        let api = gpu.api();
        gpu.call("stream_begin_capture", || unsafe {
            (api.fns.stream_begin_capture)(stream.handle, CAPTURE_THREAD_LOCAL)
        })?;
        Ok(Capture {
            stream,
            done: false,
        })
    }

    /// Ends the capture and instantiates the recorded graph.
    pub fn finish(mut self) -> Result<GraphExec> {
        self.done = true;
        let graph = end_capture(self.stream)?;
        let gpu = self.stream.gpu();
        let api = gpu.api();
        let mut exec: Handle = std::ptr::null_mut();
        let r = gpu.call("graph_instantiate", || unsafe {
            (api.fns.graph_instantiate)(&mut exec, graph, 0)
        });
        if let Err(e) = r {
            destroy_graph(gpu, graph);
            return Err(e);
        }
        Ok(GraphExec {
            gpu: gpu.clone(),
            graph,
            exec,
        })
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        if !self.done {
            match end_capture(self.stream) {
                Ok(g) => destroy_graph(self.stream.gpu(), g),
                Err(e) => tracing::warn!("ending an abandoned capture: {e}"),
            }
        }
    }
}

fn end_capture(stream: &Stream) -> Result<Handle> {
    let gpu = stream.gpu();
    let api = gpu.api();
    let mut graph: Handle = std::ptr::null_mut();
    gpu.call("stream_end_capture", || unsafe {
        (api.fns.stream_end_capture)(stream.handle, &mut graph)
    })?;
    Ok(graph)
}

fn destroy_graph(gpu: &Gpu, graph: Handle) {
    let api = gpu.api();
    if let Err(e) = gpu.call("graph_destroy", || unsafe {
        (api.fns.graph_destroy)(graph)
    }) {
        tracing::warn!("destroying a graph: {e}");
    }
}

/// An instantiated graph, replayable on any stream of its device.
pub struct GraphExec {
    gpu: Arc<Gpu>,
    graph: Handle,
    exec: Handle,
}

// SAFETY: graph handles are process-wide; launches are serialised by the
// stream they are queued on.
unsafe impl Send for GraphExec {}
unsafe impl Sync for GraphExec {}

impl GraphExec {
    /// Queues one replay on `stream`.
    pub fn launch(&self, stream: &Stream) -> Result<()> {
        let api = self.gpu.api();
        self.gpu.call("graph_launch", || unsafe {
            (api.fns.graph_launch)(self.exec, stream.handle)
        })
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        let api = self.gpu.api();
        if let Err(e) = self.gpu.call("graph_exec_destroy", || unsafe {
            (api.fns.graph_exec_destroy)(self.exec)
        }) {
            tracing::warn!("destroying a graph exec: {e}");
        }
        destroy_graph(&self.gpu, self.graph);
    }
}
