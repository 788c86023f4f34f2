//! The memory plan as stored in `rfc.plan` (JSON). Node ids are the `%N`
//! numbers of the stored IR text, so the plan maps back onto the graph that
//! text parses into, whatever ids the original graph had.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::error::{ArtifactError, Result};
use crate::ir::{text, DimEnv, Graph, NodeId};
use crate::passes::plan_memory::ALIGN;
use crate::passes::{MemoryPlan, Slot};

/// The placement orders `plan_memory` tries (its names are `&'static`).
const STRATEGIES: [&str; 4] = ["first_use", "size", "lifetime", "size_x_lifetime"];

/// Caps on the limits a stored plan may have.
const MAX_TOKENS: u64 = 1 << 16;
const MAX_SEQS: u64 = 1 << 10;
const MAX_PAGE_SIZE: u64 = 1 << 12;
const MAX_CONTEXT: u64 = 1 << 24;
const MAX_KV_PAGES: u64 = 1 << 24;
/// `rfc.plan`: the plan, the limits it was made for and the page size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub env: EnvRecord,
    /// Tokens per KV-cache page.
    pub page_size: u64,
    pub schedule: Vec<usize>,
    pub arena_bytes: u64,
    pub lower_bound: u64,
    pub naive_bytes: u64,
    /// `[node, offset, bytes]`.
    pub slots: Vec<[u64; 3]>,
    /// `[node, offset, bytes]`.
    pub scratch: Vec<[u64; 3]>,
    /// `[view, base, first column]`.
    pub views: Vec<[u64; 3]>,
    pub strategy: String,
    /// Pages of the KV pool a load makes by default (`rfc compile
    /// --kv-pages`); absent: every sequence its whole context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_pages: Option<u64>,
}

/// The plan's limits ([`DimEnv`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRecord {
    pub tokens: u64,
    pub rows: u64,
    pub seqs: u64,
    pub pages: u64,
    pub kv_len: u64,
}

impl From<DimEnv> for EnvRecord {
    fn from(e: DimEnv) -> Self {
        EnvRecord {
            tokens: e.tokens,
            rows: e.rows,
            seqs: e.seqs,
            pages: e.pages,
            kv_len: e.kv_len,
        }
    }
}

impl From<EnvRecord> for DimEnv {
    fn from(e: EnvRecord) -> Self {
        DimEnv {
            tokens: e.tokens,
            rows: e.rows,
            seqs: e.seqs,
            pages: e.pages,
            kv_len: e.kv_len,
        }
    }
}

impl PlanRecord {
    /// The record of `plan` for `g`, numbered as `text::print(g)` numbers.
    pub fn new(g: &Graph, plan: &MemoryPlan, page_size: u64) -> PlanRecord {
        let ids = text::text_ids(g);
        let n = |id: &NodeId| ids[id] as u64;
        let slots = |m: &BTreeMap<NodeId, Slot>| -> Vec<[u64; 3]> {
            let mut v: Vec<_> = m.iter().map(|(id, s)| [n(id), s.offset, s.bytes]).collect();
            v.sort_unstable();
            v
        };
        let mut views: Vec<[u64; 3]> = plan
            .views
            .iter()
            .map(|(id, (base, col))| [n(id), n(base), *col])
            .collect();
        views.sort_unstable();
        PlanRecord {
            env: plan.env.into(),
            page_size,
            schedule: plan.schedule.iter().map(|id| ids[id]).collect(),
            arena_bytes: plan.arena_bytes,
            lower_bound: plan.lower_bound,
            naive_bytes: plan.naive_bytes,
            slots: slots(&plan.slots),
            scratch: slots(&plan.scratch),
            views,
            strategy: plan.strategy.to_string(),
            kv_pages: None,
        }
    }

    /// Refuses limits no real plan has, so that a hand-made record cannot
    /// make the executor allocate without bound: the arena is at most all
    /// its buffers end to end, and the step and context sizes are capped.
    pub fn check_limits(&self) -> Result<()> {
        let e = &self.env;
        let context = e.pages.saturating_mul(self.page_size);
        let sane = (1..=MAX_TOKENS).contains(&e.tokens)
            && (1..=e.tokens.saturating_mul(e.seqs)).contains(&e.rows)
            && (1..=MAX_SEQS).contains(&e.seqs)
            && (1..=MAX_PAGE_SIZE).contains(&self.page_size)
            && (1..=MAX_CONTEXT).contains(&context)
            && e.kv_len == context
            && self
                .kv_pages
                .is_none_or(|p| (1..=MAX_KV_PAGES).contains(&p));
        if !sane {
            return Err(ArtifactError::Plan(format!(
                "limits out of range: {} tokens and {} logit rows per step, {} sequences, \
                 context {context} in {}-token pages (at most {MAX_TOKENS} tokens per step, \
                 {MAX_SEQS} sequences, {MAX_CONTEXT} tokens of context, {MAX_PAGE_SIZE}-token pages, \
                 1 to {MAX_KV_PAGES} KV pages; found {:?})",
                e.tokens, e.rows, e.seqs, self.page_size, self.kv_pages
            )));
        }
        let all: u64 = self
            .slots
            .iter()
            .chain(&self.scratch)
            .map(|s| s[2].div_ceil(ALIGN).saturating_mul(ALIGN))
            .fold(0, u64::saturating_add);
        if self.arena_bytes > all {
            return Err(ArtifactError::Plan(format!(
                "an arena of {} bytes is larger than its buffers end to end ({all})",
                self.arena_bytes
            )));
        }
        Ok(())
    }

    /// The JSON text stored in `rfc.plan`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan record serializes")
    }

    pub fn from_json(text: &str) -> Result<PlanRecord> {
        serde_json::from_str(text).map_err(|e| ArtifactError::Plan(e.to_string()))
    }

    /// The plan on `g`, the graph the stored IR text parsed into. Every
    /// node number must name a node of `g`, and every slot fit the arena.
    pub fn to_plan(&self, g: &Graph) -> Result<MemoryPlan> {
        self.check_limits()?;
        let by_text: HashMap<usize, NodeId> = text::text_ids(g)
            .into_iter()
            .map(|(id, n)| (n, id))
            .collect();
        let node = |n: u64| {
            usize::try_from(n)
                .ok()
                .and_then(|n| by_text.get(&n).copied())
                .ok_or_else(|| ArtifactError::Plan(format!("node %{n} is not in the IR")))
        };
        let slot_map = |v: &[[u64; 3]], what: &str| -> Result<BTreeMap<NodeId, Slot>> {
            let mut m = BTreeMap::new();
            for &[id, offset, bytes] in v {
                let end = offset.checked_add(bytes);
                if end.is_none_or(|e| e > self.arena_bytes) {
                    return Err(ArtifactError::Plan(format!(
                        "{what} of %{id} at {offset}+{bytes} lies outside the arena of {} bytes",
                        self.arena_bytes
                    )));
                }
                m.insert(node(id)?, Slot { offset, bytes });
            }
            Ok(m)
        };
        let mut views = BTreeMap::new();
        for &[id, base, col] in &self.views {
            views.insert(node(id)?, (node(base)?, col));
        }
        let schedule = self
            .schedule
            .iter()
            .map(|&n| node(n as u64))
            .collect::<Result<Vec<_>>>()?;
        if schedule.len() != g.node_count() {
            return Err(ArtifactError::Plan(format!(
                "the schedule has {} nodes, the IR {}",
                schedule.len(),
                g.node_count()
            )));
        }
        Ok(MemoryPlan {
            env: self.env.into(),
            schedule,
            arena_bytes: self.arena_bytes,
            lower_bound: self.lower_bound,
            naive_bytes: self.naive_bytes,
            slots: slot_map(&self.slots, "slot")?,
            scratch: slot_map(&self.scratch, "scratch")?,
            views,
            strategy: STRATEGIES
                .into_iter()
                .find(|s| *s == self.strategy)
                .unwrap_or("unknown"),
        })
    }
}
