//! Streaming: a generation as server-sent events, `data: {json}\n\n` per
//! chunk and `data: [DONE]` at the end; an error after the headers went
//! out is sent as `data: {"error": ...}` and ends the stream. A comment
//! (`: ping`) every 10 s keeps idle connections (a long prefill behind a
//! queue) from timing out.
//!
//! The stream owns the [`Generation`]: when the client goes away, hyper
//! drops the stream, and with it the channel the engine writes to, which
//! cancels the sequence (see [`super::generation`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::generation::{Generation, Step};
use super::logging::LoggedByGeneration;
use super::responses::Chunker;

const KEEP_ALIVE: Duration = Duration::from_secs(10);

struct Stream<C> {
    gen: Generation,
    chunker: C,
    pending: VecDeque<Event>,
    ended: bool,
}

fn data(text: String) -> Event {
    Event::default().data(text)
}

/// The SSE response of `gen`, its chunks written by `chunker`.
pub fn stream_response<C: Chunker>(gen: Generation, mut chunker: C) -> Response {
    let pending = chunker.start().into_iter().map(data).collect();
    let state = Stream {
        gen,
        chunker,
        pending,
        ended: false,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(ev), s));
            }
            if s.ended {
                return None;
            }
            match s.gen.next().await {
                Some(Step::Token(t)) => s.pending.extend(s.chunker.token(t).map(data)),
                Some(Step::Done {
                    text,
                    finish,
                    usage,
                }) => {
                    s.pending
                        .extend(s.chunker.done(text, finish, usage).into_iter().map(data));
                    s.pending.push_back(data("[DONE]".into()));
                    s.ended = true;
                }
                Some(Step::Failed(e)) => {
                    s.pending.push_back(data(e.json()));
                    s.ended = true;
                }
                None => s.ended = true,
            }
        }
    });
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("ping"))
        .into_response();
    res.extensions_mut().insert(LoggedByGeneration);
    res
}
