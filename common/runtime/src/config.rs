//! Configuration from the environment, read once: [`Env::process`] captures the process
//! environment the first time it is called (at start-up), and every setting is parsed from that
//! snapshot, so a bad value fails the start with a message naming its variable, and nothing
//! changes under a running process.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;

/// A configuration value that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment, captured on the first call (which `main` makes before anything
    /// else) and the same snapshot on every later call.
    pub fn process() -> &'static Env {
        static PROCESS: OnceLock<Env> = OnceLock::new();
        PROCESS.get_or_init(|| {
            // A value that is not UTF-8 is kept, lossily, so that parsing it names the variable.
            Self::from_pairs(std::env::vars_os().map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            }))
        })
    }

    /// Variables from pairs (for tests, and for settings read from elsewhere).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The variable's value, `None` when unset or blank.
    pub fn var(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }

    /// The variable's value or a default.
    pub fn or(&self, name: &str, default: &str) -> String {
        self.var(name).unwrap_or_else(|| default.to_owned())
    }

    /// The variable parsed, or `default` when unset; an unparsable value is an error naming it.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.var(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::new(name, &value, e.to_string())),
        }
    }

    /// Like [`Env::parse`], and at least `min`.
    pub fn parse_at_least<T>(&self, name: &str, default: T, min: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse(name, default)?;
        if value < min {
            return Err(ConfigError::new(
                name,
                &value.to_string(),
                format!("must be at least {min}"),
            ));
        }
        Ok(value)
    }
}

impl Env {
    /// Like [`Env::parse`], and within `min..=max`: durations beyond any sensible bound are
    /// refused at start-up rather than overflowing a deadline later.
    pub fn parse_within<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse(name, default)?;
        if value < min || value > max {
            return Err(ConfigError::new(
                name,
                &value.to_string(),
                format!("must be from {min} to {max}"),
            ));
        }
        Ok(value)
    }
}

/// [`Env::parse_within`] of the process snapshot ([`Env::process`]).
pub fn env_parse_within<T>(name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    Env::process().parse_within(name, default, min, max)
}

/// [`Env::var`] of the process snapshot ([`Env::process`]).
pub fn env_var(name: &str) -> Option<String> {
    Env::process().var(name)
}

/// [`Env::or`] of the process snapshot ([`Env::process`]).
pub fn env_or(name: &str, default: &str) -> String {
    Env::process().or(name, default)
}

/// [`Env::parse`] of the process snapshot ([`Env::process`]).
pub fn env_parse<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Env::process().parse(name, default)
}

/// The `http://host:port` URI of a gRPC service address given as `host:port` or
/// `http://host:port` (a trailing `/` is ignored); anything else (TLS, another scheme, a path,
/// no host) is an error naming the variable `name`.
pub fn grpc_uri(name: &str, address: &str) -> Result<String, ConfigError> {
    let error = |reason: &str| ConfigError::new(name, address, reason);
    const EXPECTED: &str = "expected host:port or http://host:port";
    let trimmed = address.trim();
    let rest = if let Some(rest) = trimmed.strip_prefix("http://") {
        rest
    } else if trimmed.starts_with("https://") {
        return Err(error(
            "TLS is not supported; use host:port or http://host:port",
        ));
    } else if trimmed.contains("://") {
        return Err(error(EXPECTED));
    } else {
        trimmed
    };
    let authority = rest.trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        // A bracketed IPv6 address without a port ends in `]`.
        Some((host, port)) if !port.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_hexdigit() || c == ':')),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if !host_ok || !port_ok {
        return Err(error(EXPECTED));
    }
    Ok(format!("http://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_from_the_snapshot_and_errors_name_the_variable() {
        let env = Env::from_pairs([("PORT", " 8081 "), ("BLANK", "  "), ("BAD", "x")]);
        assert_eq!(env.parse("PORT", 1u16).unwrap(), 8081);
        assert_eq!(env.parse("MISSING", 7u16).unwrap(), 7);
        assert_eq!(env.var("BLANK"), None);
        assert_eq!(env.or("BLANK", "d"), "d");
        let error = env.parse::<u16>("BAD", 1).unwrap_err();
        assert_eq!(error.name, "BAD");
        assert!(error.to_string().contains("BAD=\"x\""), "{error}");
        let error = Env::from_pairs([("N", "0")])
            .parse_at_least("N", 6i32, 1)
            .unwrap_err();
        assert_eq!(error.name, "N");
        assert!(error.reason.contains("at least 1"), "{error}");
    }

    #[test]
    fn grpc_addresses_are_accepted_with_or_without_the_scheme() {
        for (address, uri) in [
            ("localhost:50051", "http://localhost:50051"),
            ("http://user-service:50051/", "http://user-service:50051"),
            (" 127.0.0.1:1 ", "http://127.0.0.1:1"),
            ("[::1]:50051", "http://[::1]:50051"),
            ("user-service", "http://user-service"),
        ] {
            assert_eq!(grpc_uri("X", address).unwrap(), uri, "{address}");
        }
    }

    #[test]
    fn unusable_grpc_addresses_name_the_variable() {
        for bad in [
            "",
            "https://x:1",
            "grpc://x:1",
            "x:1/path",
            "http://",
            "a b:1",
            "x:port",
            "x:70000",
            "[::1",
        ] {
            let error = grpc_uri("USER_SERVICE_ADDRESS", bad).unwrap_err();
            assert_eq!(error.name, "USER_SERVICE_ADDRESS", "{bad}");
        }
    }
}
