//! Counters and histograms of the serving loop, written by the scheduler's
//! thread with relaxed atomics and read by anyone (the server's /metrics).
//! Rendered in Prometheus' text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A histogram of durations with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Observations above the last bucket's bound are only in `count`.
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| s <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Everything /metrics reports about the scheduler.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests_running: AtomicU64,
    pub requests_waiting: AtomicU64,
    pub requests_finished: [AtomicU64; 3],
    pub requests_rejected: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub prefix_cache_hit_tokens: AtomicU64,
    pub preemptions: AtomicU64,
    pub steps: AtomicU64,
    pub step_tokens: AtomicU64,
    pub kv_pages_total: AtomicU64,
    pub kv_pages_used: AtomicU64,
    pub kv_pages_cached: AtomicU64,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
    pub request_duration: Histogram,
}

/// The index of `requests_finished` for each finish reason.
pub fn finish_index(r: crate::sched::FinishReason) -> usize {
    match r {
        crate::sched::FinishReason::Stop => 0,
        crate::sched::FinishReason::Length => 1,
        crate::sched::FinishReason::Cancelled => 2,
    }
}

impl Metrics {
    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Relaxed)
    }

    /// Free KV pages: neither used by a sequence nor kept as prefix cache.
    pub fn kv_pages_free(&self) -> u64 {
        let total = self.kv_pages_total.load(Relaxed);
        total.saturating_sub(self.kv_pages_used.load(Relaxed) + self.kv_pages_cached.load(Relaxed))
    }

    /// The Prometheus text format of every metric, names prefixed `rfc_`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP rfc_{name} {help}\n# TYPE rfc_{name} {kind}\nrfc_{name} {v}"
            );
        };
        let g = |a: &AtomicU64| a.load(Relaxed);
        put(
            "requests_running",
            "gauge",
            "Requests whose sequence is in the running batch.",
            g(&self.requests_running),
        );
        put(
            "requests_waiting",
            "gauge",
            "Requests queued for admission (preempted ones included).",
            g(&self.requests_waiting),
        );
        put(
            "requests_rejected_total",
            "counter",
            "Requests refused before admission (queue full, shutting down).",
            g(&self.requests_rejected),
        );
        put(
            "prompt_tokens_total",
            "counter",
            "Prompt tokens of admitted requests.",
            g(&self.prompt_tokens),
        );
        put(
            "generation_tokens_total",
            "counter",
            "Tokens generated.",
            g(&self.generated_tokens),
        );
        put(
            "prefix_cache_hit_tokens_total",
            "counter",
            "Prompt tokens whose KV came from the prefix cache.",
            g(&self.prefix_cache_hit_tokens),
        );
        put(
            "preemptions_total",
            "counter",
            "Sequences preempted for KV memory (recomputed later).",
            g(&self.preemptions),
        );
        put(
            "steps_total",
            "counter",
            "Batched steps run.",
            g(&self.steps),
        );
        put(
            "step_tokens_total",
            "counter",
            "Tokens processed in steps (prefill and decode).",
            g(&self.step_tokens),
        );
        put(
            "kv_pages_total",
            "gauge",
            "KV-cache pages in the pool.",
            g(&self.kv_pages_total),
        );
        put(
            "kv_pages_used",
            "gauge",
            "KV-cache pages referenced by sequences.",
            g(&self.kv_pages_used),
        );
        put(
            "kv_pages_cached",
            "gauge",
            "KV-cache pages kept only as prefix cache (evictable).",
            g(&self.kv_pages_cached),
        );
        put(
            "kv_pages_free",
            "gauge",
            "KV-cache pages holding nothing.",
            self.kv_pages_free(),
        );
        let _ = writeln!(
            out,
            "# HELP rfc_requests_finished_total Requests ended, by finish reason.\n# TYPE rfc_requests_finished_total counter"
        );
        for (reason, a) in ["stop", "length", "cancelled"]
            .iter()
            .zip(&self.requests_finished)
        {
            let _ = writeln!(
                out,
                "rfc_requests_finished_total{{reason=\"{reason}\"}} {}",
                g(a)
            );
        }
        self.time_to_first_token.render(
            &mut out,
            "rfc_time_to_first_token_seconds",
            "Time from arrival to the first generated token.",
        );
        self.inter_token_latency.render(
            &mut out,
            "rfc_inter_token_latency_seconds",
            "Time between consecutive generated tokens of a sequence.",
        );
        self.request_duration.render(
            &mut out,
            "rfc_request_duration_seconds",
            "Time from arrival to the end of a request.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(1000));
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.005\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"0.05\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"300\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count 3\n"), "{s}");
    }

    #[test]
    fn render_names_every_family_once() {
        let m = Metrics::default();
        m.kv_pages_total.store(10, Relaxed);
        m.kv_pages_used.store(3, Relaxed);
        let text = m.render();
        assert!(text.contains("rfc_kv_pages_free 7\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }
}
