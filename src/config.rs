//! Settings from the process environment (API.md, Configuration).

use std::fmt;
use std::net::SocketAddr;

use crate::domain::SigningKey;

/// A value that must never be printed by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub admin_token: Option<Secret>,
    pub secret: Option<Secret>,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub amqp_url: Option<String>,
    pub client_rate: u32,
    pub trust_forwarded: bool,
    /// The deployment's public base URL (`ANTEROOM_PUBLIC_URL`): what links and
    /// the passes' `iss` name; unset, `http://<the bound address>`.
    pub public_url: Option<url::Url>,
    pub namespace: String,
    /// Seed a demo event into an empty database (`ANTEROOM_DEMO`, default on).
    pub demo: bool,
    /// The key that signs passes (`ANTEROOM_SIGNING_KEY`; unset: derived from the secret).
    pub signing_key: Option<SigningKey>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The example deployments (infra/kubernetes, infra/docker-compose.cluster.yml)
/// mark the values an operator must replace with this; they are refused.
const PLACEHOLDER: &str = "change-me";

/// An admin token shorter than this is refused at start: with ten guesses per
/// minute per address allowed, 24 random characters are out of any farm's reach.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 24;

/// One setting of the environment: its variable, its default as the operator
/// reads it, and what it means. `anteroom --help` lists them from here.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every setting the service reads, in the order `--help` and the README list them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "ANTEROOM_ADDR",
        default: "127.0.0.1:8080",
        meaning: "listen address",
    },
    Setting {
        name: "ANTEROOM_ADMIN_TOKEN",
        default: "generated on first start, kept in the database",
        meaning: "bearer token for /api/admin/* (at least 24 characters)",
    },
    Setting {
        name: "ANTEROOM_SECRET",
        default: "generated in embedded mode; required with the servers",
        meaning: "key that signs queue tokens and passes; shared by every instance",
    },
    Setting {
        name: "DATABASE_URL",
        default: "sqlite://anteroom.db",
        meaning: "postgres://… or sqlite://…",
    },
    Setting {
        name: "REDIS_URL",
        default: "unset: embedded in-process store",
        meaning: "redis://… (one node), redis-cluster://… or redis-sentinel://…",
    },
    Setting {
        name: "AMQP_URL",
        default: "unset: embedded in-process queue",
        meaning: "amqp://…, or a comma-separated list of one cluster's nodes",
    },
    Setting {
        name: "ANTEROOM_CLIENT_RATE",
        default: "0",
        meaning: "joins and holds per client address per second; 0 turns the limit off",
    },
    Setting {
        name: "ANTEROOM_TRUST_FORWARDED",
        default: "false",
        meaning: "take the client address from X-Forwarded-For",
    },
    Setting {
        name: "ANTEROOM_PUBLIC_URL",
        default: "http://<ANTEROOM_ADDR>",
        meaning: "the deployment's public base URL as visitors reach it (the passes' iss, links in the gate's redirects)",
    },
    Setting {
        name: "ANTEROOM_SIGNING_KEY",
        default: "derived from ANTEROOM_SECRET",
        meaning: "PKCS#8 PEM private key (Ed25519 or EC P-256), or a path to one, that signs passes; shared by every instance",
    },
    Setting {
        name: "ANTEROOM_NAMESPACE",
        default: "anteroom",
        meaning: "prefix of every Redis key, RabbitMQ queue and PostgreSQL schema",
    },
    Setting {
        name: "ANTEROOM_DEMO",
        default: "1",
        meaning: "seed a demo event into an empty database (0: off)",
    },
    Setting {
        name: "RUST_LOG",
        default: "info",
        meaning: "log filter (tracing)",
    },
];

/// The settings as `--help` shows them.
pub fn settings_help() -> String {
    let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let lines: Vec<String> = SETTINGS
        .iter()
        .map(|s| {
            format!(
                "  {:width$}  {} [default: {}]",
                s.name, s.meaning, s.default
            )
        })
        .collect();
    format!("Settings (from the environment):\n{}", lines.join("\n"))
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bad = |name: &str, why: &str| ConfigError(format!("{name}: {why}"));
        let addr = get("ANTEROOM_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let config = Self {
            addr: addr
                .parse()
                .map_err(|_| bad("ANTEROOM_ADDR", "expected an address like 127.0.0.1:8080"))?,
            admin_token: get("ANTEROOM_ADMIN_TOKEN").map(Secret::new),
            secret: get("ANTEROOM_SECRET").map(Secret::new),
            database_url: get("DATABASE_URL").unwrap_or_else(|| "sqlite://anteroom.db".into()),
            redis_url: get("REDIS_URL"),
            amqp_url: get("AMQP_URL"),
            client_rate: get("ANTEROOM_CLIENT_RATE")
                .map(|v| {
                    v.parse().map_err(|_| {
                        bad(
                            "ANTEROOM_CLIENT_RATE",
                            "expected a whole number (0 turns it off)",
                        )
                    })
                })
                .transpose()?
                .unwrap_or(0),
            trust_forwarded: match get("ANTEROOM_TRUST_FORWARDED").as_deref() {
                None | Some("false" | "0" | "no") => false,
                Some("true" | "1" | "yes") => true,
                Some(_) => return Err(bad("ANTEROOM_TRUST_FORWARDED", "expected true or false")),
            },
            public_url: get("ANTEROOM_PUBLIC_URL")
                .map(|raw| {
                    public_url(&raw).ok_or_else(|| {
                        bad(
                            "ANTEROOM_PUBLIC_URL",
                            "expected an http:// or https:// URL such as https://queue.shop.example \
                             (a path is allowed; no query, fragment or user)",
                        )
                    })
                })
                .transpose()?,
            namespace: get("ANTEROOM_NAMESPACE").unwrap_or_else(|| "anteroom".into()),
            demo: match get("ANTEROOM_DEMO").as_deref() {
                None | Some("1" | "true" | "yes") => true,
                Some("0" | "false" | "no") => false,
                Some(_) => return Err(bad("ANTEROOM_DEMO", "expected 1 or 0")),
            },
            signing_key: get("ANTEROOM_SIGNING_KEY")
                .map(|value| signing_key(&value).map_err(|why| bad("ANTEROOM_SIGNING_KEY", &why)))
                .transpose()?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("ANTEROOM_SECRET", &self.secret),
            ("ANTEROOM_ADMIN_TOKEN", &self.admin_token),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.expose().contains(PLACEHOLDER))
            {
                return Err(ConfigError(format!(
                    "{name}: still the example's placeholder ({PLACEHOLDER}…): anyone who read the example \
                     could forge tokens or sign in; set a random value (e.g. `openssl rand -hex 32`)"
                )));
            }
        }
        if let Some(token) = &self.admin_token
            && token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(ConfigError(format!(
                "ANTEROOM_ADMIN_TOKEN: must be at least {MIN_ADMIN_TOKEN_CHARS} characters: a shorter one can be \
                 guessed (use a random one, e.g. `openssl rand -hex 24`, or leave it unset to have one generated)"
            )));
        }
        let ns_ok = (1..=40).contains(&self.namespace.len())
            && self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ns_ok {
            return Err(ConfigError(
                "ANTEROOM_NAMESPACE: expected 1 to 40 of [a-z0-9_-]".into(),
            ));
        }
        let postgres = self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://");
        if self.uses_servers() && !(self.redis_url.is_some() && self.amqp_url.is_some() && postgres)
        {
            return Err(ConfigError(
                "REDIS_URL, AMQP_URL and a postgres:// DATABASE_URL go together: set all three, or none for embedded mode"
                    .into(),
            ));
        }
        if !self.uses_servers() && postgres {
            return Err(ConfigError(
                "a postgres:// DATABASE_URL needs REDIS_URL and AMQP_URL too; embedded mode uses sqlite://".into(),
            ));
        }
        if !self.uses_servers() && !self.database_url.starts_with("sqlite:") {
            return Err(ConfigError(
                "DATABASE_URL: embedded mode expects sqlite://<file>".into(),
            ));
        }
        if self.uses_servers() && self.secret.is_none() {
            return Err(ConfigError(
                "ANTEROOM_SECRET is required with REDIS_URL and AMQP_URL: every instance must share it".into(),
            ));
        }
        Ok(())
    }

    /// The deployment's public base URL: the configured one, or `http://<addr>`
    /// for the address the server is bound to.
    pub fn public_url_or(&self, bound: SocketAddr) -> url::Url {
        self.public_url.clone().unwrap_or_else(|| {
            url::Url::parse(&format!("http://{bound}")).expect("a socket address makes a URL")
        })
    }

    /// Whether any backend server is configured (else: embedded mode).
    pub fn uses_servers(&self) -> bool {
        self.redis_url.is_some() || self.amqp_url.is_some()
    }
}

/// A public base URL: http(s), a host, an optional path (kept without its
/// trailing `/`, so that routes are appended to it), nothing else.
fn public_url(raw: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(raw).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return None;
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Some(url)
}

/// The key in `value`: a PEM, or the path of a file holding one.
fn signing_key(value: &str) -> Result<SigningKey, String> {
    let pem = if value.trim_start().starts_with("-----BEGIN") {
        value.to_owned()
    } else {
        // The value is not repeated: it may be key material without its PEM lines.
        std::fs::read_to_string(value.trim()).map_err(|e| {
            format!(
                "neither a PEM (-----BEGIN PRIVATE KEY-----) nor the path of a readable file ({e})"
            )
        })?
    };
    SigningKey::from_pem(&pem).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    const SERVERS: [(&str, &str); 4] = [
        ("REDIS_URL", "redis://127.0.0.1"),
        ("AMQP_URL", "amqp://127.0.0.1"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/anteroom"),
        ("ANTEROOM_SECRET", "s3cret"),
    ];

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://anteroom.db");
        assert_eq!(
            (c.client_rate, c.trust_forwarded, c.namespace.as_str()),
            (0, false, "anteroom")
        );
        assert!(!c.uses_servers());
    }

    #[test]
    fn the_three_servers_go_together() {
        assert!(config(&SERVERS).unwrap().uses_servers());
        for missing in ["REDIS_URL", "AMQP_URL", "DATABASE_URL"] {
            let vars: Vec<_> = SERVERS
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = config(&vars).unwrap_err();
            assert!(err.0.contains("go together"), "{missing}: {err}");
        }
    }

    #[test]
    fn postgres_alone_is_refused() {
        let err = config(&[("DATABASE_URL", "postgres://postgres@127.0.0.1/x")]).unwrap_err();
        assert!(err.0.contains("REDIS_URL and AMQP_URL"), "{err}");
    }

    #[test]
    fn servers_need_a_shared_secret() {
        let vars: Vec<_> = SERVERS
            .iter()
            .copied()
            .filter(|(k, _)| *k != "ANTEROOM_SECRET")
            .collect();
        assert!(config(&vars).unwrap_err().0.contains("ANTEROOM_SECRET"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("ANTEROOM_ADDR", "nowhere"),
            ("ANTEROOM_CLIENT_RATE", "-1"),
            ("ANTEROOM_TRUST_FORWARDED", "maybe"),
            ("ANTEROOM_NAMESPACE", "Bad Name"),
            ("ANTEROOM_DEMO", "maybe"),
            ("DATABASE_URL", "mysql://x"),
            ("ANTEROOM_PUBLIC_URL", "queue.shop.example"),
            ("ANTEROOM_PUBLIC_URL", "ftp://queue.shop.example"),
            ("ANTEROOM_PUBLIC_URL", "https://queue.shop.example/?a=1"),
        ] {
            assert!(
                config(&[(name, value)]).unwrap_err().0.starts_with(name),
                "{name}"
            );
        }
    }

    #[test]
    fn every_setting_read_is_listed_for_help_and_in_the_readme() {
        let read = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            read.borrow_mut().push(name.to_owned());
            None
        });
        let listed: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        for name in read.borrow().iter() {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is read but not listed in SETTINGS"
            );
        }
        let readme = include_str!("../README.md");
        for name in listed {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} is not in the README's table"
            );
            assert!(settings_help().contains(name));
        }
    }

    #[test]
    fn a_short_admin_token_is_refused_saying_why() {
        let err = config(&[("ANTEROOM_ADMIN_TOKEN", "hunter2")]).unwrap_err();
        assert!(
            err.0
                .starts_with("ANTEROOM_ADMIN_TOKEN: must be at least 24"),
            "{err}"
        );
        assert!(
            !err.0.contains("hunter2"),
            "the token itself is never repeated"
        );
        assert!(config(&[("ANTEROOM_ADMIN_TOKEN", "a-long-enough-admin-token-0")]).is_ok());
    }

    #[test]
    fn the_examples_placeholders_are_refused() {
        for name in ["ANTEROOM_SECRET", "ANTEROOM_ADMIN_TOKEN"] {
            let err = config(&[(name, "change-me-to-a-long-random-token")]).unwrap_err();
            assert!(
                err.0
                    .starts_with(&format!("{name}: still the example's placeholder")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address_and_loses_a_trailing_slash() {
        let bound: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        let at = |raw: &str| {
            config(&[("ANTEROOM_PUBLIC_URL", raw)])
                .unwrap()
                .public_url_or(bound)
                .to_string()
        };
        assert_eq!(
            config(&[]).unwrap().public_url_or(bound).as_str(),
            "http://127.0.0.1:41234/"
        );
        assert_eq!(
            at("https://queue.shop.example/"),
            "https://queue.shop.example/"
        );
        assert_eq!(
            at("https://shop.example/queue/"),
            "https://shop.example/queue"
        );
    }

    #[test]
    fn a_public_url_is_http_or_https_with_a_host() {
        for bad in [
            "tickets.example",
            "ftp://tickets.example",
            "https://",
            "https://a b",
        ] {
            let err = config(&[("ANTEROOM_PUBLIC_URL", bad)]).unwrap_err();
            assert!(err.0.starts_with("ANTEROOM_PUBLIC_URL: "), "{bad}: {err}");
        }
    }

    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMapFDBrmLRII0EZicxNFbG861RmcW8NcfYWOI6xRiUD
-----END PRIVATE KEY-----
";

    #[test]
    fn the_signing_key_is_a_pem_or_the_path_of_one() {
        let inline = config(&[("ANTEROOM_SIGNING_KEY", ED25519_PEM)]).unwrap();
        let path = std::env::temp_dir().join(format!("anteroom-key-{}.pem", std::process::id()));
        std::fs::write(&path, ED25519_PEM).unwrap();
        let from_file = config(&[("ANTEROOM_SIGNING_KEY", path.to_str().unwrap())]).unwrap();
        std::fs::remove_file(&path).unwrap();
        let kid = |c: &Config| c.signing_key.as_ref().map(|k| k.public().kid().to_owned());
        assert_eq!(
            kid(&inline),
            Some("L4qhqvNwEcvLmlR0ODBo8XKsWtNfZge6IVH4udCPQF0".into())
        );
        assert_eq!(kid(&from_file), kid(&inline));
        assert!(config(&[]).unwrap().signing_key.is_none());
    }

    #[test]
    fn a_bad_signing_key_stops_the_start_naming_the_variable() {
        let unreadable = config(&[("ANTEROOM_SIGNING_KEY", "/nonexistent/key.pem")]).unwrap_err();
        assert!(
            unreadable
                .0
                .starts_with("ANTEROOM_SIGNING_KEY: neither a PEM (-----BEGIN PRIVATE KEY-----) nor the path of a readable file ("),
            "{unreadable}"
        );
        let garbled = ED25519_PEM.replace("MC4", "XX4");
        let not_a_key = config(&[("ANTEROOM_SIGNING_KEY", &garbled)]).unwrap_err();
        assert!(
            not_a_key
                .0
                .starts_with("ANTEROOM_SIGNING_KEY: not a PEM private key"),
            "{not_a_key}"
        );
        assert!(
            !not_a_key.0.contains("MC4CAQ"),
            "the key itself is never repeated"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
    }
}
