//! Stop strings over a stream of decoded text. Text that might be the start
//! of a stop string is held back until the next piece decides; a stop string
//! ends the stream and neither it nor anything after it is emitted.

/// What a piece of text did to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text that can be shown now (possibly empty); generation goes on.
    Continue(String),
    /// A stop string was completed: the text before it, then stop.
    Stopped(String),
}

#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored.
    pub fn new<S: Into<String>>(stops: impl IntoIterator<Item = S>) -> Self {
        Self {
            stops: stops
                .into_iter()
                .map(Into::into)
                .filter(|s| !s.is_empty())
                .collect(),
            held: String::new(),
            stopped: false,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds the next piece of decoded text. After a stop, everything is
    /// swallowed.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stopped {
            return StopOutcome::Stopped(String::new());
        }
        self.held.push_str(text);
        if let Some(at) = self.first_stop() {
            self.stopped = true;
            let before = self.held[..at].to_string();
            self.held.clear();
            return StopOutcome::Stopped(before);
        }
        let keep = self.partial_suffix_len();
        let emit = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopOutcome::Continue(emit)
    }

    /// Releases held text at the end of generation (nothing after a stop).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Byte offset of the earliest complete stop string in the held text.
    fn first_stop(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
    }

    /// Length of the longest held suffix that is a proper prefix of a stop
    /// string (and so may still grow into one).
    fn partial_suffix_len(&self) -> usize {
        let h = &self.held;
        h.char_indices()
            .map(|(i, _)| &h[i..])
            .find(|tail| {
                self.stops
                    .iter()
                    .any(|s| s.len() > tail.len() && s.starts_with(tail))
            })
            .map_or(0, str::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cont(s: &str) -> StopOutcome {
        StopOutcome::Continue(s.into())
    }

    #[test]
    fn text_without_stop_strings_passes_through() {
        let mut m = StopMatcher::new(["###"]);
        assert_eq!(m.push("hello"), cont("hello"));
    }

    #[test]
    fn a_stop_string_ends_the_stream_and_is_not_emitted() {
        let mut m = StopMatcher::new(["STOP"]);
        assert_eq!(m.push("abc STOP xyz"), StopOutcome::Stopped("abc ".into()));
        assert!(m.is_stopped());
    }

    #[test]
    fn a_possible_stop_prefix_is_held_back() {
        let mut m = StopMatcher::new(["</end>"]);
        assert_eq!(m.push("text </e"), cont("text "));
    }

    #[test]
    fn held_text_is_released_when_the_stop_string_does_not_follow() {
        let mut m = StopMatcher::new(["</end>"]);
        m.push("a </e");
        assert_eq!(m.push("x"), cont("</ex"));
    }

    #[test]
    fn a_stop_string_split_over_pieces_is_found() {
        let mut m = StopMatcher::new(["User:"]);
        assert_eq!(m.push("ok\nUs"), cont("ok\n"));
        assert_eq!(m.push("er: hi"), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn finish_releases_a_held_prefix() {
        let mut m = StopMatcher::new(["###"]);
        assert_eq!(m.push("x#"), cont("x"));
        assert_eq!(m.finish(), "#");
    }

    #[test]
    fn the_earliest_of_several_stop_strings_wins() {
        let mut m = StopMatcher::new(["b", "a"]);
        assert_eq!(m.push("xab"), StopOutcome::Stopped("x".into()));
    }

    #[test]
    fn multibyte_prefixes_are_held_on_char_boundaries() {
        let mut m = StopMatcher::new(["éé"]);
        assert_eq!(m.push("aé"), cont("a"));
    }
}
