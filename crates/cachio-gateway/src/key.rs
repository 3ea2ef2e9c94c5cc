//! Cache keys users shape: request headers and cookies added to the key, query parameters
//! dropped or sorted, and the site a key belongs to.

use cachio_core::key::primary_key;
use http::HeaderName;
use http::header;
use http::request::Parts;

/// How a site's cache key is made from a request, on top of its URL (scheme, `Host`, path and
/// query, see [`cachio_core::key::primary_key`]).
///
/// Two requests share a stored response only when their keys are equal, so a header or cookie
/// added here splits a URL's entries by its value, and a dropped or reordered query parameter
/// merges them. Nothing here changes what goes to the origin: it sees the request as it came.
///
/// # Example
///
/// ```
/// use cachio_gateway::{Gateway, KeyOptions};
///
/// let key = KeyOptions::new()
///     .header(http::HeaderName::from_static("accept-language"))
///     .cookie("currency")
///     .drop_query("utm_*")
///     .drop_query("fbclid")
///     .sort_query(true);
/// let gateway = Gateway::builder("http://127.0.0.1:9000")
///     .cache_key(key)
///     .debug_key(true)
///     .build()?;
/// # let _ = gateway;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct KeyOptions {
    headers: Vec<HeaderName>,
    cookies: Vec<String>,
    drop_query: Vec<String>,
    sort_query: bool,
}

impl KeyOptions {
    /// The plain URL key: no header, no cookie, the query as it came.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the values of the request header `name` to the key (an absent header is a value of
    /// its own).
    pub fn header(mut self, name: HeaderName) -> Self {
        self.headers.push(name);
        self
    }

    /// Adds the value of the cookie `name` to the key (an absent cookie is a value of its own).
    /// The request still carries its `Cookie`, so a shared cache still gives its response no
    /// heuristic freshness: it is stored only with an explicit lifetime.
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookies.push(name.into());
        self
    }

    /// Leaves the query parameter `name` out of the key; a trailing `*` makes it a prefix
    /// (`utm_*` drops `utm_source`, `utm_medium`, ...).
    pub fn drop_query(mut self, name: impl Into<String>) -> Self {
        self.drop_query.push(name.into());
        self
    }

    /// Sorts the query parameters by name in the key (the values of one name keep their order),
    /// so `?a=1&b=2` and `?b=2&a=1` share an entry.
    pub fn sort_query(mut self, sort: bool) -> Self {
        self.sort_query = sort;
        self
    }

    fn is_plain(&self) -> bool {
        self.headers.is_empty()
            && self.cookies.is_empty()
            && self.drop_query.is_empty()
            && !self.sort_query
    }

    fn drops(&self, name: &str) -> bool {
        self.drop_query
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }
}

/// A site's key function: its name in brackets (none for the single upstream), its URL with the
/// query shaped, then ` h:NAME=VALUE` for each keyed header and ` c:NAME=VALUE` for each keyed
/// cookie. A URL holds no space, so what follows the first space is the headers' and cookies'.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyShape {
    /// `[name]`, or empty.
    site: String,
    options: KeyOptions,
}

impl KeyShape {
    pub(crate) fn new(site: Option<&str>, options: KeyOptions) -> Self {
        Self {
            site: site.map(|s| format!("[{s}]")).unwrap_or_default(),
            options,
        }
    }

    /// Whether this is the layer's own key (no function needs to be set).
    pub(crate) fn is_default(&self) -> bool {
        self.site.is_empty() && self.options.is_plain()
    }

    /// What every key of this site starts with.
    pub(crate) fn site_prefix(&self) -> &str {
        &self.site
    }

    /// Whether keys of one URL differ by request headers or cookies.
    pub(crate) fn has_extras(&self) -> bool {
        !self.options.headers.is_empty() || !self.options.cookies.is_empty()
    }

    /// The site's prefix and the URL's key, its query shaped: what every key of the URL starts
    /// with.
    pub(crate) fn url_key(&self, parts: &Parts) -> String {
        let url = primary_key(parts);
        let mut key = String::with_capacity(self.site.len() + url.len());
        key.push_str(&self.site);
        match url.split_once('?') {
            Some((base, query))
                if !self.options.drop_query.is_empty() || self.options.sort_query =>
            {
                key.push_str(base);
                let mut params: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .filter(|p| !self.options.drops(p.split_once('=').map_or(*p, |(n, _)| n)))
                    .collect();
                if self.options.sort_query {
                    params.sort_by_key(|p| p.split_once('=').map_or(*p, |(n, _)| n));
                }
                if !params.is_empty() {
                    key.push('?');
                    key.push_str(&params.join("&"));
                }
            }
            _ => key.push_str(&url),
        }
        key
    }

    /// The whole key of a request.
    pub(crate) fn key(&self, parts: &Parts) -> String {
        let mut key = self.url_key(parts);
        for name in &self.options.headers {
            key.push_str(" h:");
            key.push_str(name.as_str());
            let mut values = parts.headers.get_all(name).iter().peekable();
            if values.peek().is_some() {
                key.push('=');
                for (i, v) in values.enumerate() {
                    if i > 0 {
                        key.push(',');
                    }
                    key.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
            }
        }
        for name in &self.options.cookies {
            key.push_str(" c:");
            key.push_str(name);
            if let Some(value) = cookie(parts, name) {
                key.push('=');
                key.push_str(value);
            }
        }
        key
    }
}

/// The first value of cookie `name` in the request's `Cookie` fields.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `key` as an RFC 8941 string, for `Cache-Status`'s `key` parameter (RFC 9211 §2.6): printable
/// ASCII only, `"` and `\` escaped.
pub(crate) fn sf_string(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut req = http::Request::get(uri).header("host", "Shop.example");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn plain_is_the_url() {
        let k = KeyShape::new(None, KeyOptions::new());
        assert!(k.is_default());
        assert_eq!(
            k.key(&parts("/p?b=1&a=2", &[])),
            "http://shop.example/p?b=1&a=2"
        );
    }

    #[test]
    fn query_shaping() {
        let k = KeyShape::new(
            Some("shop"),
            KeyOptions::new()
                .drop_query("utm_*")
                .drop_query("fbclid")
                .sort_query(true),
        );
        assert!(!k.is_default());
        assert_eq!(
            k.key(&parts(
                "/p?utm_source=x&b=2&fbclid=9&a=1&a=0&fbclidx=1",
                &[]
            )),
            "[shop]http://shop.example/p?a=1&a=0&b=2&fbclidx=1"
        );
        assert_eq!(
            k.key(&parts("/p?utm_source=x", &[])),
            "[shop]http://shop.example/p"
        );
    }

    #[test]
    fn headers_and_cookies() {
        let k = KeyShape::new(
            None,
            KeyOptions::new()
                .header(HeaderName::from_static("accept-language"))
                .cookie("currency"),
        );
        assert_eq!(
            k.key(&parts(
                "/p",
                &[("accept-language", "de"), ("cookie", "a=1; currency=EUR")]
            )),
            "http://shop.example/p h:accept-language=de c:currency=EUR"
        );
        assert_eq!(
            k.key(&parts("/p", &[])),
            "http://shop.example/p h:accept-language c:currency"
        );
    }

    #[test]
    fn sf_strings() {
        assert_eq!(sf_string("a\"b\\c\u{1}"), r#""a\"b\\c""#);
    }
}
