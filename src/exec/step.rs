//! One step's inputs: T tokens, each with its sequence and position, the
//! page table of the sequences involved, and the rows whose logits return.

/// The per-step inputs of the graph (ARCHITECTURE.md decision 9).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepInputs {
    pub tokens: Vec<i32>,
    pub positions: Vec<i32>,
    /// Row of `page_table` for each token.
    pub seq_ids: Vec<i32>,
    /// `[n_seqs, pages_per_seq]`, row-major; unused entries are -1.
    pub page_table: Vec<i32>,
    pub pages_per_seq: usize,
    /// Token rows whose logits are computed, in output order.
    pub output_rows: Vec<i32>,
}

impl StepInputs {
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    pub fn n_seqs(&self) -> usize {
        self.page_table
            .len()
            .checked_div(self.pages_per_seq)
            .unwrap_or(0)
    }

    /// A step of one sequence: `tokens` at positions `start..`, its pages
    /// `pages`, logits for the last token only or for every token.
    pub fn single(
        tokens: &[u32],
        start: usize,
        pages: &[u32],
        pages_per_seq: usize,
        all_logits: bool,
    ) -> Self {
        let n = tokens.len();
        let mut page_table = vec![-1i32; pages_per_seq];
        for (slot, &p) in page_table.iter_mut().zip(pages) {
            *slot = p as i32;
        }
        StepInputs {
            tokens: tokens.iter().map(|&t| t as i32).collect(),
            positions: (start..start + n).map(|p| p as i32).collect(),
            seq_ids: vec![0; n],
            page_table,
            pages_per_seq,
            output_rows: if all_logits {
                (0..n as i32).collect()
            } else {
                vec![n as i32 - 1]
            },
        }
    }
}
