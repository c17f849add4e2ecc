//! MLLP framing (`0x0B` message `0x1C 0x0D`), shared by listeners,
//! destinations and `interlink send`: a reader that finds frames in a byte
//! stream however it is split across reads, with a size cap, and the
//! function that frames a message for writing.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

const START: u8 = 0x0b;
const END: u8 = 0x1c;
const CR: u8 = 0x0d;

/// What [`FrameReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message, without the framing bytes.
    Message(Vec<u8>),
    /// A frame that grew past the limit; its bytes were discarded.
    TooLarge { limit: usize },
}

/// Finds frames in bytes pushed into it, however they are split: the
/// synchronous core of [`FrameReader`], usable on any in-memory input.
/// Bytes outside frames are skipped and counted.
pub struct Deframer {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already searched for the end marker.
    scanned: usize,
    in_frame: bool,
    limit: usize,
    /// Bytes seen outside any frame since the last [`Deframer::take_ignored`].
    ignored: usize,
}

/// Reads frames from a stream. Bytes outside frames are skipped and
/// counted (see [`FrameReader::take_ignored`]).
pub struct FrameReader<R> {
    inner: R,
    frames: Deframer,
}

/// `message` in an MLLP frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message);
    out.extend_from_slice(&[END, CR]);
    out
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing frames longer than `limit` bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        FrameReader {
            inner,
            frames: Deframer::new(limit),
        }
    }

    /// Whether a frame has started but not ended.
    pub fn mid_frame(&self) -> bool {
        self.frames.mid_frame()
    }

    /// How many bytes outside frames were skipped since the last call.
    pub fn take_ignored(&mut self) -> usize {
        self.frames.take_ignored()
    }

    /// The next frame; `None` when the stream ends (a partial frame at the
    /// end is dropped).
    pub async fn next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.frames.next_frame() {
                return Ok(Some(frame));
            }
            // Read straight into the buffer's spare capacity (no zeroing).
            let buf = &mut self.frames.buf;
            buf.reserve(16 * 1024);
            let n = self.inner.read_buf(buf).await?;
            if n == 0 {
                self.frames.finish();
                return Ok(None);
            }
        }
    }
}

impl Deframer {
    /// A deframer refusing frames longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Deframer {
            buf: Vec::with_capacity(8192),
            scanned: 0,
            in_frame: false,
            limit,
            ignored: 0,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether a frame has started but not ended.
    pub fn mid_frame(&self) -> bool {
        self.in_frame
    }

    /// How many bytes outside frames were skipped since the last call.
    pub fn take_ignored(&mut self) -> usize {
        std::mem::take(&mut self.ignored)
    }

    /// The input has ended: a partial frame is dropped, other bytes left
    /// over count as ignored.
    pub fn finish(&mut self) {
        if !self.in_frame {
            self.ignored += self.buf.len();
        }
        self.buf.clear();
        self.in_frame = false;
        self.scanned = 0;
    }

    /// Extracts a frame from the bytes pushed so far, if one is complete.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if !self.in_frame {
            match memchr::memchr(START, &self.buf) {
                Some(at) => {
                    self.ignored += at;
                    self.buf.drain(..=at);
                    self.in_frame = true;
                    self.scanned = 0;
                }
                None => {
                    self.ignored += self.buf.len();
                    self.buf.clear();
                    return None;
                }
            }
        }
        match memchr::memchr(END, &self.buf[self.scanned..]) {
            Some(rel) => {
                let end = self.scanned + rel;
                // The end marker is 0x1C 0x0D; wait for the CR if it has not
                // arrived, and accept a bare 0x1C followed by anything else.
                if end + 1 == self.buf.len() {
                    self.scanned = end;
                    return None;
                }
                let skip = if self.buf[end + 1] == CR { 2 } else { 1 };
                let message: Vec<u8> = self.buf[..end].to_vec();
                self.buf.drain(..end + skip);
                self.in_frame = false;
                self.scanned = 0;
                if message.len() > self.limit {
                    return Some(Frame::TooLarge { limit: self.limit });
                }
                Some(Frame::Message(message))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > self.limit {
                    self.buf.clear();
                    self.in_frame = false;
                    self.scanned = 0;
                    return Some(Frame::TooLarge { limit: self.limit });
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(chunks: Vec<&'static [u8]>, limit: usize) -> (Vec<Frame>, usize) {
        let (mut tx, rx) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in chunks {
                tx.write_all(c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut r = FrameReader::new(rx, limit);
        let mut out = Vec::new();
        while let Some(f) = r.next().await.unwrap() {
            out.push(f);
        }
        (out, r.take_ignored())
    }

    #[tokio::test]
    async fn frames_split_and_pipelined() {
        let (f, ignored) = frames(
            vec![
                b"noise\x0bMSH|A",
                b"\rPID\x1c",
                b"\r\x0bMSH|B\x1c\r\x0bMSH|C\x1c\rtrail",
            ],
            1024,
        )
        .await;
        assert_eq!(
            f,
            vec![
                Frame::Message(b"MSH|A\rPID".to_vec()),
                Frame::Message(b"MSH|B".to_vec()),
                Frame::Message(b"MSH|C".to_vec()),
            ]
        );
        assert_eq!(ignored, "noise".len() + "trail".len());
    }

    #[tokio::test]
    async fn oversized_frames_are_reported_and_memory_stays_bounded() {
        let big: &'static [u8] = Box::leak(vec![b'x'; 5000].into_boxed_slice());
        let (f, _) = frames(vec![b"\x0b", big, big, b"\x1c\r\x0bOK\x1c\r"], 1000).await;
        assert_eq!(f[0], Frame::TooLarge { limit: 1000 });
        assert_eq!(f.last().unwrap(), &Frame::Message(b"OK".to_vec()));
    }

    #[test]
    fn deframes_byte_by_byte_in_memory() {
        let input = b"x\x0bMSH|A\x1c\r\x0bMSH|B\x1cZ\x0bpartial";
        let mut d = Deframer::new(1024);
        let mut found = Vec::new();
        for b in input {
            d.push(&[*b]);
            while let Some(f) = d.next_frame() {
                found.push(f);
            }
        }
        assert_eq!(
            found,
            vec![
                Frame::Message(b"MSH|A".to_vec()),
                Frame::Message(b"MSH|B".to_vec())
            ]
        );
        assert!(d.mid_frame());
        d.finish();
        assert!(!d.mid_frame() && d.next_frame().is_none());
        assert_eq!(d.take_ignored(), "xZ".len());
    }

    #[test]
    fn frames_a_message() {
        assert_eq!(frame(b"MSH"), b"\x0bMSH\x1c\r");
    }
}
