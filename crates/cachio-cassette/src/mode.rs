//! [`Mode`]: how a cassette uses its recordings and the network.

use std::fmt;
use std::str::FromStr;

/// The environment variable [`Mode::from_env_or`] reads.
pub const MODE_VAR: &str = "CACHIO_CASSETTE";

/// How a cassette uses its recordings and the network.
///
/// # Example
///
/// ```
/// use cachio_cassette::Mode;
///
/// assert_eq!("record-new".parse::<Mode>(), Ok(Mode::RecordNew));
/// // `CACHIO_CASSETTE=record cargo test` records again; plain `cargo test` replays.
/// let mode = Mode::from_env_or(Mode::Replay);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Goes to the network for each exchange once in the run and records it, replacing the
    /// recording from before; later uses in the run replay the new recording.
    Record,
    /// Replays recordings and never goes to the network for `GET` or `HEAD`: a request without a
    /// recording gets a `504` ([`Unmatched`](crate::Unmatched)).
    #[default]
    Replay,
    /// Replays what is recorded, and records what is not.
    RecordNew,
}

impl Mode {
    /// The mode named by the environment variable [`MODE_VAR`] (`record`, `replay`,
    /// `record-new`), or `default` when it is not set. A value it does not know is reported with
    /// a `tracing` warning and gives `default`.
    pub fn from_env_or(default: Mode) -> Mode {
        match std::env::var(MODE_VAR) {
            Ok(v) => v.parse().unwrap_or_else(|e: UnknownMode| {
                tracing::warn!("{e}; using {default:?}");
                default
            }),
            Err(_) => default,
        }
    }
}

/// A mode name [`Mode::from_str`] does not know.
///
/// # Example
///
/// ```
/// let err = "rec".parse::<cachio_cassette::Mode>().unwrap_err();
/// assert!(err.to_string().contains("rec"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownMode(String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown cassette mode {:?} (expected record, replay or record-new)",
            self.0
        )
    }
}

impl std::error::Error for UnknownMode {}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "record" => Ok(Mode::Record),
            "replay" => Ok(Mode::Replay),
            "record-new" | "record_new" | "recordnew" => Ok(Mode::RecordNew),
            _ => Err(UnknownMode(s.to_owned())),
        }
    }
}
