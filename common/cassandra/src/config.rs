//! Where the cluster is and which keyspace the read models live in.

use metachat_runtime::{ConfigError, Env};

pub const ENV_HOSTS: &str = "CASSANDRA_HOSTS";
pub const ENV_KEYSPACE: &str = "CASSANDRA_KEYSPACE";
pub const ENV_REPLICATION: &str = "CASSANDRA_REPLICATION";

/// The CQL native port, used for hosts given without one.
pub const DEFAULT_PORT: u16 = 9042;
pub const DEFAULT_KEYSPACE: &str = "metachat";
/// One replica: right for a single node; production sets `CASSANDRA_REPLICATION`, e.g.
/// `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`.
pub const DEFAULT_REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

/// Cassandra's limit on keyspace and table names.
const NAME_MAX: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CassandraConfig {
    /// Contact points as `host:port`; the driver discovers the other nodes from them.
    pub hosts: Vec<String>,
    /// A CQL identifier, lowercase (unquoted CQL names are case-insensitive).
    pub keyspace: String,
    /// The replication map used when the keyspace is created (an existing keyspace is kept
    /// as it is).
    pub replication: String,
}

impl CassandraConfig {
    /// The configuration from `env`; `CASSANDRA_HOSTS` must be set.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_env_if_set(env)?.ok_or_else(|| ConfigError {
            name: ENV_HOSTS.to_owned(),
            value: String::new(),
            reason: "must name at least one Cassandra node, e.g. cassandra1:9042,cassandra2"
                .to_owned(),
        })
    }

    /// The configuration from `env`, `None` when `CASSANDRA_HOSTS` is unset or empty (the
    /// embedded read store is used then).
    pub fn from_env_if_set(env: &Env) -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| env.var(name))
    }

    /// The configuration from any source of variables (`None` when `CASSANDRA_HOSTS` is
    /// unset or blank); a bad value is an error naming its variable.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let value = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(hosts) = value(ENV_HOSTS) else {
            return Ok(None);
        };
        let invalid = |name: &str, value: &str, reason: String| ConfigError {
            name: name.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let parsed_hosts = parse_hosts(&hosts).map_err(|r| invalid(ENV_HOSTS, &hosts, r))?;
        let keyspace = value(ENV_KEYSPACE).unwrap_or_else(|| DEFAULT_KEYSPACE.to_owned());
        let parsed_keyspace =
            parse_keyspace(&keyspace).map_err(|r| invalid(ENV_KEYSPACE, &keyspace, r))?;
        let replication = value(ENV_REPLICATION).unwrap_or_else(|| DEFAULT_REPLICATION.to_owned());
        let parsed_replication = parse_replication(&replication)
            .map_err(|r| invalid(ENV_REPLICATION, &replication, r))?;
        Ok(Some(Self {
            hosts: parsed_hosts,
            keyspace: parsed_keyspace,
            replication: parsed_replication,
        }))
    }

    /// The same cluster with another keyspace (a fresh one per test, for instance).
    pub fn with_keyspace(mut self, keyspace: &str) -> Result<Self, ConfigError> {
        self.keyspace = parse_keyspace(keyspace).map_err(|reason| ConfigError {
            name: ENV_KEYSPACE.to_owned(),
            value: keyspace.to_owned(),
            reason,
        })?;
        Ok(self)
    }

    /// A configuration for `hosts` (as in `CASSANDRA_HOSTS`) with the default keyspace and
    /// replication.
    pub fn for_hosts(hosts: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| (name == ENV_HOSTS).then(|| hosts.to_owned()))?.ok_or_else(|| {
            ConfigError {
                name: ENV_HOSTS.to_owned(),
                value: hosts.to_owned(),
                reason: "must name at least one Cassandra node".to_owned(),
            }
        })
    }
}

/// `host[:port]` entries separated by commas, as `host:port` (IPv6 addresses in brackets).
pub fn parse_hosts(value: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for entry in value.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err("has an empty entry; expected host[:port],host[:port],...".to_owned());
        }
        hosts.push(parse_host(entry)?);
    }
    Ok(hosts)
}

fn parse_host(entry: &str) -> Result<String, String> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{entry:?} opens '[' without closing it"))?;
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("{entry:?} is not an IPv6 address in brackets"));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                format!("{entry:?}: expected ':port' after the bracketed address")
            })?),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "{entry:?}: write an IPv6 address in brackets, e.g. [::1]:9042"
            ));
        }
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !valid {
            return Err(format!("{entry:?} is not a host name or IP address"));
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("{entry:?} has an invalid port (expected 1-65535)")),
        },
    };
    Ok(format!("{host}:{port}"))
}

/// A keyspace name: a CQL identifier (a letter, then letters, digits or '_'; at most 48),
/// lowercased.
pub fn parse_keyspace(value: &str) -> Result<String, String> {
    let name = value.trim();
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= NAME_MAX;
    if !valid {
        return Err(format!(
            "must be a CQL identifier: a letter, then letters, digits or '_', at most {NAME_MAX} characters"
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// `name` as a quoted CQL identifier (`"name"`, any `"` inside doubled): safe to put in a
/// statement, and never read as a keyword. Quoted names are case-sensitive, so pass a name
/// as the configuration holds it (lowercase): [`CassandraConfig::keyspace`].
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `table` of `keyspace`, fully qualified for a statement: `"keyspace".table`. The keyspace
/// is quoted ([`quote_identifier`]); the table name is written as given (a name from the
/// code, such as `user_read_model`).
pub fn qualified(keyspace: &str, table: &str) -> String {
    format!("{}.{table}", quote_identifier(keyspace))
}

/// A CQL replication map such as `{'class': 'SimpleStrategy', 'replication_factor': 1}`.
/// Only its shape is checked here (one map literal, no statement separators or comments);
/// Cassandra checks the strategy and its options when the keyspace is created.
pub fn parse_replication(value: &str) -> Result<String, String> {
    let map = value.trim();
    let shaped = map.starts_with('{')
        && map.ends_with('}')
        && map[1..].find(['{', '}']) == Some(map.len() - 2)
        && map.contains("'class'");
    if !shaped || map.contains(';') || map.contains("--") || map.contains("/*") {
        return Err(
            "must be a CQL replication map, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}"
                .to_owned(),
        );
    }
    Ok(map.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<CassandraConfig>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CassandraConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_hosts_are_set() {
        let config = config(&[(ENV_HOSTS, "cassandra")]).unwrap().unwrap();
        assert_eq!(config.hosts, ["cassandra:9042"]);
        assert_eq!(config.keyspace, "metachat");
        assert_eq!(config.replication, DEFAULT_REPLICATION);
        assert_eq!(self::config(&[]).unwrap(), None);
        assert_eq!(self::config(&[(ENV_HOSTS, "  ")]).unwrap(), None);
    }

    #[test]
    fn hosts_take_ports_and_bracketed_ipv6() {
        assert_eq!(
            parse_hosts(" a.example:19042, 10.0.0.2 ,[::1],[fe80::1]:9043,node_3").unwrap(),
            [
                "a.example:19042",
                "10.0.0.2:9042",
                "[::1]:9042",
                "[fe80::1]:9043",
                "node_3:9042"
            ]
        );
        for bad in [
            "a,,b",
            "a:0",
            "a:70000",
            "a:x",
            "::1",
            "[::1",
            "[::1]9042",
            "a b",
            ":9042",
            "[]",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let error = config(&[(ENV_HOSTS, "a:99999")]).unwrap_err();
        assert_eq!(error.name, ENV_HOSTS);
        let error = config(&[(ENV_HOSTS, "a"), (ENV_KEYSPACE, "meta-chat")]).unwrap_err();
        assert_eq!(error.name, ENV_KEYSPACE);
        assert!(error.to_string().contains("CASSANDRA_KEYSPACE"), "{error}");
        let error = config(&[(ENV_HOSTS, "a"), (ENV_REPLICATION, "3")]).unwrap_err();
        assert_eq!(error.name, ENV_REPLICATION);
        let missing = CassandraConfig::from_lookup(|_| None).unwrap();
        assert!(missing.is_none());
    }

    #[test]
    fn keyspaces_are_cql_identifiers() {
        assert_eq!(parse_keyspace("MetaChat_2").unwrap(), "metachat_2");
        let longest = "k".repeat(48);
        assert_eq!(parse_keyspace(&longest).unwrap(), longest);
        for bad in [
            "",
            "2fast",
            "_x",
            "a-b",
            "a b",
            "ä",
            "\"quoted\"",
            &"k".repeat(49),
        ] {
            assert!(parse_keyspace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_quoted_for_statements() {
        assert_eq!(quote_identifier("metachat"), "\"metachat\"");
        assert_eq!(quote_identifier("select"), "\"select\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            qualified("metachat_2", "user_read_model"),
            "\"metachat_2\".user_read_model"
        );
    }

    #[test]
    fn replication_must_be_one_map() {
        assert!(parse_replication(DEFAULT_REPLICATION).is_ok());
        assert!(parse_replication("{'class': 'NetworkTopologyStrategy', 'dc1': 3}").is_ok());
        for bad in [
            "",
            "SimpleStrategy",
            "{'replication_factor': 1}",
            "{'class': 'SimpleStrategy'}; DROP KEYSPACE x",
            "{'class': 'SimpleStrategy'} AND durable_writes = false",
            "{'class': 'X'} -- {",
        ] {
            assert!(parse_replication(bad).is_err(), "{bad}");
        }
    }
}
