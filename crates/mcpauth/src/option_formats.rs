//! How options are written in configuration and shown in logs: durations as whole seconds or
//! milliseconds (`*_secs` / `*_ms` keys), secrets as whether they are set. A leaf: the option
//! types beside their services use it without reaching `options` (which re-exports it).

/// How a secret of the options shows in `Debug` (the SMTP password, client secrets, the
/// server secret): whether it is set, never its value. Every `Debug` of options uses it, so
/// that options can be logged.
pub fn redacted(secret: Option<&str>) -> Option<&'static str> {
    secret.map(|_| "<redacted>")
}

/// A [`Duration`](std::time::Duration) as a whole number of seconds, for `*_secs` keys:
/// `#[serde(with = "duration_secs")]`.
pub mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes whole seconds.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_secs())
    }

    /// Reads whole seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// A [`Duration`](std::time::Duration) as a whole number of milliseconds, for `*_ms` keys:
/// `#[serde(with = "duration_ms")]`.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes whole milliseconds (saturating: no configured duration comes near the limit).
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads whole milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
