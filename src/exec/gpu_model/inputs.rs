//! The step's inputs on the device: tokens, positions, sequence ids, the
//! page table and the output rows, packed into one small buffer that is
//! written with one host-to-device copy per step. The kernels trust these
//! indices (docs/KERNELS.md), so [`StepInputs`] are checked here first.
//!
//! The host side is page-locked staging, so the copy is queued on the
//! step's stream and the host does not wait for it: the only wait of a
//! step is reading its result back. The staging is rewritten only once
//! the stream has passed the previous copy ([`StepBuffer::settled`]).

use std::sync::Arc;

use crate::backend::{DeviceBuffer, DevicePtr, Gpu, PinnedBuffer, Stream};
use crate::exec::session::StepLimits;
use crate::exec::step::StepInputs;
use crate::exec::ExecError;
use crate::ir::InputKind;

/// Sections start on 64-element (256-byte) boundaries.
const SECTION_ALIGN: usize = 64;

/// Where each input lives in the packed buffer, in i32 elements.
#[derive(Debug, Clone, Copy)]
struct Layout {
    tokens: usize,
    positions: usize,
    seq_ids: usize,
    page_table: usize,
    output_rows: usize,
    len: usize,
}

impl Layout {
    fn new(l: &StepLimits) -> Layout {
        let mut at = 0;
        let mut take = |n: usize| {
            let start = at;
            at += n.max(1).next_multiple_of(SECTION_ALIGN);
            start
        };
        let tokens = take(l.max_tokens);
        let positions = take(l.max_tokens);
        let seq_ids = take(l.max_tokens);
        let page_table = take(l.max_seqs * l.pages_per_seq);
        let output_rows = take(l.max_rows);
        Layout {
            tokens,
            positions,
            seq_ids,
            page_table,
            output_rows,
            len: at,
        }
    }
}

/// The sizes of one checked step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    pub tokens: u32,
    pub rows: u32,
    /// The most keys one token of the step may attend to (its position +
    /// 1; a sliding window sees fewer): bounds the prefill key splits.
    pub keys: u32,
    /// The leading tokens that belong to short runs (at most
    /// [`DECODE_MAX_RUN`] consecutive tokens of one sequence): decodes,
    /// which the scheduler puts first. Their attention is the split-K
    /// decode kernel's; the rest (prefill chunks) go to the tiled kernel.
    pub decode_tokens: u32,
}

/// Runs of up to this many tokens of one sequence count as decodes: each
/// token reads its sequence's keys on its own, which beats a query tile
/// only while few tokens share them.
pub const DECODE_MAX_RUN: usize = 4;

/// How many leading tokens of `seq_ids` lie in runs of at most
/// [`DECODE_MAX_RUN`] tokens of one sequence.
pub fn decode_prefix(seq_ids: &[i32]) -> usize {
    let mut at = 0;
    while at < seq_ids.len() {
        let run = seq_ids[at..]
            .iter()
            .take_while(|&&s| s == seq_ids[at])
            .count();
        if run > DECODE_MAX_RUN {
            break;
        }
        at += run;
    }
    at
}

/// The packed inputs, on the host and on the device.
pub struct StepBuffer {
    layout: Layout,
    limits: StepLimits,
    vocab: usize,
    host: PinnedBuffer,
    device: DeviceBuffer,
    /// A copy from `host` may still be queued: wait before rewriting it.
    in_flight: bool,
}

impl StepBuffer {
    /// Room for steps up to `limits`; token ids must be below `vocab`.
    pub fn new(gpu: &Arc<Gpu>, limits: StepLimits, vocab: usize) -> Result<StepBuffer, ExecError> {
        let layout = Layout::new(&limits);
        let device = DeviceBuffer::from_slice(gpu, &vec![0i32; layout.len])?;
        let host = PinnedBuffer::new(gpu, layout.len * 4)?;
        Ok(StepBuffer {
            layout,
            limits,
            vocab,
            host,
            device,
            in_flight: false,
        })
    }

    /// The device address of one input (the page table is always
    /// `[max_seqs, pages_per_seq]` of the plan, unused entries -1).
    pub fn ptr(&self, kind: InputKind) -> DevicePtr {
        let l = &self.layout;
        let at = match kind {
            InputKind::Tokens => l.tokens,
            InputKind::Positions => l.positions,
            InputKind::SeqIds => l.seq_ids,
            InputKind::PageTable => l.page_table,
            InputKind::OutputRows => l.output_rows,
        };
        self.device.ptr().offset(at * 4)
    }

    /// Checks `step`, packs it and queues its copy to the device (in
    /// `stream`'s order, before the step's kernels); returns without
    /// waiting.
    pub fn write(&mut self, stream: &Stream, step: &StepInputs) -> Result<StepShape, ExecError> {
        let shape = check(step, &self.limits, self.vocab)?;
        if self.in_flight {
            // Only after a step that failed before reading its result.
            stream.synchronize()?;
            self.in_flight = false;
        }
        let l = self.layout;
        let t = step.n_tokens();
        let host = self.host.as_mut_slice::<i32>();
        host[l.tokens..l.tokens + t].copy_from_slice(&step.tokens);
        host[l.positions..l.positions + t].copy_from_slice(&step.positions);
        host[l.seq_ids..l.seq_ids + t].copy_from_slice(&step.seq_ids);
        let p = self.limits.pages_per_seq;
        let table = &mut host[l.page_table..l.page_table + self.limits.max_seqs * p];
        table.fill(-1);
        if step.pages_per_seq > 0 {
            for (s, row) in step.page_table.chunks(step.pages_per_seq).enumerate() {
                table[s * p..s * p + row.len()].copy_from_slice(row);
            }
        }
        let r = step.output_rows.len();
        host[l.output_rows..l.output_rows + r].copy_from_slice(&step.output_rows);
        // SAFETY: the staging is not written again before the stream has
        // passed this copy (`in_flight` until `settled`), and both buffers
        // live as long as `self`.
        unsafe { stream.upload_pinned(&mut self.device, 0, &self.host)? };
        self.in_flight = true;
        Ok(shape)
    }

    /// Says that the stream has passed the last copy (the caller waited
    /// for the step's result), so the staging may be rewritten.
    pub fn settled(&mut self) {
        self.in_flight = false;
    }
}

/// The checks the CPU backend makes while running, made before anything
/// is queued: sizes within the plan, every id and page in range.
pub fn check(step: &StepInputs, l: &StepLimits, vocab: usize) -> Result<StepShape, ExecError> {
    let lim = |what, found: usize, limit: usize| {
        if found > limit {
            Err(ExecError::PlanLimit { what, found, limit })
        } else {
            Ok(())
        }
    };
    let t = step.n_tokens();
    lim("tokens in a step", t, l.max_tokens)?;
    lim("logit rows in a step", step.output_rows.len(), l.max_rows)?;
    lim("sequences in a step", step.n_seqs(), l.max_seqs)?;
    lim("pages per sequence", step.pages_per_seq, l.pages_per_seq)?;
    let same = |what, found: usize| {
        if found != t {
            Err(ExecError::PlanLimit {
                what,
                found,
                limit: t,
            })
        } else {
            Ok(())
        }
    };
    same("positions of a step's tokens", step.positions.len())?;
    same("sequence ids of a step's tokens", step.seq_ids.len())?;
    if let Some(&bad) = step
        .tokens
        .iter()
        .find(|&&id| id < 0 || id as usize >= vocab)
    {
        return Err(ExecError::BadToken {
            id: bad as i64,
            vocab,
        });
    }
    for (&pos, &seq) in step.positions.iter().zip(&step.seq_ids) {
        check_keys(step, l, pos, seq)?;
    }
    if let Some(&row) = step.output_rows.iter().find(|&&r| r < 0 || r as usize >= t) {
        return Err(ExecError::PlanLimit {
            what: "output row",
            found: row.max(0) as usize,
            limit: t,
        });
    }
    Ok(StepShape {
        tokens: t as u32,
        rows: step.output_rows.len() as u32,
        keys: step
            .positions
            .iter()
            .map(|&p| p.max(0) as u32 + 1)
            .max()
            .unwrap_or(0),
        decode_tokens: decode_prefix(&step.seq_ids) as u32,
    })
}

/// A token at `pos` of sequence `seq` reads the pages of positions
/// `0..=pos`: each must be a page of the cache.
fn check_keys(step: &StepInputs, l: &StepLimits, pos: i32, seq: i32) -> Result<(), ExecError> {
    let n_seqs = step.n_seqs();
    if seq < 0 || seq as usize >= n_seqs {
        return Err(ExecError::PlanLimit {
            what: "sequence id of a token",
            found: seq.max(0) as usize,
            limit: n_seqs,
        });
    }
    let context = step.pages_per_seq * l.page_size;
    if pos < 0 || pos as usize >= context {
        return Err(ExecError::PlanLimit {
            what: "position of a token",
            found: pos.max(0) as usize,
            limit: context,
        });
    }
    let row = seq as usize * step.pages_per_seq;
    let last_page = pos as usize / l.page_size;
    for &entry in &step.page_table[row..=row + last_page] {
        if entry < 0 || entry as usize >= l.n_pages {
            return Err(ExecError::PlanLimit {
                what: "KV page of a token",
                found: entry.max(0) as usize,
                limit: l.n_pages,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> StepLimits {
        StepLimits {
            max_tokens: 8,
            max_rows: 2,
            max_seqs: 1,
            pages_per_seq: 4,
            n_pages: 4,
            page_size: 16,
        }
    }

    #[test]
    fn a_single_sequence_step_passes() {
        let step = StepInputs::single(&[1, 2, 3], 20, &[2, 0], 4, false);
        assert_eq!(
            check(&step, &limits(), 10).unwrap(),
            StepShape {
                tokens: 3,
                rows: 1,
                keys: 23,
                decode_tokens: 3,
            }
        );
    }

    #[test]
    fn decodes_lead_until_the_first_long_run() {
        assert_eq!(decode_prefix(&[]), 0);
        assert_eq!(decode_prefix(&[0, 1, 2, 2, 3]), 5);
        assert_eq!(decode_prefix(&[0, 1, 1, 1, 1, 1, 2]), 1);
        assert_eq!(decode_prefix(&[0, 0, 0, 0]), 4);
        assert_eq!(decode_prefix(&[0, 0, 0, 0, 0]), 0);
        // A short run after a long one stays with the prefill.
        assert_eq!(decode_prefix(&[3, 4, 5, 5, 5, 5, 5, 6]), 2);
    }

    #[test]
    fn a_token_outside_the_vocabulary_is_refused() {
        let step = StepInputs::single(&[1, 12], 0, &[0], 4, false);
        assert!(matches!(
            check(&step, &limits(), 10),
            Err(ExecError::BadToken { id: 12, .. })
        ));
    }

    #[test]
    fn a_position_without_a_page_is_refused() {
        // Position 17 needs a second page; the table has one.
        let step = StepInputs::single(&[1, 2], 16, &[3], 4, false);
        assert!(matches!(
            check(&step, &limits(), 10),
            Err(ExecError::PlanLimit {
                what: "KV page of a token",
                ..
            })
        ));
    }

    #[test]
    fn an_output_row_past_the_tokens_is_refused() {
        let mut step = StepInputs::single(&[1, 2], 0, &[0], 4, false);
        step.output_rows = vec![2];
        assert!(matches!(
            check(&step, &limits(), 10),
            Err(ExecError::PlanLimit {
                what: "output row",
                ..
            })
        ));
    }

    #[test]
    fn more_tokens_than_the_plan_allows_are_refused() {
        let toks: Vec<u32> = (0..9).collect();
        let step = StepInputs::single(&toks, 0, &[0], 4, false);
        assert!(matches!(
            check(&step, &limits(), 10),
            Err(ExecError::PlanLimit {
                what: "tokens in a step",
                ..
            })
        ));
    }

    #[test]
    fn sections_do_not_overlap_and_are_aligned() {
        let l = Layout::new(&limits());
        let starts = [
            l.tokens,
            l.positions,
            l.seq_ids,
            l.page_table,
            l.output_rows,
        ];
        assert!(starts.windows(2).all(|w| w[1] >= w[0] + 8));
        assert!(starts.iter().all(|s| s % SECTION_ALIGN == 0));
        assert!(l.len >= l.output_rows + 2);
    }
}
