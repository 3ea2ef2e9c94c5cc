//! TLS to Redis (`rediss://`): the certificates a store was given, the checks that a store never
//! talks in plaintext to a server it was told to reach over TLS, and the clients built with them.

use std::fmt;

use redis::RedisResult;

/// The TLS settings of a store: certificate authorities to trust instead of the system's root
/// certificates, and a client certificate for mutual TLS. Both in PEM.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    pub(crate) ca: Option<Vec<u8>>,
    /// The certificate chain and its private key.
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key, and the certificates say nothing useful in a log either.
        let set = |b: bool| if b { "<set>" } else { "<none>" };
        f.debug_struct("Tls")
            .field("ca", &set(self.ca.is_some()))
            .field("client", &set(self.client.is_some()))
            .finish()
    }
}

/// Whether `url` asks for TLS: `rediss://` (or redis-rs' other spelling, `valkeys://`).
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    })
}

impl Tls {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    /// Checks `urls` against these settings and this build, before any client is made: all of
    /// them TLS or none, no certificates for a plaintext server, no `#insecure`, and TLS compiled
    /// in when asked for. Installs the crypto provider when TLS is used.
    pub(crate) fn check(&self, urls: &[String]) -> Result<(), String> {
        let tls = urls.iter().filter(|u| is_tls_url(u)).count();
        if tls != 0 && tls != urls.len() {
            return Err(format!(
                "the Redis URLs {urls:?} mix rediss:// (TLS) and redis:// (plaintext): use one scheme"
            ));
        }
        if tls == 0 {
            if self.is_set() {
                return Err(format!(
                    "TLS certificates were given for {urls:?}, a plaintext redis:// URL: use rediss://"
                ));
            }
            return Ok(());
        }
        if let Some(url) = urls.iter().find(|u| u.contains('#')) {
            return Err(format!(
                "{url:?}: a URL fragment such as #insecure (no certificate verification) is not \
                 supported; give the server's CA instead"
            ));
        }
        self.check_compiled(&urls[0])
    }

    #[cfg(not(feature = "tls"))]
    fn check_compiled(&self, url: &str) -> Result<(), String> {
        Err(format!(
            "{url:?} asks for TLS, but cachio-redis was built without its `tls` feature \
             (cachio: `redis-tls`; cachio-gateway: `redis-tls`)"
        ))
    }

    #[cfg(feature = "tls")]
    fn check_compiled(&self, _url: &str) -> Result<(), String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        if let Some(ca) = &self.ca {
            let certs = CertificateDer::pem_slice_iter(ca)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the Redis CA is not valid PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the Redis CA holds no PEM certificate".into());
            }
        }
        install_provider();
        Ok(())
    }

    /// A client for the one server at `url`, with these certificates when it is `rediss://`.
    pub(crate) fn client(&self, url: &str) -> RedisResult<redis::Client> {
        #[cfg(feature = "tls")]
        if is_tls_url(url) {
            return redis::Client::build_with_tls(url, self.certificates());
        }
        redis::Client::open(url)
    }

    /// The certificates in the form redis-rs takes them; `None`s use the system's roots and no
    /// client certificate.
    #[cfg(feature = "tls")]
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        }
    }
}

/// redis-rs builds its rustls configuration with the process's default crypto provider, and our
/// rustls has only ring compiled in by us; another crate of the program may add aws-lc-rs, and
/// with two providers compiled in and none chosen rustls panics. So ring is chosen here, unless
/// the program chose one already (that one stays).
#[cfg(feature = "tls")]
fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tls_urls() {
        assert!(is_tls_url("rediss://h:6380/"));
        assert!(is_tls_url("REDISS://h"));
        assert!(is_tls_url("valkeys://h"));
        assert!(!is_tls_url("redis://h"));
        assert!(!is_tls_url("redis+unix:///tmp/s"));
        assert!(!is_tls_url("h:6379"));
    }

    #[test]
    fn never_plaintext_where_tls_was_asked_for() {
        let none = Tls::default();
        assert!(none.check(&urls(&["redis://a", "redis://b"])).is_ok());
        let e = none.check(&urls(&["rediss://a", "redis://b"])).unwrap_err();
        assert!(e.contains("mix"), "{e}");
        let with_ca = Tls {
            ca: Some(b"x".to_vec()),
            client: None,
        };
        let e = with_ca.check(&urls(&["redis://a"])).unwrap_err();
        assert!(e.contains("use rediss://"), "{e}");
        let e = none.check(&urls(&["rediss://a/#insecure"])).unwrap_err();
        assert!(e.contains("#insecure"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let tls = Tls {
            ca: Some(b"CA".to_vec()),
            client: Some((b"CERT".to_vec(), b"SECRET KEY".to_vec())),
        };
        let shown = format!("{tls:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("<set>"), "{shown}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_ca_must_hold_a_certificate() {
        let tls = Tls {
            ca: Some(b"not a certificate".to_vec()),
            client: None,
        };
        let e = tls.check(&urls(&["rediss://a"])).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
