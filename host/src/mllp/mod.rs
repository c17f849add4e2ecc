//! MLLP, the transport HL7 v2 travels over: the framing ([`frame`]), the
//! client side that MLLP destinations and `interlink send` use to send a
//! message and read its ACK ([`client`]); listeners accept connections with
//! [`crate::server`]. What a listener does with a
//! message is in `triggers/mllp`, what a destination does with an ACK in
//! `delivery/mllp`.

pub mod client;
pub mod frame;

pub use frame::{Deframer, Frame, FrameReader, frame};

pub use crate::server::{AsyncReadWrite, Stream};
