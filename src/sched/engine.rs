//! The step loop on its own thread. Clients submit requests and get events
//! back through their sinks; nothing a client does blocks a step, and no
//! step blocks a client: submissions and cancellations cross over a
//! channel that the loop drains between steps, and it sleeps on that
//! channel when there is no work.
//!
//! The backend is made on the loop's thread by a loader (a GPU context is
//! bound to the thread that uses it), so a server answers (503, loading)
//! while the model loads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use super::request::{EventSink, GenRequest};
use super::scheduler::{Scheduler, SchedulerConfig, SubmitError};
use crate::exec::session::{StepBackend, StepLimits};
use crate::tokenizer::Tokenizer;

/// A request's number, unique within one engine.
pub type RequestId = u64;

/// What the loader hands the loop: the backend, the tokenizer, and
/// whatever the clients want to know about the model (`I`).
pub struct Loaded<B, I> {
    pub backend: B,
    pub tokenizer: Arc<Tokenizer>,
    pub info: I,
}

/// The model as clients see it once loaded.
pub struct Ready<I> {
    pub info: I,
    pub tokenizer: Arc<Tokenizer>,
    pub limits: StepLimits,
    pub vocab: usize,
    /// The longest sequence (prompt and generated tokens) one request can
    /// reach: the plan's context, or the whole KV pool if smaller.
    pub context: usize,
}

/// Where the engine is.
pub enum EngineStatus<'a, I> {
    Loading,
    Ready(&'a Ready<I>),
    Failed(&'a str),
}

enum Command {
    Submit {
        id: RequestId,
        req: GenRequest,
        sink: Box<dyn EventSink>,
    },
    Cancel(RequestId),
    Shutdown(Instant),
}

/// A handle on the step loop; cheap to share behind an `Arc`.
pub struct Engine<I> {
    tx: Mutex<mpsc::Sender<Command>>,
    state: Arc<OnceLock<Result<Ready<I>, String>>>,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
    max_queue: usize,
    shutting_down: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<I: Send + Sync + 'static> Engine<I> {
    /// Starts the loop thread; it runs `load` first, then serves.
    pub fn spawn<B, L, E>(cfg: SchedulerConfig, load: L) -> Engine<I>
    where
        B: StepBackend + 'static,
        L: FnOnce() -> Result<Loaded<B, I>, E> + Send + 'static,
        E: std::fmt::Display,
    {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(OnceLock::new());
        let metrics = Arc::new(Metrics::default());
        let max_queue = cfg.max_queue;
        let thread = {
            let (state, metrics) = (state.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("rfc-steps".into())
                .spawn(move || run_loop(cfg, load, rx, state, metrics))
                .expect("the step thread starts")
        };
        Engine {
            tx: Mutex::new(tx),
            state,
            metrics,
            next_id: AtomicU64::new(1),
            max_queue,
            shutting_down: AtomicBool::new(false),
            thread: Mutex::new(Some(thread)),
        }
    }

    pub fn status(&self) -> EngineStatus<'_, I> {
        match self.state.get() {
            None => EngineStatus::Loading,
            Some(Ok(r)) => EngineStatus::Ready(r),
            Some(Err(e)) => EngineStatus::Failed(e),
        }
    }

    /// The loaded model, or `None` while loading (or after a failed load).
    pub fn ready(&self) -> Option<&Ready<I>> {
        match self.state.get() {
            Some(Ok(r)) => Some(r),
            _ => None,
        }
    }

    /// Blocks until the model is loaded or failed to load.
    pub fn wait_ready(&self) -> Result<&Ready<I>, String> {
        loop {
            match self.status() {
                EngineStatus::Ready(r) => return Ok(r),
                EngineStatus::Failed(e) => return Err(e.to_string()),
                EngineStatus::Loading => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Queues `req`; its events go to `sink`. Checked here, so that a bad
    /// request is refused before it reaches the loop.
    pub fn submit(
        &self,
        req: GenRequest,
        sink: Box<dyn EventSink>,
    ) -> Result<RequestId, SubmitError> {
        if self.shutting_down.load(Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        let ready = match self.status() {
            EngineStatus::Ready(r) => r,
            EngineStatus::Loading => return Err(SubmitError::Loading),
            EngineStatus::Failed(e) => return Err(SubmitError::Failed(e.to_string())),
        };
        super::scheduler::check_request(&req, ready.vocab, ready.context)?;
        let queued = Metrics::get(&self.metrics.requests_waiting);
        if queued as usize >= self.max_queue {
            self.metrics.requests_rejected.fetch_add(1, Relaxed);
            return Err(SubmitError::QueueFull {
                queued: queued as usize,
            });
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        // Counted here so that a burst of submissions sees the queue grow
        // before the loop takes them in.
        self.metrics.requests_waiting.fetch_add(1, Relaxed);
        let sent = self
            .tx
            .lock()
            .map_err(|_| SubmitError::ShuttingDown)?
            .send(Command::Submit { id, req, sink });
        if sent.is_err() {
            self.metrics.requests_waiting.fetch_sub(1, Relaxed);
            return Err(SubmitError::ShuttingDown);
        }
        Ok(id)
    }

    /// Ends request `id` within one step (it gets `Done` with
    /// `Cancelled`). Unknown or finished ids are ignored.
    pub fn cancel(&self, id: RequestId) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Command::Cancel(id));
        }
    }

    /// Stops taking requests, lets the running ones finish until
    /// `deadline`, cancels what is left, and joins the loop.
    pub fn shutdown(&self, deadline: Instant) {
        self.shutting_down.store(true, Relaxed);
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Command::Shutdown(deadline));
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl<I> Drop for Engine<I> {
    fn drop(&mut self) {
        self.shutting_down.store(true, Relaxed);
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Command::Shutdown(Instant::now()));
        }
        if let Some(h) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = h.join();
        }
    }
}

fn run_loop<B, I, L, E>(
    cfg: SchedulerConfig,
    load: L,
    rx: mpsc::Receiver<Command>,
    state: Arc<OnceLock<Result<Ready<I>, String>>>,
    metrics: Arc<Metrics>,
) where
    B: StepBackend,
    L: FnOnce() -> Result<Loaded<B, I>, E>,
    E: std::fmt::Display,
{
    let loaded = match load() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the model did not load: {e}");
            let _ = state.set(Err(e.to_string()));
            // Answer whatever arrives until the handle goes away.
            for cmd in rx {
                match cmd {
                    Command::Submit { mut sink, .. } => {
                        metrics.requests_waiting.fetch_sub(1, Relaxed);
                        sink.send(super::Event::Error(format!("the model did not load: {e}")));
                    }
                    Command::Cancel(_) => {}
                    Command::Shutdown(_) => break,
                }
            }
            return;
        }
    };
    let mut sched = Scheduler::new(loaded.backend, loaded.tokenizer.clone(), cfg, metrics);
    let limits = sched.limits();
    let _ = state.set(Ok(Ready {
        info: loaded.info,
        tokenizer: loaded.tokenizer,
        limits,
        vocab: sched.vocab(),
        context: sched.context(),
    }));
    let mut deadline: Option<Instant> = None;
    loop {
        // Sleep on the channel only when there is nothing to run.
        let first = if sched.has_work() {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        } else if deadline.is_some() {
            break;
        } else {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        for cmd in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match cmd {
                Command::Submit { id, req, sink } => {
                    if deadline.is_some() {
                        sched.reject(sink, "the server is shutting down");
                    } else {
                        sched.add(id, req, sink);
                    }
                }
                Command::Cancel(id) => sched.cancel(id),
                Command::Shutdown(at) => {
                    sched.drop_waiting();
                    deadline = Some(at);
                }
            }
        }
        if let Some(at) = deadline {
            if Instant::now() >= at {
                sched.cancel_all();
                break;
            }
        }
        if sched.has_work() {
            if let Err(e) = sched.step() {
                tracing::error!("step failed: {e}");
                sched.fail_running(&e.to_string());
            }
        }
    }
    sched.cancel_all();
}
