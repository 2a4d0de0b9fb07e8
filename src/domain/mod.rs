//! Pure rules of the waiting room: no I/O, no clocks, no backends.

pub mod challenge;
pub mod codes;
pub mod door;
pub mod event;
pub mod gate;
pub mod line;
pub mod order;
pub mod pass;
pub mod prequeue;
pub mod seat;
pub mod time;
pub mod token;
pub mod view;

pub use challenge::{Difficulty, Ticket};
pub use codes::{Access, CodeHash, CodeHasher, InviteCode};
pub use event::{
    Admission, AdmissionPatch, Currency, Event, EventId, EventPatch, EventSpec, InvalidField,
    Section,
};
pub use gate::{Origin, ReturnTo};
pub use order::{Holder, Order, OrderStatus};
pub use pass::{KeyError, Passes, PublicKey, SigningKey};
pub use seat::{BlockFilter, SeatId, SeatRef, SeatState, Venue, VersionedSeats};
pub use time::{from_unix_ms, unix_ms};
pub use token::{Pass, QueueToken, Signer, TokenKey, TokenKind};
pub use view::{Departure, LineView, LogEntry, LogPosition, PollMark, TokenStatus};
