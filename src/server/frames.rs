//! The frames the hub sends: each event serialized once into a frame shared by every
//! client, and the replies to a client's own requests.

use bytes::BytesMut;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::wire::{Envelope, EventFrame, ServerMessage};

/// Room of one shared buffer that frames are cut from.
const FRAME_CHUNK: usize = 4096;

/// Serializes events into frames, cutting consecutive frames from one shared buffer:
/// a frame costs no allocation of its own (one buffer serves ~10 frames, and is reused
/// in place once its frames are all written and dropped). A frame kept alone (in a
/// run's snapshot) keeps at most one buffer of [`FRAME_CHUNK`] bytes alive.
pub(crate) struct FrameWriter {
    /// Where an event is written first (its JSON writer takes a `Vec`).
    scratch: Vec<u8>,
    chunk: BytesMut,
}

impl FrameWriter {
    pub(crate) fn new() -> Self {
        Self {
            scratch: Vec::with_capacity(512),
            chunk: BytesMut::with_capacity(FRAME_CHUNK),
        }
    }

    /// The frame of `envelope` numbered `seq`:
    /// `{"type":...,"data":{...},"topic":"...","seq":N}` (see [`EventFrame`]).
    pub(crate) fn frame(&mut self, envelope: &Envelope, seq: u64) -> Utf8Bytes {
        let out = &mut self.scratch;
        out.clear();
        EventFrame::write_numbered(envelope, seq, out);
        if out.capacity() > 4 * FRAME_CHUNK {
            // A huge event (large results) does not keep its room for the next ones.
            out.shrink_to(FRAME_CHUNK);
        }
        self.chunk.extend_from_slice(out);
        let bytes = self.chunk.split().freeze();
        // Only valid UTF-8 is written; one check of the whole frame is cheaper than
        // writing through `String` piece by piece.
        Utf8Bytes::try_from(bytes).unwrap_or_default()
    }
}

/// The frame of a reply (or a `lagged` notice).
pub(crate) fn reply_frame(message: &ServerMessage) -> Utf8Bytes {
    match message {
        ServerMessage::Pong => Utf8Bytes::from_static(r#"{"type":"pong"}"#),
        other => Utf8Bytes::from(other.to_json()),
    }
}

/// Serializes an envelope once into the frame every client gets.
#[cfg(test)]
pub(crate) fn event_frame(envelope: &Envelope, seq: u64) -> Utf8Bytes {
    FrameWriter::new().frame(envelope, seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{BacktestId, BacktestProgress, Event, Timestamp, Topic};

    #[test]
    fn frames_carry_topic_and_seq() {
        let event = Event::BacktestProgress(BacktestProgress {
            backtest_id: BacktestId::new("r").unwrap(),
            progress: 0.0,
            status: String::new(),
            bars_processed: 1,
            total_bars: 10,
            current_date: String::new(),
            trades_count: 0,
            current_pnl: 0.0,
            timestamp: Timestamp::from_unix_millis(0).unwrap(),
        });
        let frame = event_frame(&Envelope::new(Topic::BACKTEST, event), 42);
        assert!(frame.as_str().ends_with(r#","topic":"backtest","seq":42}"#));
        assert!(
            frame
                .as_str()
                .starts_with(r#"{"type":"backtest_progress","data":{"#)
        );
        assert_eq!(
            reply_frame(&ServerMessage::Pong).as_str(),
            ServerMessage::Pong.to_json()
        );
    }
}
