//! Mixture-of-experts routing: which experts a token goes to and with what
//! weight, and the tokens of each expert.

/// Picks the `ids.len()` largest of `logits` (ties: the lower expert id),
/// in descending order, into `ids`, and their softmax over just those into
/// `weights` — the same numbers as a softmax over all experts renormalized
/// over the chosen ones (llama.cpp's `norm_w` for Mixtral and Qwen3-MoE),
/// without the terms that cancel.
pub fn route_top_k(logits: &[f32], ids: &mut [u32], weights: &mut [f32]) {
    let k = ids.len();
    debug_assert!(k <= logits.len() && weights.len() == k);
    for i in 0..k {
        let mut best: Option<usize> = None;
        for (e, &l) in logits.iter().enumerate() {
            let taken = ids[..i].contains(&(e as u32));
            // A NaN logit is never the larger: the first free id stands in.
            if !taken && best.is_none_or(|b| l > logits[b]) {
                best = Some(e);
            }
        }
        ids[i] = best.unwrap_or(0) as u32;
    }
    let top = logits[ids[0] as usize];
    let mut sum = 0.0f32;
    for (w, &e) in weights.iter_mut().zip(ids.iter()) {
        *w = (logits[e as usize] - top).exp();
        sum += *w;
    }
    for w in weights.iter_mut() {
        *w /= sum;
    }
}

/// The rows of a step grouped by expert: for expert `e`, `rows[start[e]..
/// start[e + 1]]` are the token rows routed to it (ascending) and
/// `weights[..]` their gate weights. Grown, never shrunk, so a run of
/// steps allocates only on its largest.
#[derive(Debug, Default)]
pub struct ExpertGroups {
    pub start: Vec<usize>,
    pub rows: Vec<usize>,
    pub weights: Vec<f32>,
}

impl ExpertGroups {
    /// Groups `t` routes of `k` (ids, weights) pairs: `ids(r)` and
    /// `weights(r)` are row `r`'s. Ids at or past `n_expert` are refused
    /// (`Err(id)`).
    pub fn group<'a>(
        &mut self,
        n_expert: usize,
        t: usize,
        route: impl Fn(usize) -> (&'a [f32], &'a [f32]),
    ) -> Result<(), usize> {
        self.start.clear();
        self.start.resize(n_expert + 1, 0);
        for r in 0..t {
            for &id in route(r).0 {
                let e = id as usize;
                if id.is_nan() || id < 0.0 || e >= n_expert {
                    return Err(e);
                }
                self.start[e + 1] += 1;
            }
        }
        for e in 0..n_expert {
            self.start[e + 1] += self.start[e];
        }
        let total = self.start[n_expert];
        self.rows.resize(total, 0);
        self.weights.resize(total, 0.0);
        let mut next = self.start.clone();
        for r in 0..t {
            let (ids, ws) = route(r);
            for (&id, &w) in ids.iter().zip(ws) {
                let slot = &mut next[id as usize];
                self.rows[*slot] = r;
                self.weights[*slot] = w;
                *slot += 1;
            }
        }
        Ok(())
    }

    /// The rows and weights of expert `e`.
    pub fn of(&self, e: usize) -> (&[usize], &[f32]) {
        let range = self.start[e]..self.start[e + 1];
        (&self.rows[range.clone()], &self.weights[range])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_takes_the_largest_in_order_and_softmaxes_them() {
        let logits = [0.5, 2.0, -1.0, 1.0];
        let (mut ids, mut w) = ([0u32; 2], [0f32; 2]);
        route_top_k(&logits, &mut ids, &mut w);
        assert_eq!(ids, [1, 3]);
        let e = (-1.0f64).exp();
        assert!((w[0] as f64 - 1.0 / (1.0 + e)).abs() < 1e-7);
        assert!((w[1] as f64 - e / (1.0 + e)).abs() < 1e-7);
    }

    #[test]
    fn ties_go_to_the_lower_expert() {
        let (mut ids, mut w) = ([0u32; 2], [0f32; 2]);
        route_top_k(&[1.0, 3.0, 3.0, 3.0], &mut ids, &mut w);
        assert_eq!(ids, [1, 2]);
        assert_eq!(w, [0.5, 0.5]);
    }

    #[test]
    fn groups_list_each_experts_rows_and_leave_unchosen_experts_empty() {
        // rows: 0 -> (2, 0), 1 -> (2, 1)
        let route = [[2.0, 0.0, 0.7, 0.3], [2.0, 1.0, 0.6, 0.4]];
        let mut g = ExpertGroups::default();
        g.group(4, 2, |r| (&route[r][..2], &route[r][2..])).unwrap();
        assert_eq!(g.of(0), (&[0][..], &[0.3][..]));
        assert_eq!(g.of(1), (&[1][..], &[0.4][..]));
        assert_eq!(g.of(2), (&[0, 1][..], &[0.7, 0.6][..]));
        assert_eq!(g.of(3), (&[][..], &[][..]));
        assert_eq!(g.group(2, 2, |r| (&route[r][..2], &route[r][2..])), Err(2));
    }
}
