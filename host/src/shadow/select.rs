//! Which journaled events a shadow run replays: those the live bot handled
//! (its run is done or failed) that were received in the window, oldest
//! first, each with the messages the live bot queued for it. Of those, the
//! ones from the source and of the message type asked for are compared, up
//! to a limit; the others are replayed all the same, so that the
//! candidate's state keeps in step with the live bot's. Read a page at a
//! time from the run's journal snapshot.

use std::collections::VecDeque;

use anyhow::{Result, bail};

use crate::journal::shadow::{HandledEvent, LiveMessage};
use crate::runtime::routing::type_matches;
use crate::runtime::state::SharedReader;

/// Events read from the journal at a time.
const PAGE: usize = 512;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Received at or after (ms since the epoch).
    pub from_ms: i64,
    /// Received before (ms since the epoch).
    pub to_ms: i64,
    /// Only compare events from this source (listener, folder, SFTP source,
    /// schedule; the bot for HTTP commands).
    pub source: Option<String>,
    /// Only compare HL7 messages whose MSH-9 matches this pattern (`ADT^A0*`).
    pub message_type: Option<String>,
    /// At most this many compared events.
    pub limit: Option<usize>,
}

impl Selection {
    fn in_window(&self, e: &HandledEvent) -> bool {
        (self.from_ms..self.to_ms).contains(&e.event.received_at_ms)
    }

    /// Whether `e` is to be compared (not only replayed).
    fn compares(&self, e: &HandledEvent) -> bool {
        let source = self.source.as_ref().is_none_or(|s| *s == e.event.source);
        let message_type = self.message_type.as_ref().is_none_or(|p| {
            e.message_type
                .as_deref()
                .is_some_and(|t| type_matches(p, t))
        });
        source && message_type
    }
}

/// A duration like `24h`, `90m`, `30s`, `7d` in ms.
pub fn parse_duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{text:?} is not a duration like 30s, 90m, 24h or 7d"),
    };
    match n.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n.saturating_mul(unit_ms)),
        _ => bail!("{text:?} is not a duration like 30s, 90m, 24h or 7d"),
    }
}

/// One event to replay and what the live bot queued for it.
pub struct Recorded {
    pub handled: HandledEvent,
    pub live: Vec<LiveMessage>,
    /// Whether to compare it, or only replay it for the state.
    pub compared: bool,
}

/// The events of one bot in the window, in event order, read a page at a
/// time; up to the last compared one when there is a limit.
pub struct Events {
    reader: SharedReader,
    bot: String,
    selection: Selection,
    /// The last event id in the window; `after` the last one read.
    last: i64,
    after: i64,
    taken: usize,
    page: VecDeque<Recorded>,
}

impl Events {
    /// The events of `bot` in `selection`'s window, read through `reader`
    /// (whose snapshot must already be open).
    pub fn new(reader: SharedReader, bot: &str, selection: Selection) -> Result<Events> {
        let window = reader
            .lock()
            .expect("reader lock")
            .window_ids(selection.from_ms, selection.to_ms)?;
        let (after, last) = match window {
            Some((first, last)) => (first - 1, last),
            None => (0, 0),
        };
        Ok(Events {
            reader,
            bot: bot.to_string(),
            selection,
            last,
            after,
            taken: 0,
            page: VecDeque::new(),
        })
    }

    /// The next page of selected events; empty when done.
    fn fill(&mut self) -> Result<()> {
        let reader = self.reader.lock().expect("reader lock");
        while self.page.is_empty() && self.after < self.last {
            let handled = reader.handled_events(&self.bot, self.after, self.last, PAGE)?;
            let Some(newest) = handled.last().map(|h| h.event.id) else {
                self.after = self.last;
                break;
            };
            let oldest = handled[0].event.id;
            self.after = newest;
            let mut live = reader
                .live_messages(&self.bot, oldest, newest)?
                .into_iter()
                .peekable();
            for h in handled {
                let mut mine = Vec::new();
                while let Some(m) = live.next_if(|m| m.event_id <= h.event.id) {
                    if m.event_id == h.event.id {
                        mine.push(m);
                    }
                }
                if self.selection.in_window(&h) {
                    let compared = self.selection.compares(&h);
                    self.page.push_back(Recorded {
                        handled: h,
                        live: mine,
                        compared,
                    });
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Events {
    type Item = Result<Recorded>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.selection.limit.is_some_and(|l| self.taken >= l) {
            return None;
        }
        if self.page.is_empty()
            && let Err(e) = self.fill()
        {
            self.after = self.last;
            return Some(Err(e));
        }
        let next = self.page.pop_front()?;
        self.taken += usize::from(next.compared);
        Some(Ok(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_option_says() {
        assert_eq!(parse_duration("24h").unwrap(), 86_400_000);
        assert_eq!(parse_duration("90m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("30s").unwrap(), 30_000);
        assert_eq!(parse_duration("7d").unwrap(), 604_800_000);
        for bad in ["", "h", "24", "0h", "24 h", "-1h", "1w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
