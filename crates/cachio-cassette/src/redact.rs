//! What is taken out of a recording before it is written.

use std::fmt;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The value a masked field is written with.
pub const MASK: &str = "REDACTED";

/// A recording about to be written, as a [`redact_with`](crate::CassetteBuilder::redact_with)
/// hook sees it: what it leaves in `request` and `response` is what reaches the disk.
///
/// # Example
///
/// ```
/// use cachio_cassette::{Cassette, Recording};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let cassette = Cassette::builder(dir.path())
///     .redact_with(|rec: &mut Recording<'_>| {
///         rec.response.remove("x-request-id");
///         if rec.url.contains("/login") {
///             rec.response.remove(http::header::SET_COOKIE);
///         }
///     })
///     .open()
///     .unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Recording<'a> {
    /// The recorded URL (the store key of the exchange).
    pub url: &'a str,
    /// The request fields the response's `Vary` selects: the only request fields recorded.
    pub request: &'a mut HeaderMap,
    /// Every response field line that will be written.
    pub response: &'a mut HeaderMap,
}

type Hook = dyn Fn(&mut Recording<'_>) + Send + Sync;

/// The redaction rules of a cassette.
#[derive(Clone)]
pub(crate) struct Redact {
    pub(crate) mask: Vec<HeaderName>,
    pub(crate) remove: Vec<HeaderName>,
    pub(crate) hooks: Vec<Arc<Hook>>,
}

impl Default for Redact {
    fn default() -> Self {
        Self {
            mask: vec![
                header::AUTHORIZATION,
                header::COOKIE,
                header::PROXY_AUTHORIZATION,
            ],
            remove: Vec::new(),
            hooks: Vec::new(),
        }
    }
}

impl Redact {
    pub(crate) fn add_hook<F>(&mut self, f: F)
    where
        F: Fn(&mut Recording<'_>) + Send + Sync + 'static,
    {
        self.hooks.push(Arc::new(f));
    }

    /// Applies the rules to the fields of one recording: removals, then masks, then the hooks.
    pub(crate) fn apply(&self, url: &str, request: &mut HeaderMap, response: &mut HeaderMap) {
        for map in [&mut *request, &mut *response] {
            for name in &self.remove {
                map.remove(name);
            }
            for name in &self.mask {
                // In place: the lines keep their order.
                if let header::Entry::Occupied(mut lines) = map.entry(name.clone()) {
                    for value in lines.iter_mut() {
                        *value = HeaderValue::from_static(MASK);
                    }
                }
            }
        }
        let mut rec = Recording {
            url,
            request,
            response,
        };
        for hook in &self.hooks {
            hook(&mut rec);
        }
    }
}

impl fmt::Debug for Redact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redact")
            .field("mask", &self.mask)
            .field("remove", &self.remove)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}
