//! Purges on the node: the admin `POST /purge` turns targets into ban rules (and removes exact
//! URLs at once), keeps the purge-log position durable, and says when the node has caught up.
//!
//! Order matters for "a purged object is never served": a purge's bans are in force before it
//! is acknowledged, every lookup is judged against them, every write into a tier is judged under
//! that tier's writer lock (through the cache's [`Admission`](crate::cache::Admission), which
//! the bans implement), and the sweep lists a tier under the same lock after the bans are in
//! force. So an object is either judged when it is stored, or listed and judged by the sweep;
//! only then are the bans retired.
//!
//! - [`bans`]: the rules and their index;
//! - [`judge`]: the one verdict every lookup, write and sweep asks for;
//! - [`purger`]: the sequence protocol of the purge log and the admin operations;
//! - [`targets`]: which rules a purge's targets become;
//! - [`records`]: what purge keeps in the disk tier's catalog;
//! - [`readiness`]: whether the node has caught up with the purge log;
//! - [`sweep`]: the background pass that applies the rules and retires them.

pub mod bans;
mod error;
pub mod judge;
pub mod purger;
pub mod readiness;
pub mod records;
pub mod sweep;
mod targets;

pub use bans::{Ban, Bans, Scope, Subject, Verdict};
pub use error::PurgeError;
pub use purger::{Purger, PurgerParts};
pub use readiness::Readiness;
pub use records::Loaded;
