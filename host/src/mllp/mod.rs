//! MLLP, the transport HL7 v2 travels over: the framing ([`frame`]), the
//! client side that MLLP destinations and `interlink send` use to send a
//! message and read its ACK ([`client`]), and the server side listeners
//! accept connections with ([`server`]). What a listener does with a
//! message is in `triggers/mllp`, what a destination does with an ACK in
//! `delivery/mllp`.

pub mod client;
pub mod frame;
pub mod server;

pub use frame::{Deframer, Frame, FrameReader, frame};

use tokio::io::{AsyncRead, AsyncWrite};

/// A stream MLLP can run over: plain TCP or TLS.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// A connection, plain or TLS.
pub type Stream = Box<dyn AsyncReadWrite>;
