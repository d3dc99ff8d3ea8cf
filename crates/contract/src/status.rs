use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a document review stands. The only legal transitions are
/// `PendingReview → Accepted` and `PendingReview → Declined`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DocumentStatus {
    PendingReview,
    Accepted,
    Declined,
}

impl DocumentStatus {
    pub const ALL: [DocumentStatus; 3] = [Self::PendingReview, Self::Accepted, Self::Declined];

    /// The wire (and database) spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PendingReview => "PENDING_REVIEW",
            Self::Accepted => "ACCEPTED",
            Self::Declined => "DECLINED",
        }
    }

    /// Where every review starts (a serde default).
    pub const fn pending() -> Self {
        Self::PendingReview
    }

    /// True once the help desk has made up its mind.
    pub const fn is_decided(self) -> bool {
        !matches!(self, Self::PendingReview)
    }
}

impl fmt::Display for DocumentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of [`DocumentStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown document status {0:?} (expected PENDING_REVIEW, ACCEPTED or DECLINED)")]
pub struct UnknownStatus(pub String);

impl FromStr for DocumentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_wire_spelling() {
        for status in DocumentStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<DocumentStatus>(&json).unwrap(), status);
            assert_eq!(status.as_str().parse::<DocumentStatus>().unwrap(), status);
        }
    }

    #[test]
    fn an_unknown_status_is_refused() {
        assert!("APPROVED".parse::<DocumentStatus>().is_err());
        assert!("accepted".parse::<DocumentStatus>().is_err());
        assert!(serde_json::from_str::<DocumentStatus>("\"MAYBE\"").is_err());
    }
}
