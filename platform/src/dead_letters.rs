//! `metachat dead-letters`: the events projections parked because they could not apply them
//! ([`event_sourcing::dead_letter`]), listed, retried or dropped.

use std::sync::Arc;

use event_sourcing::dead_letter::{DeadLetters, LetterFilter};
use event_sourcing::postgres::PostgresCheckpoints;
use event_sourcing::sqlite::SqliteCheckpoints;
use metachat_runtime::Env;

pub const USAGE: &str = "\
metachat dead-letters [list|retry|drop] [--projection NAME] [--event ID]
  list    the parked events (the default)
  retry   ask the running platform to apply them again (within 5 seconds; every parked event
          is also retried when a service starts)
  drop    remove them for good";

/// What the command was asked to do.
#[derive(Debug, PartialEq)]
struct Request {
    action: Action,
    filter: LetterFilter,
}

#[derive(Debug, PartialEq)]
enum Action {
    List,
    Retry,
    Drop,
    Help,
}

fn parse(args: &[String]) -> anyhow::Result<Request> {
    let mut action = Action::List;
    let mut filter = LetterFilter::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "list" => action = Action::List,
            "retry" => action = Action::Retry,
            "drop" => action = Action::Drop,
            "help" | "--help" | "-h" => action = Action::Help,
            "--projection" => {
                let name = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--projection needs a name\n\n{USAGE}"))?;
                anyhow::ensure!(filter.projection.is_none(), "--projection is given twice");
                filter.projection = Some(name.clone());
            }
            "--event" => {
                let id = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--event needs an event id\n\n{USAGE}"))?;
                let id = uuid::Uuid::try_parse(id)
                    .map_err(|_| anyhow::anyhow!("--event {id:?}: not an event id (a UUID)"))?;
                anyhow::ensure!(filter.event_id.is_none(), "--event is given twice");
                filter.event_id = Some(id);
            }
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Request { action, filter })
}

/// Runs the command against the embedded store in `DATA_DIR`, or with `DB_HOST` set against
/// PostgreSQL.
pub async fn run(env: &Env, args: &[String]) -> anyhow::Result<()> {
    let request = parse(args)?;
    if request.action == Action::Help {
        println!("{USAGE}");
        return Ok(());
    }
    let letters: Arc<dyn DeadLetters> = match metachat_production::ProductionConfig::from_env(env)?
    {
        Some(config) => {
            let store =
                metachat_production::open_event_store(&config.postgres, crate::codec()).await?;
            Arc::new(PostgresCheckpoints::new(&store))
        }
        None => {
            let config = crate::embedded::EmbeddedConfig::from_env(env)?;
            let database = config.database();
            anyhow::ensure!(
                database.exists(),
                "no MetaChat database at {} (set DATA_DIR to the platform's data directory)",
                database.display()
            );
            let store = metachat_bootstrap::open_sqlite(&database, crate::codec()).await?;
            Arc::new(SqliteCheckpoints::new(&store))
        }
    };
    match request.action {
        Action::List => {
            let letters = letters.dead_letters(&request.filter).await?;
            println!("{}", table(&letters));
        }
        Action::Retry => {
            let asked = letters.request_retry(&request.filter).await?;
            println!(
                "{asked} dead letters will be applied again within 5 seconds{}",
                none_matched(asked, &request.filter)
            );
        }
        Action::Drop => {
            let dropped = letters.drop_letters(&request.filter).await?;
            println!(
                "{dropped} dead letters dropped{}",
                none_matched(dropped, &request.filter)
            );
        }
        Action::Help => {}
    }
    Ok(())
}

/// Why nothing matched a filter, when it named something.
fn none_matched(count: u64, filter: &LetterFilter) -> String {
    match (count, &filter.projection, filter.event_id) {
        (0, Some(name), _) => {
            format!(" (none is parked for projection {name:?}; `metachat dead-letters` lists them)")
        }
        (0, None, Some(id)) => format!(" (event {id} is not parked)"),
        _ => String::new(),
    }
}

fn table(letters: &[event_sourcing::dead_letter::DeadLetter]) -> String {
    if letters.is_empty() {
        return "no dead letters".to_owned();
    }
    let mut out = String::from(
        "position\tprojection\tevent type\tstream\tevent id\tattempts\tparked at\tretry\terror\n",
    );
    for l in letters {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}@{}\t{}\t{}\t{}\t{}\t{}\n",
            l.position,
            l.projection,
            l.event_type,
            l.stream_id,
            l.stream_version,
            l.event_id,
            l.attempts,
            l.parked_at.format("%Y-%m-%dT%H:%M:%SZ"),
            if l.retry_requested { "asked" } else { "-" },
            l.error
        ));
    }
    out.push_str(&format!("{} dead letters", letters.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments_name_an_action_and_a_filter() {
        assert_eq!(parse(&[]).unwrap().action, Action::List);
        let id = uuid::Uuid::new_v4();
        let request = parse(&args(&format!("retry --projection p --event {id}"))).unwrap();
        assert_eq!(request.action, Action::Retry);
        assert_eq!(request.filter.projection.as_deref(), Some("p"));
        assert_eq!(request.filter.event_id, Some(id));
        assert!(parse(&args("drop --event nope")).is_err());
        assert!(parse(&args("--projection")).is_err());
        assert!(parse(&args("explode")).is_err());
        assert_eq!(parse(&args("--help")).unwrap().action, Action::Help);
        let twice = format!("retry --event {id} --event {id}");
        assert!(parse(&args(&twice)).is_err());
    }
}
