//! Versioned CQL migrations, recorded per domain in `schema_migrations`.
//!
//! Each domain (`user`, `diary`, ...) ships numbered CQL files. [`migrate`] applies, in
//! order, the versions the keyspace has not recorded yet, then records them. Migrations must
//! be idempotent DDL (`CREATE TABLE IF NOT EXISTS`, ...): replicas that start at once may
//! both apply a version before either records it, and a crash between applying and
//! recording applies it again. After each version the runner waits for every node to agree
//! on the schema, so the statements prepared next see the new tables everywhere.
//!
//! The session has no current keyspace (see [`crate::connect`]), so every statement names
//! its keyspace: a migration writes [`KEYSPACE_PLACEHOLDER`] where the keyspace goes
//! (`CREATE TABLE IF NOT EXISTS {keyspace}.things (...)`), and the runner puts the quoted
//! name of the keyspace it migrates there.

use std::collections::BTreeSet;

use scylla::client::session::Session;

use crate::{CassandraError, qualified, quote_identifier};

/// Where a migration's statements name the keyspace, as in `{keyspace}.user_read_model`;
/// [`migrate`] replaces it with the keyspace's quoted name (`"metachat"`) everywhere in a
/// statement (comments are gone by then), so a statement must not use it for anything else.
pub const KEYSPACE_PLACEHOLDER: &str = "{keyspace}";

/// The table recording the applied versions, in the migrated keyspace.
const TABLE: &str = "schema_migrations";

/// Applies the `migrations` of `domain` (`(version, CQL)`, versions ascending) that are not
/// recorded yet, in `keyspace` (a name as in [`crate::CassandraConfig::keyspace`]). Every
/// statement of a migration names its keyspace as [`KEYSPACE_PLACEHOLDER`]. Returns the
/// versions it applied.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    domain: &str,
    migrations: &[(u32, &str)],
) -> Result<Vec<u32>, CassandraError> {
    let malformed = |version: u32, reason: String| CassandraError::Migration {
        domain: domain.to_owned(),
        version,
        reason,
    };
    if domain.trim().is_empty() {
        return Err(malformed(0, "the domain name is empty".to_owned()));
    }
    let mut previous = 0;
    for (version, cql) in migrations {
        if *version <= previous {
            return Err(malformed(
                *version,
                format!("versions must be ascending from 1 (v{version} follows v{previous})"),
            ));
        }
        let statements = split_statements(cql);
        if statements.is_empty() {
            return Err(malformed(*version, "it has no statement".to_owned()));
        }
        // Nothing may depend on a current keyspace: the session has none.
        if let Some(i) = statements
            .iter()
            .position(|s| !s.contains(KEYSPACE_PLACEHOLDER))
        {
            return Err(malformed(
                *version,
                format!(
                    "statement {} ({} ...) does not name its keyspace as \
                     {KEYSPACE_PLACEHOLDER}, e.g. {KEYSPACE_PLACEHOLDER}.<table>",
                    i + 1,
                    head(&statements[i])
                ),
            ));
        }
        previous = *version;
    }

    let table = qualified(keyspace, TABLE);
    let quoted_keyspace = quote_identifier(keyspace);
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    domain text,
                    version int,
                    applied_at timestamp,
                    PRIMARY KEY (domain, version)
                )"
            ),
            &[],
        )
        .await
        .map_err(CassandraError::request)?;
    session
        .await_schema_agreement()
        .await
        .map_err(CassandraError::request)?;
    let applied: BTreeSet<i32> = session
        .query_unpaged(
            format!("SELECT version FROM {table} WHERE domain = ?"),
            (domain,),
        )
        .await
        .map_err(CassandraError::request)?
        .into_rows_result()
        .map_err(CassandraError::request)?
        .rows::<(i32,)>()
        .map_err(CassandraError::request)?
        .map(|row| row.map(|(v,)| v))
        .collect::<Result<_, _>>()
        .map_err(CassandraError::request)?;

    let mut newly = Vec::new();
    for (version, cql) in migrations {
        let stored = i32::try_from(*version)
            .map_err(|_| malformed(*version, "the version does not fit a CQL int".to_owned()))?;
        if applied.contains(&stored) {
            continue;
        }
        for (i, statement) in split_statements(cql).iter().enumerate() {
            session
                .query_unpaged(
                    statement.replace(KEYSPACE_PLACEHOLDER, &quoted_keyspace),
                    &[],
                )
                .await
                .map_err(|e| {
                    malformed(
                        *version,
                        format!("statement {} ({} ...): {e}", i + 1, head(statement)),
                    )
                })?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(|e| malformed(*version, format!("no schema agreement: {e}")))?;
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {table} (domain, version, applied_at) \
                     VALUES (?, ?, toTimestamp(now()))"
                ),
                (domain, stored),
            )
            .await
            .map_err(CassandraError::request)?;
        tracing::info!(domain, version, "applied CQL migration");
        newly.push(*version);
    }
    Ok(newly)
}

/// The first words of a statement, to name it in an error.
fn head(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The statements of a CQL file: split at `;`, without comments (`--`, `//`, `/* */`) and
/// blank statements. Semicolons inside quoted strings (`'...'`, `$$...$$`) and quoted
/// names (`"..."`) do not split.
pub fn split_statements(cql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut rest = cql;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("--") || rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
            continue;
        }
        if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").map_or(body.len(), |i| i + 2);
            current.push(' ');
            rest = &body[end..];
            continue;
        }
        if let Some(body) = rest.strip_prefix("$$") {
            let end = body.find("$$").map_or(body.len(), |i| i + 2);
            current.push_str("$$");
            current.push_str(&body[..end]);
            rest = &body[end..];
            continue;
        }
        if c == '\'' || c == '"' {
            // A quote inside is doubled ('it''s'), which reads as two adjacent quoted parts.
            let body = &rest[1..];
            let end = body.find(c).map_or(body.len(), |i| i + 1);
            current.push(c);
            current.push_str(&body[..end]);
            rest = &body[end..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c == ';' {
            statements.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    statements.push(current);
    statements
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let cql = "-- a comment; with a semicolon\n\
                   CREATE TABLE IF NOT EXISTS a (k int PRIMARY KEY) // trailing; comment\n\
                   WITH comment = 'semi; colon, it''s quoted';\n\
                   /* block; comment */ CREATE TABLE \"odd;name\" (k int PRIMARY KEY);\n\
                   INSERT INTO a (k) VALUES ($$x;y$$);\n\
                   ;  \n -- only a comment\n";
        assert_eq!(
            split_statements(cql),
            [
                "CREATE TABLE IF NOT EXISTS a (k int PRIMARY KEY) \n\
                 WITH comment = 'semi; colon, it''s quoted'",
                "CREATE TABLE \"odd;name\" (k int PRIMARY KEY)",
                "INSERT INTO a (k) VALUES ($$x;y$$)",
            ]
        );
        assert!(split_statements("-- nothing\n/* at all */ ;").is_empty());
        assert_eq!(split_statements("SELECT 1"), ["SELECT 1"]);
    }
}
