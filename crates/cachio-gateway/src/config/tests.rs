//! Each setting given as a flag, as a TOML key and through the builder lands in the same place,
//! and a flag given beats the file.

use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use http::HeaderName;

use super::Config;
use crate::{ForwardedHeaders, Gateway, GatewayBuilder, KeyOptions, Sharing};

/// The binary's command line: the settings and a file.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    settings: Config,
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

const UPSTREAM: &str = "http://127.0.0.1:9";

/// What a builder holds, its purge token included (its `Debug` hides the token).
fn seen(b: &GatewayBuilder) -> String {
    format!("{b:?} token={:?}", b.site.settings.purge_token)
}

fn from_flags(flags: &[&str]) -> Config {
    let args = ["cachio-gateway", "--upstream", UPSTREAM]
        .iter()
        .chain(flags);
    Cli::try_parse_from(args)
        .unwrap_or_else(|e| panic!("{flags:?}: {e}"))
        .settings
}

fn from_file(toml: &str) -> Config {
    Config::from_toml(&format!("upstream = \"{UPSTREAM}\"\n{toml}"))
        .unwrap_or_else(|e| panic!("{toml}: {e}"))
}

/// The file's settings with the flags given laid over them, as the binary does.
fn flags_over_file(toml: &str, flags: &[&str]) -> Config {
    let args = ["cachio-gateway"].iter().chain(flags);
    let matches = Cli::command().try_get_matches_from(args).unwrap();
    let mut config = Config::from_toml(toml).unwrap();
    config.update_from_arg_matches(&matches).unwrap();
    config
}

type Set = fn(GatewayBuilder) -> GatewayBuilder;

/// Every setting: its flags, its TOML, and the builder calls it stands for (`None` for the
/// binary's own settings: listeners and workers).
const CASES: &[(&[&str], &str, Option<Set>)] = &[
    (
        &["--listen", "127.0.0.1:1"],
        "listen = \"127.0.0.1:1\"",
        None,
    ),
    (
        &["--listen-tls", "127.0.0.1:2"],
        "listen-tls = \"127.0.0.1:2\"",
        None,
    ),
    (
        &["--tls-cert", "c.pem", "--tls-key", "k.pem"],
        "tls-cert = \"c.pem\"\ntls-key = \"k.pem\"",
        None,
    ),
    (&["--workers", "3"], "workers = 3", None),
    (
        &["--upstream-ca", "ca.pem"],
        "upstream-ca = \"ca.pem\"",
        Some(|b| b.upstream_ca("ca.pem")),
    ),
    (
        &["--upstream-cert", "c.pem", "--upstream-key", "k.pem"],
        "upstream-cert = \"c.pem\"\nupstream-key = \"k.pem\"",
        Some(|b| b.upstream_client_cert("c.pem", "k.pem")),
    ),
    (
        &["--mode", "private"],
        "mode = \"private\"",
        Some(|b| b.mode(Sharing::Private)),
    ),
    (
        &["--memory-mb", "3"],
        "memory-mb = 3",
        Some(|b| b.memory_bytes(3 << 20)),
    ),
    (
        &["--disk-dir", "d", "--disk-mb", "5"],
        "disk-dir = \"d\"\ndisk-mb = 5",
        Some(|b| b.disk("d", 5 << 20)),
    ),
    (
        &["--disk-dir", "d", "--disk-cache-mb", "8"],
        "disk-dir = \"d\"\ndisk-cache-mb = 8",
        Some(|b| {
            b.disk("d", crate::DEFAULT_DISK_BYTES)
                .disk_cache_bytes(8 << 20)
        }),
    ),
    (
        &["--disk-dir", "d"],
        "disk-dir = \"d\"",
        Some(|b| b.disk("d", crate::DEFAULT_DISK_BYTES)),
    ),
    (
        &["--max-object-mb", "2"],
        "max-object-mb = 2",
        Some(|b| b.max_object_bytes(2 << 20)),
    ),
    (
        &["--fill-window-mb", "1"],
        "fill-window-mb = 1",
        Some(|b| b.fill_window(1 << 20)),
    ),
    (
        &["--fill-after-disconnect-mb", "0"],
        "fill-after-disconnect-mb = 0",
        Some(|b| b.fill_after_disconnect(0)),
    ),
    (
        &["--cache-name", "edge"],
        "cache-name = \"edge\"",
        Some(|b| b.cache_name("edge")),
    ),
    (
        &["--purge-token", "t0k"],
        "purge-token = \"t0k\"",
        Some(|b| b.purge_token(Some("t0k".into()))),
    ),
    (
        &["--grace-secs", "7"],
        "grace-secs = 7",
        Some(|b| b.grace(Duration::from_secs(7))),
    ),
    (
        &["--default-ttl-secs", "9"],
        "default-ttl-secs = 9",
        Some(|b| b.default_ttl(Some(Duration::from_secs(9)))),
    ),
    (
        &["--rewrite-host"],
        "rewrite-host = true",
        Some(|b| b.rewrite_host(true)),
    ),
    (
        &["--upstream-timeout-secs", "0"],
        "upstream-timeout-secs = 0",
        Some(|b| b.upstream_timeout(None)),
    ),
    (
        &["--upstream-idle-secs", "2"],
        "upstream-idle-secs = 2",
        Some(|b| b.upstream_idle_timeout(Duration::from_secs(2))),
    ),
    (
        &["--store-set-cookie", "true"],
        "store-set-cookie = true",
        Some(|b| b.store_set_cookie(true)),
    ),
    (
        &["--targeted-field", "x-a", "--targeted-field", "x-b"],
        "targeted-fields = [\"x-a\", \"x-b\"]",
        Some(|b| {
            b.targeted_fields(vec![
                HeaderName::from_static("x-a"),
                HeaderName::from_static("x-b"),
            ])
        }),
    ),
    (
        &["--tag-header", "x-tags"],
        "tag-headers = [\"x-tags\"]",
        Some(|b| b.tag_headers(vec![HeaderName::from_static("x-tags")])),
    ),
    (
        &["--redis-url", "redis://127.0.0.1:1/"],
        "redis-url = \"redis://127.0.0.1:1/\"",
        Some(|b| b.redis_url("redis://127.0.0.1:1/")),
    ),
    (
        &["--redis-cluster", "redis://a:1,redis://b:2"],
        "redis-cluster = [\"redis://a:1\", \"redis://b:2\"]",
        Some(|b| b.redis_cluster(["redis://a:1", "redis://b:2"])),
    ),
    (
        &["--redis-prefix", "shop"],
        "redis-prefix = \"shop\"",
        Some(|b| b.redis_prefix("shop")),
    ),
    (
        &["--redis-timeout-ms", "20"],
        "redis-timeout-ms = 20",
        Some(|b| b.redis_timeout(Duration::from_millis(20))),
    ),
    (
        &["--redis-clock-skew-ms", "250"],
        "redis-clock-skew-ms = 250",
        Some(|b| b.redis_clock_skew(Duration::from_millis(250))),
    ),
    (
        &["--redis-ca", "ca.pem"],
        "redis-ca = \"ca.pem\"",
        Some(|b| b.redis_ca("ca.pem")),
    ),
    (
        &["--redis-cert", "c.pem", "--redis-key", "k.pem"],
        "redis-cert = \"c.pem\"\nredis-key = \"k.pem\"",
        Some(|b| b.redis_client_cert("c.pem", "k.pem")),
    ),
    (
        &["--forwarded-headers", "none"],
        "forwarded-headers = \"none\"",
        Some(|b| b.forwarded_headers(ForwardedHeaders::None)),
    ),
    (
        &["--trusted-proxy", "10.0.0.0/8"],
        "trusted-proxies = [\"10.0.0.0/8\"]",
        Some(|b| b.trusted_proxies(["10.0.0.0/8".parse().unwrap()])),
    ),
    (
        &["--pass-header", "x-original-url"],
        "pass-headers = [\"x-original-url\"]",
        Some(|b| b.pass_headers(vec![HeaderName::from_static("x-original-url")])),
    ),
    (
        &["--drop-header", "x-debug"],
        "drop-headers = [\"x-debug\"]",
        Some(|b| b.drop_headers(vec![HeaderName::from_static("x-debug")])),
    ),
    (
        &["--heuristics", "off"],
        "heuristics = false",
        Some(|b| b.heuristics(false)),
    ),
    (
        &["--admin-listen", "127.0.0.1:3"],
        "admin-listen = \"127.0.0.1:3\"",
        Some(|b| b.separate_admin(true)),
    ),
    (
        &["--key-header", "accept-language"],
        "key-headers = [\"accept-language\"]",
        Some(|b| b.cache_key(KeyOptions::new().header(HeaderName::from_static("accept-language")))),
    ),
    (
        &["--key-cookie", "lang"],
        "key-cookies = [\"lang\"]",
        Some(|b| b.cache_key(KeyOptions::new().cookie("lang"))),
    ),
    (
        &["--key-drop-query", "utm_*"],
        "key-drop-query = [\"utm_*\"]",
        Some(|b| b.cache_key(KeyOptions::new().drop_query("utm_*"))),
    ),
    (
        &["--key-sort-query"],
        "key-sort-query = true",
        Some(|b| b.cache_key(KeyOptions::new().sort_query(true))),
    ),
    (
        &["--debug-key"],
        "debug-key = true",
        Some(|b| b.debug_key(true)),
    ),
];

#[test]
fn each_setting_by_flag_by_file_and_by_builder_lands_in_one_place() {
    let defaults = seen(&from_file("").builder().unwrap());
    assert_eq!(defaults, seen(&Gateway::builder(UPSTREAM)));
    for &(flags, toml, set) in CASES {
        let by_flag = from_flags(flags);
        let by_file = from_file(toml);
        assert_eq!(by_flag, by_file, "{flags:?} and {toml}");
        assert_ne!(by_file, from_file(""), "{toml} sets nothing");
        let by_flag = seen(&by_flag.builder().unwrap());
        let by_file = seen(&by_file.builder().unwrap());
        assert_eq!(by_flag, by_file, "{flags:?} and {toml}");
        if let Some(set) = set {
            assert_eq!(by_file, seen(&set(Gateway::builder(UPSTREAM))), "{toml}");
            assert_ne!(by_file, defaults, "{toml} changes nothing in the builder");
        }
    }
}

#[test]
fn every_flag_has_a_case() {
    let flags: Vec<String> = CASES
        .iter()
        .flat_map(|(flags, _, _)| flags.iter())
        .filter(|f| f.starts_with("--"))
        .map(|f| f.to_string())
        .collect();
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "upstream" | "config" | "help" | "version") {
            continue;
        }
        assert!(flags.contains(&format!("--{long}")), "--{long} has no case");
    }
}

/// Flags that give other values than the file of the next test for some of its settings.
const FLAGS: &[&str] = &[
    "--memory-mb",
    "16",
    "--mode",
    "shared",
    "--heuristics",
    "on",
    "--key-header",
    "accept-language",
    "--redis-cluster",
    "redis://b:2,redis://c:3",
    "--upstream",
    "http://127.0.0.1:7",
];

#[test]
fn a_flag_beats_the_file_and_the_file_beats_the_default() {
    let file = "upstream = \"http://127.0.0.1:9\"\nmemory-mb = 8\ncache-name = \"edge\"\n\
                mode = \"private\"\nheuristics = false\nkey-headers = [\"accept\"]\n\
                redis-cluster = [\"redis://a:1\"]";
    let config = flags_over_file(file, FLAGS);
    let expected = Gateway::builder("http://127.0.0.1:7")
        .memory_bytes(16 << 20)
        .cache_name("edge")
        .mode(Sharing::Shared)
        .heuristics(true)
        .cache_key(KeyOptions::new().header(HeaderName::from_static("accept-language")))
        .redis_cluster(["redis://b:2", "redis://c:3"]);
    assert_eq!(seen(&config.builder().unwrap()), seen(&expected));
    // The same through `merge`, with the flags as a `Config` of their own.
    let flags = Cli::try_parse_from(["cachio-gateway"].iter().chain(FLAGS))
        .unwrap()
        .settings;
    let merged = Config::from_toml(file).unwrap().merge(flags);
    assert_eq!(merged, config);
    // No flag: the file's settings stay; nothing anywhere: the builder's defaults.
    let config = flags_over_file(file, &[]);
    assert_eq!(config, Config::from_toml(file).unwrap());
    assert_eq!(config.memory_mb, Some(8));
    assert_eq!(
        seen(
            &flags_over_file("upstream = \"http://127.0.0.1:9\"", &[])
                .builder()
                .unwrap()
        ),
        seen(&Gateway::builder(UPSTREAM))
    );
}

#[test]
fn merge_of_a_setting_toml_cannot_hold_gives_the_flags_alone() {
    let file = Config::from_toml("cache-name = \"edge\"\nmemory-mb = 8").unwrap();
    let over = Config {
        memory_mb: Some(u64::MAX),
        ..Config::default()
    };
    assert_eq!(file.clone().merge(over.clone()), over);
    // A path that is not UTF-8 (which only Unix paths can be).
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let over = Config {
            disk_dir: Some(std::ffi::OsStr::from_bytes(b"/tmp/\xff").into()),
            ..Config::default()
        };
        assert_eq!(file.clone().merge(over.clone()), over);
    }
    // What TOML holds merges key by key.
    let over = Config {
        memory_mb: Some(16),
        ..Config::default()
    };
    let merged = file.merge(over);
    assert_eq!(merged.memory_mb, Some(16));
    assert_eq!(merged.cache_name.as_deref(), Some("edge"));
}

#[test]
fn an_unknown_key_is_an_error() {
    let err = Config::from_toml("memory-mbb = 8").unwrap_err().to_string();
    assert!(err.contains("memory-mbb"), "{err}");
    let err = Config::from_toml("[[site]]\nname = \"a\"\nmemory-mb = 8")
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory-mb"), "{err}");
}
