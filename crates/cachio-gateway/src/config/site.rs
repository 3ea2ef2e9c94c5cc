//! One `[[site]]` table of the TOML file.

use serde::{Deserialize, Serialize};

use super::options::{NoOtherKeys, SiteOptions};
use crate::{GatewayError, Site};

/// One `[[site]]` table: a [`Site`]. Unset keys take the file's top-level settings.
///
/// # Example
///
/// ```
/// use cachio_gateway::Config;
///
/// let config = Config::from_toml(r#"
///     memory-mb = 256
///
///     [[site]]
///     name = "shop"
///     host = ["shop.example", "www.shop.example"]
///     upstream = "http://127.0.0.1:9001"
///     purge-token = "shop-token"
///     key-drop-query = ["utm_*", "fbclid", "gclid"]
///     key-sort-query = true
///
///     [[site]]
///     name = "blog"
///     host = ["blog.example"]
///     upstream = "http://127.0.0.1:9002"
///     default = true
/// "#)?;
/// let sites = config.site.as_deref().unwrap_or_default();
/// assert_eq!(sites[1].host, ["blog.example"]);
/// let gateway = config.builder()?.build()?;
/// # let _ = gateway;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct SiteConfig {
    /// The site's name: its keys' prefix and its name in `Cache-Status` (default: its first
    /// host).
    pub name: Option<String>,
    /// The hosts it answers for (ports ignored, any case).
    #[serde(default)]
    pub host: Vec<String>,
    /// Only paths under this prefix.
    pub path_prefix: Option<String>,
    /// Whether it answers the hosts no site names (else they get `421`).
    #[serde(default)]
    pub default: bool,
    /// Its upstream (required), and the options it sets for itself instead of taking the
    /// file's top-level ones.
    #[serde(flatten)]
    pub options: SiteOptions,
    /// Refuses a key no setting takes.
    #[serde(flatten, skip_serializing)]
    other_keys: NoOtherKeys,
}

impl SiteConfig {
    /// The [`Site`] of this table; `n` is its place in the file, for messages.
    pub(super) fn site(&self, n: usize) -> Result<Site, GatewayError> {
        let label = match &self.name {
            Some(name) => format!("site `{name}`"),
            None => format!("site {n}"),
        };
        let bad = |m: &str| GatewayError::Config(format!("{label} ([[site]] {n}): {m}"));
        if self.host.is_empty() && !self.default {
            return Err(bad("no host: give host = [\"example.com\"]"));
        }
        let Some(upstream) = &self.options.upstream else {
            return Err(bad("no upstream: give upstream = \"http://...\""));
        };
        let name = match (&self.name, self.host.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(host)) => host.to_ascii_lowercase(),
            (None, None) => return Err(bad("a default site without a host needs a name")),
        };
        let mut site = Site::new(name, upstream.clone())
            .hosts(self.host.iter().cloned())
            .default_site(self.default);
        if let Some(p) = &self.path_prefix {
            site = site.path_prefix(p.clone());
        }
        self.options.apply(site).map_err(|m| bad(&m))
    }
}
