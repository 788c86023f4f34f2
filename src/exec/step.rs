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

/// Each output row's most likely tokens and its log-sum-exp, as the
/// device returns them for host sampling: per row, `k` ids (-1 past the
/// end of a short row), their `k` logits (as f32 bits), largest first and
/// equal logits by smaller id, then log(sum(exp(logits))).
#[derive(Debug, Clone, Copy)]
pub struct TopRows<'a> {
    k: usize,
    words: &'a [i32],
}

impl<'a> TopRows<'a> {
    pub fn new(k: usize, words: &'a [i32]) -> Self {
        TopRows { k, words }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn rows(&self) -> usize {
        self.words.len() / (2 * self.k + 1)
    }

    /// Row `r`'s candidates (id, logit), best first, and its log-sum-exp.
    pub fn row(&self, r: usize) -> (Vec<(u32, f32)>, f32) {
        let w = &self.words[r * (2 * self.k + 1)..(r + 1) * (2 * self.k + 1)];
        let cands = (0..self.k)
            .filter(|&j| w[j] >= 0)
            .map(|j| (w[j] as u32, f32::from_bits(w[self.k + j] as u32)))
            .collect();
        (cands, f32::from_bits(w[2 * self.k] as u32))
    }
}

/// [`TopRows`] computed on the host from whole logit rows: what a backend
/// without a device-side selection (the CPU) would return, and the
/// reference the device's is checked against.
pub fn top_rows_of(logits: &[f32], vocab: usize, k: usize) -> Vec<i32> {
    let mut out = Vec::new();
    for row in logits.chunks_exact(vocab) {
        let mut ids: Vec<u32> = (0..vocab as u32)
            .filter(|&i| !row[i as usize].is_nan())
            .collect();
        let key = |i: &u32| row[*i as usize];
        ids.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        ids.truncate(k);
        let max = ids.first().map_or(f32::NEG_INFINITY, |&i| row[i as usize]);
        let sum: f64 = row
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| ((v - max) as f64).exp())
            .sum();
        let lse = if max == f32::NEG_INFINITY {
            max
        } else {
            max + sum.ln() as f32
        };
        for j in 0..k {
            out.push(ids.get(j).map_or(-1, |&i| i as i32));
        }
        for j in 0..k {
            out.push(
                ids.get(j)
                    .map_or(f32::NEG_INFINITY, |&i| row[i as usize])
                    .to_bits() as i32,
            );
        }
        out.push(lse.to_bits() as i32);
    }
    out
}
