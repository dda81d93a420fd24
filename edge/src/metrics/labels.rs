//! The closed sets metric families are labelled with, each label written once.

/// `edge_origin_requests_total{result}`: how an origin fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginResult {
    /// A 2xx response.
    Success,
    /// A 3xx response.
    Redirection,
    /// A 4xx response.
    ClientError,
    /// A 5xx response (or any status outside 200-499).
    ServerError,
    /// No response: refused, reset, timed out.
    Error,
}

impl OriginResult {
    /// Every result.
    pub const ALL: [OriginResult; 5] = [
        OriginResult::Success,
        OriginResult::Redirection,
        OriginResult::ClientError,
        OriginResult::ServerError,
        OriginResult::Error,
    ];

    /// The class of an origin's `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => OriginResult::Success,
            300..=399 => OriginResult::Redirection,
            400..=499 => OriginResult::ClientError,
            _ => OriginResult::ServerError,
        }
    }

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            OriginResult::Success => "2xx",
            OriginResult::Redirection => "3xx",
            OriginResult::ClientError => "4xx",
            OriginResult::ServerError => "5xx",
            OriginResult::Error => "error",
        }
    }
}

/// `edge_config_reloads_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// Applied.
    Ok,
    /// Refused; the configuration in force stays.
    Error,
}

impl ReloadResult {
    /// Every result.
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Ok, ReloadResult::Error];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        }
    }
}

/// `edge_purge_requests_total{result}`: what became of a purge call on the admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeResult {
    /// Applied.
    Applied,
    /// A sequence already applied: acknowledged again, without effect.
    Duplicate,
    /// A malformed or oversized body.
    Invalid,
    /// No or a wrong bearer token.
    Unauthorized,
    /// A sequence that skips one.
    Gap,
    /// It could not be made durable.
    Error,
}

impl PurgeResult {
    /// Every result.
    pub const ALL: [PurgeResult; 6] = [
        PurgeResult::Applied,
        PurgeResult::Duplicate,
        PurgeResult::Invalid,
        PurgeResult::Unauthorized,
        PurgeResult::Gap,
        PurgeResult::Error,
    ];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            PurgeResult::Applied => "applied",
            PurgeResult::Duplicate => "duplicate",
            PurgeResult::Invalid => "invalid",
            PurgeResult::Unauthorized => "unauthorized",
            PurgeResult::Gap => "gap",
            PurgeResult::Error => "error",
        }
    }
}

/// `edge_purge_swept_objects_total{action}`: what a purge did to a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepAction {
    /// Deleted (a hard purge).
    Removed,
    /// Marked stale (a soft purge).
    Expired,
}

impl SweepAction {
    /// Every action.
    pub const ALL: [SweepAction; 2] = [SweepAction::Removed, SweepAction::Expired];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            SweepAction::Removed => "removed",
            SweepAction::Expired => "expired",
        }
    }
}

/// `edge_refusals_total{reason}`: requests the edge answered itself under a rule's edge logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An access rule refused the client.
    Denied,
    /// Redirected (`redirect`, `redirect_https`).
    Redirect,
    /// Over a rule's rate limit.
    RateLimited,
    /// A signed URL without a valid signature.
    BadSignature,
    /// A signed URL past its expiry.
    Expired,
}

impl Refusal {
    /// Every reason, registered at start.
    pub const ALL: [Refusal; 5] = [
        Refusal::Denied,
        Refusal::Redirect,
        Refusal::RateLimited,
        Refusal::BadSignature,
        Refusal::Expired,
    ];

    /// Its `Cache-Status` `detail`.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Denied => "denied",
            Refusal::Redirect => "redirect",
            Refusal::RateLimited => "rate-limited",
            Refusal::BadSignature => "bad-signature",
            Refusal::Expired => "expired",
        }
    }

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Denied => "denied",
            Refusal::Redirect => "redirect",
            Refusal::RateLimited => "rate_limited",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired => "expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_in_their_class() {
        let classes: Vec<_> = [200, 204, 301, 304, 404, 499, 500, 599, 100]
            .iter()
            .map(|s| OriginResult::of_status(*s).label())
            .collect();
        assert_eq!(
            classes,
            ["2xx", "2xx", "3xx", "3xx", "4xx", "4xx", "5xx", "5xx", "5xx"]
        );
    }
}

/// `edge_disk_scrubbed_total{result}`: what the scrub found of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrubResult {
    /// Every block as written.
    Ok,
    /// Damaged, and removed.
    Damaged,
}

impl ScrubResult {
    /// Every result.
    pub const ALL: [ScrubResult; 2] = [ScrubResult::Ok, ScrubResult::Damaged];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            ScrubResult::Ok => "ok",
            ScrubResult::Damaged => "damaged",
        }
    }
}

/// `edge_disk_admission_total{result}`: whether an object was written to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionResult {
    /// Written.
    Admitted,
    /// Not asked for often enough yet (`cache.disk.admission.min_uses`).
    Refused,
}

impl AdmissionResult {
    /// Every result.
    pub const ALL: [AdmissionResult; 2] = [AdmissionResult::Admitted, AdmissionResult::Refused];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            AdmissionResult::Admitted => "admitted",
            AdmissionResult::Refused => "refused",
        }
    }
}
