//! The forwarding fields: `Forwarded` (RFC 7239) and the de facto `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `X-Forwarded-Host`. The gateway owns them: it sets them from the
//! connection, and drops the ones a client sent unless the client is a trusted proxy, whose
//! fields it keeps and appends to.
//!
//! An origin that builds links or redirects from `X-Forwarded-Host` (or `X-Host`,
//! `X-Forwarded-Scheme`, `Forwarded`, ...) would otherwise let one client choose what the cache
//! stores for everyone: the cache key does not include these fields, so a response to a request
//! with `X-Forwarded-Host: evil.example` is served to the next client (unkeyed-header cache
//! poisoning).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};
use serde::{Deserialize, Serialize};

use crate::{GatewayBuilder, GatewayError};

/// Which forwarding fields the gateway sets on the requests it sends to the origin.
///
/// Whichever it is, the forwarding fields a client sends are dropped unless the client is a
/// [trusted proxy](GatewayBuilder::trusted_proxies).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ForwardedHeaders {
    /// `Forwarded: for=…;host=…;proto=…` (RFC 7239).
    Forwarded,
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    XForwarded,
    /// Both `Forwarded` and the `X-Forwarded-*` fields (the default: origins read either).
    #[default]
    Both,
    /// None: the origin sees no forwarding field but those of trusted proxies.
    None,
}

impl ForwardedHeaders {
    fn forwarded(self) -> bool {
        matches!(self, Self::Forwarded | Self::Both)
    }

    fn x_forwarded(self) -> bool {
        matches!(self, Self::XForwarded | Self::Both)
    }
}

/// A range of IP addresses in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address
/// (`192.0.2.7`, a `/32` or `/128`).
///
/// # Example
///
/// ```
/// use cachio_gateway::Cidr;
///
/// let lan: Cidr = "10.0.0.0/8".parse()?;
/// assert!(lan.contains("10.1.2.3".parse().unwrap()));
/// assert!(!lan.contains("192.0.2.1".parse().unwrap()));
/// // An IPv4 peer seen through an IPv6 socket is the same peer.
/// assert!(lan.contains("::ffff:10.1.2.3".parse().unwrap()));
/// assert_eq!(lan.to_string(), "10.0.0.0/8");
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this range. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is taken
    /// as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = GatewayError;

    /// Parses `ADDRESS/PREFIX` or a single address; the host bits of the address are ignored.
    fn from_str(s: &str) -> Result<Self, GatewayError> {
        let bad = || GatewayError::Config(format!("`{s}` is not an IP address or a CIDR range"));
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        let network = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The forwarding settings of a gateway.
#[derive(Clone, Debug, Default)]
pub(crate) struct Forwarding {
    pub(crate) set: ForwardedHeaders,
    pub(crate) trusted: Vec<Cidr>,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Fields that describe the connection or the client's original request, besides `Forwarded`
/// and every `X-Forwarded-*`: origins and frameworks read them for the client's address, host or
/// scheme.
const CONNECTION_FIELDS: [&str; 9] = [
    "x-real-ip",
    "x-host",
    "x-original-host",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-url-scheme",
    "x-forwarded",
    "front-end-https",
];

/// Marks a request that came over the gateway's TLS listener: its forwarding fields say
/// `proto=https`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Secure;

/// Whether `name` is a forwarding field the gateway owns: `Forwarded`, `X-Forwarded-*`,
/// `X-Real-IP`, `X-Host` and the like.
pub(crate) fn is_forwarding(name: &HeaderName) -> bool {
    let n = name.as_str();
    *name == header::FORWARDED || n.starts_with("x-forwarded-") || CONNECTION_FIELDS.contains(&n)
}

impl Forwarding {
    /// Sets the forwarding fields of a request about to go to the origin, and drops the ones
    /// the client sent unless the connection comes from a trusted proxy.
    pub(crate) fn apply<B>(&self, req: &mut Request<B>) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
        let trusted = peer.is_some_and(|ip| self.trusted.iter().any(|c| c.contains(ip)));
        let proto = if req.extensions().get::<Secure>().is_some() {
            "https"
        } else {
            "http"
        };
        let host = host_of(req.uri(), req.headers());
        let headers = req.headers_mut();
        if !trusted {
            drop_forwarding(headers);
        }
        // A TLS terminator in front of the plain listener is a trusted proxy, whose
        // `X-Forwarded-Proto` (or `Forwarded: proto=`) is kept.
        if self.set.x_forwarded() {
            if let Some(ip) = peer {
                append(headers, X_FORWARDED_FOR, &ip.to_string());
            }
            if !headers.contains_key(X_FORWARDED_PROTO) {
                headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
            }
            if let Some(host) = &host
                && !headers.contains_key(X_FORWARDED_HOST)
            {
                headers.insert(X_FORWARDED_HOST, host.clone());
            }
        }
        if self.set.forwarded() {
            let node = match peer {
                Some(IpAddr::V4(ip)) => ip.to_string(),
                Some(IpAddr::V6(ip)) => format!("\"[{ip}]\""),
                None => "unknown".to_owned(),
            };
            let mut element = format!("for={node}");
            if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
                element.push_str(";host=");
                push_value(&mut element, host);
            }
            element.push_str(";proto=");
            element.push_str(proto);
            append(headers, header::FORWARDED, &element);
        }
    }
}

/// The host the client asked for: the target's authority (HTTP/2, absolute form), else `Host`.
fn host_of(uri: &Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => headers.get(header::HOST).cloned(),
    }
}

/// Removes every forwarding field from `headers`.
fn drop_forwarding(headers: &mut HeaderMap) {
    if !headers.keys().any(is_forwarding) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_forwarding(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Appends `value` as one more list element to the (comma-separated) field `name`, as one line.
fn append(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let mut line = Vec::new();
    for v in headers.get_all(&name) {
        line.extend_from_slice(v.as_bytes());
        line.extend_from_slice(b", ");
    }
    line.extend_from_slice(value.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&line) {
        headers.insert(name, v);
    }
}

/// Pushes a `Forwarded` parameter value: a token as it is, anything else quoted (RFC 7239 §4).
fn push_value(out: &mut String, value: &str) {
    let token = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

impl GatewayBuilder {
    /// Which forwarding fields the gateway sets on requests to the origin, from the connection
    /// (the client's address, `http`, the `Host` it asked for): [`ForwardedHeaders::Both`] by
    /// default. The forwarding fields a client sends (`Forwarded`, every `X-Forwarded-*`,
    /// `X-Real-IP`, `X-Host`, `X-Original-Host`, `X-Client-IP`, `True-Client-IP`, ...) are
    /// dropped whatever this is, unless the client is a [trusted
    /// proxy](Self::trusted_proxies): an origin that reflects them in a page would otherwise
    /// let one client choose what the cache serves to all (cache poisoning).
    pub fn forwarded_headers(mut self, set: ForwardedHeaders) -> Self {
        self.forwarding.set = set;
        self
    }

    /// The proxies in front of the gateway (a TLS terminator, a load balancer) whose forwarding
    /// fields are kept: for a request from one of these addresses, the gateway appends the
    /// peer's address to `X-Forwarded-For` and an element to `Forwarded`, and keeps its
    /// `X-Forwarded-Proto`, `X-Forwarded-Host` and the like. None by default. The peer address
    /// comes from [`serve`](crate::serve) or [`serve_threaded`](crate::serve_threaded) (or
    /// axum's `ConnectInfo<SocketAddr>`); without it no peer is trusted.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::{Cidr, Gateway};
    ///
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .trusted_proxies(["10.0.0.0/8".parse::<Cidr>()?, "::1".parse()?])
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn trusted_proxies(mut self, ranges: impl IntoIterator<Item = Cidr>) -> Self {
        self.forwarding.trusted = ranges.into_iter().collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::get("/p").header("host", "www.example.test");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let mut req = req.body(()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    fn all(req: &Request<()>, name: &str) -> Vec<String> {
        req.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn cidr_ranges() {
        let c: Cidr = "192.0.2.77/24".parse().unwrap();
        assert_eq!(c.to_string(), "192.0.2.0/24");
        assert!(c.contains("192.0.2.1".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/", "10.0.0/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_over_the_tls_listener_says_https() {
        let f = Forwarding::default();
        let mut req = request("198.51.100.7:5000", &[("x-forwarded-proto", "http")]);
        req.extensions_mut().insert(Secure);
        f.apply(&mut req);
        assert_eq!(all(&req, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            all(&req, "forwarded"),
            ["for=198.51.100.7;host=www.example.test;proto=https"]
        );
    }

    #[test]
    fn an_untrusted_peers_fields_are_replaced() {
        let f = Forwarding::default();
        let mut req = request(
            "198.51.100.7:5000",
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-scheme", "https"),
                ("x-host", "evil.example"),
                ("x-real-ip", "1.2.3.4"),
                ("forwarded", "for=1.2.3.4;host=evil.example"),
                ("x-other", "kept"),
            ],
        );
        f.apply(&mut req);
        assert_eq!(all(&req, "x-forwarded-for"), ["198.51.100.7"]);
        assert_eq!(all(&req, "x-forwarded-host"), ["www.example.test"]);
        assert_eq!(all(&req, "x-forwarded-proto"), ["http"]);
        assert_eq!(
            all(&req, "forwarded"),
            ["for=198.51.100.7;host=www.example.test;proto=http"]
        );
        for gone in ["x-forwarded-scheme", "x-host", "x-real-ip"] {
            assert!(all(&req, gone).is_empty(), "{gone}");
        }
        assert_eq!(all(&req, "x-other"), ["kept"]);
    }

    #[test]
    fn a_trusted_peers_fields_are_kept_and_appended_to() {
        let f = Forwarding {
            set: ForwardedHeaders::Both,
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let mut req = request(
            "[::ffff:10.0.0.2]:5000",
            &[
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-for", "203.0.113.2"),
                ("x-forwarded-proto", "https"),
                ("x-real-ip", "203.0.113.1"),
                ("forwarded", "for=203.0.113.1;proto=https"),
            ],
        );
        f.apply(&mut req);
        assert_eq!(
            all(&req, "x-forwarded-for"),
            ["203.0.113.1, 203.0.113.2, 10.0.0.2"]
        );
        assert_eq!(all(&req, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&req, "x-real-ip"), ["203.0.113.1"]);
        assert_eq!(
            all(&req, "forwarded"),
            ["for=203.0.113.1;proto=https, for=10.0.0.2;host=www.example.test;proto=http"]
        );
    }

    #[test]
    fn each_setting_sets_its_fields() {
        let ipv6 = |set| {
            let mut req = request("[2001:db8::1]:5000", &[]);
            req.headers_mut()
                .insert("host", HeaderValue::from_static("h.test:8080"));
            Forwarding {
                set,
                trusted: Vec::new(),
            }
            .apply(&mut req);
            req
        };
        let req = ipv6(ForwardedHeaders::Forwarded);
        assert_eq!(
            all(&req, "forwarded"),
            ["for=\"[2001:db8::1]\";host=\"h.test:8080\";proto=http"]
        );
        assert!(all(&req, "x-forwarded-for").is_empty());
        let req = ipv6(ForwardedHeaders::XForwarded);
        assert!(all(&req, "forwarded").is_empty());
        assert_eq!(all(&req, "x-forwarded-for"), ["2001:db8::1"]);
        let req = ipv6(ForwardedHeaders::None);
        assert!(!req.headers().keys().any(is_forwarding));
    }
}
