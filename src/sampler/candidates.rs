//! The candidate list the truncation samplers work on: token ids with their
//! logits, kept sorted by decreasing logit once sorted. Each filter is one
//! llama.cpp sampler with its semantics (`min_keep` = 1 throughout).

use std::cmp::Ordering;

/// Decreasing logit; NaN counts as the least likely.
fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    let key = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    key(b.1).total_cmp(&key(a.1))
}

/// The list's order: decreasing logit, equal logits by id.
fn list_order(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    by_logit_desc(a, b).then(a.0.cmp(&b.0))
}

#[derive(Debug, Clone)]
pub struct Candidates {
    /// (token id, logit), sorted by decreasing logit.
    items: Vec<(u32, f32)>,
}

impl Candidates {
    /// The `top_k` best of `logits` (all of them when `top_k` is 0 or not
    /// smaller than the vocabulary), sorted; equal logits keep id order.
    pub fn top_k(logits: &[f32], top_k: usize) -> Self {
        let mut items: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        if top_k > 0 && top_k < items.len() {
            items.select_nth_unstable_by(top_k - 1, list_order);
            items.truncate(top_k);
        }
        items.sort_unstable_by(list_order);
        Self { items }
    }

    /// `items` in the order [`Candidates::top_k`] keeps.
    pub fn sort(mut items: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
        items.sort_unstable_by(list_order);
        items
    }

    /// Candidates already sorted as [`Candidates::top_k`] sorts them (by
    /// decreasing logit, equal logits by id), cut to `top_k` (0: all):
    /// the same list `top_k` makes from a whole row when `sorted` holds at
    /// least `top_k` of its best tokens.
    pub fn from_sorted(mut sorted: Vec<(u32, f32)>, top_k: usize) -> Self {
        if top_k > 0 {
            sorted.truncate(top_k);
        }
        Self { items: sorted }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.items.iter().map(|c| c.0)
    }

    /// Softmax probabilities of the candidates, in order.
    pub fn probabilities(&self) -> Vec<f64> {
        let Some(&(_, max)) = self.items.first() else {
            return vec![];
        };
        let exps: Vec<f64> = self
            .items
            .iter()
            .map(|c| f64::from(c.1 - max).exp())
            .collect();
        let sum: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / sum).collect()
    }

    /// Nucleus: keeps the shortest prefix whose probability reaches `p`.
    pub fn top_p(&mut self, p: f32) {
        if p >= 1.0 || self.items.len() <= 1 {
            return;
        }
        let mut cum = 0.0;
        let mut keep = self.items.len();
        for (i, prob) in self.probabilities().into_iter().enumerate() {
            cum += prob;
            if cum >= f64::from(p) {
                keep = i + 1;
                break;
            }
        }
        self.items.truncate(keep.max(1));
    }

    /// Drops tokens whose probability is below `p` times the best one's,
    /// i.e. whose logit is below `max + ln(p)`.
    pub fn min_p(&mut self, p: f32) {
        if p <= 0.0 || self.items.len() <= 1 {
            return;
        }
        let threshold = self.items[0].1 + p.ln();
        let keep = self.items.iter().take_while(|c| c.1 >= threshold).count();
        self.items.truncate(keep.max(1));
    }

    /// Divides every logit by `t` (> 0).
    pub fn temperature(&mut self, t: f32) {
        for c in &mut self.items {
            c.1 /= t;
        }
    }

    /// Draws a candidate with probability softmax(logits); `u` in [0, 1).
    pub fn draw(&self, u: f64) -> Option<u32> {
        let probs = self.probabilities();
        let mut cum = 0.0;
        for (c, p) in self.items.iter().zip(&probs) {
            cum += p;
            if u < cum {
                return Some(c.0);
            }
        }
        // Rounding can leave the total just under 1.
        self.items.last().map(|c| c.0)
    }
}

/// The first index of the largest logit (NaN never wins); `None` if empty.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32)
        .or((!logits.is_empty()).then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &Candidates) -> Vec<u32> {
        c.ids().collect()
    }

    #[test]
    fn top_k_keeps_the_k_largest_in_decreasing_order() {
        let c = Candidates::top_k(&[0.1, 3.0, 2.0, -1.0, 2.5], 3);
        assert_eq!(ids(&c), [1, 4, 2]);
    }

    #[test]
    fn top_k_zero_keeps_everything() {
        assert_eq!(Candidates::top_k(&[0.0, 1.0, 2.0], 0).len(), 3);
    }

    #[test]
    fn top_p_keeps_the_prefix_that_reaches_p() {
        // probabilities 0.5, 0.25, 0.125, 0.125
        let l = [2f32.ln() * 3.0, 2f32.ln() * 2.0, 2f32.ln(), 2f32.ln()];
        let mut c = Candidates::top_k(&l, 0);
        c.top_p(0.7);
        assert_eq!(ids(&c), [0, 1]);
    }

    #[test]
    fn top_p_keeps_at_least_one_token() {
        let mut c = Candidates::top_k(&[5.0, 0.0], 0);
        c.top_p(0.0);
        assert_eq!(ids(&c), [0]);
    }

    #[test]
    fn min_p_drops_tokens_below_the_fraction_of_the_best() {
        // probabilities relative to the best: 1, 0.5, 0.05
        let l = [0.0, 0.5f32.ln(), 0.05f32.ln()];
        let mut c = Candidates::top_k(&l, 0);
        c.min_p(0.1);
        assert_eq!(ids(&c), [0, 1]);
    }

    #[test]
    fn temperature_divides_the_logits() {
        let mut c = Candidates::top_k(&[2.0, 1.0], 0);
        c.temperature(0.5);
        let p = c.probabilities();
        // softmax([4, 2]) = [1 / (1 + e^-2), ...]
        assert!((p[0] - 1.0 / (1.0 + (-2f64).exp())).abs() < 1e-6);
    }

    #[test]
    fn draw_follows_the_cumulative_distribution() {
        let c = Candidates::top_k(&[0.0, 0.0], 0); // 0.5 / 0.5
        assert_eq!(c.draw(0.25), Some(0));
        assert_eq!(c.draw(0.75), Some(1));
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima_and_skips_nan() {
        assert_eq!(argmax(&[1.0, f32::NAN, 3.0, 3.0]), Some(2));
    }
}
