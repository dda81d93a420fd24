//! Why a purge was not applied.

use edge_config::purge::InvalidPurge;

use crate::cache::disk::DiskError;

/// Why a purge was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The body names nothing, or something malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidPurge),
    /// A sequence past the next one: an earlier purge would be skipped.
    #[error("sequence {got} skips ahead: this node applied up to {applied}, send {} first", applied + 1)]
    Gap {
        /// Last applied.
        applied: u64,
        /// What was sent.
        got: u64,
    },
    /// The purge could not be made durable.
    #[error("cannot record the purge durably: {0}")]
    Store(#[from] DiskError),
    /// A record could not be encoded.
    #[error("cannot encode the purge record: {0}")]
    Encode(#[from] serde_json::Error),
}
