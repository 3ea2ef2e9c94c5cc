//! Why a gateway could not be built.

use std::fmt;

/// Why a gateway could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum GatewayError {
    /// The upstream URL is not an `http://` or `https://` URL with a host.
    Upstream(String),
    /// A TLS setting cannot be used: a certificate or key file that cannot be read or parsed, a
    /// key that does not match its certificate.
    Tls(String),
    /// A setting is missing or invalid (a TOML file that does not parse, a bad header name).
    Config(String),
    /// The disk tier could not be opened.
    Disk(cachio_core::StoreError),
    /// A disk tier was asked for, but this build has no `disk` feature.
    DiskUnsupported,
    /// The Redis tier could not be set up (a URL that does not parse, a bad prefix).
    Redis(cachio_core::StoreError),
    /// A Redis tier was asked for, but this build has no `redis` feature.
    RedisUnsupported,
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Upstream(m) => write!(f, "bad upstream: {m}"),
            GatewayError::Config(m) => write!(f, "bad configuration: {m}"),
            GatewayError::Tls(m) => write!(f, "bad TLS setting: {m}"),
            GatewayError::Disk(_) => f.write_str("cannot open the disk tier"),
            GatewayError::DiskUnsupported => {
                f.write_str("a disk tier needs cachio-gateway built with the `disk` feature")
            }
            GatewayError::Redis(_) => f.write_str("cannot set up the Redis tier"),
            GatewayError::RedisUnsupported => {
                f.write_str("a Redis tier needs cachio-gateway built with the `redis` feature")
            }
        }
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatewayError::Disk(e) | GatewayError::Redis(e) => Some(e),
            _ => None,
        }
    }
}
