//! Structured logging configured by `LOG_LEVEL`, `LOG_FORMAT`, `LOG_OUTPUT` and `ENVIRONMENT`.
//!
//! The JSON format has exactly the seed's fields, one object per line:
//! `{"timestamp", "level", "service", "environment", "message", "fields"}`. `fields` holds the
//! event's own fields and those of the spans it was written in: a line written while serving a
//! request names its `request_id`, `trace_id` and `span_id`.

use std::fmt;
use std::fs::OpenOptions;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ConfigError, Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Logging settings, usually read from the environment.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Service name in every record (events from a known service crate use that service's name).
    pub service: String,
    pub environment: String,
    pub level: String,
    pub format: LogFormat,
    /// `stdout`, `stderr`, or a file path to append to.
    pub output: String,
    /// `RUST_LOG`: a full filter directive that overrides `level`.
    pub filter: Option<String>,
}

impl LogSettings {
    /// `LOG_LEVEL`, `LOG_FORMAT`, `LOG_OUTPUT`, `ENVIRONMENT` and `RUST_LOG` of the process
    /// ([`Env::process`]).
    pub fn from_env(service: &str) -> Result<Self, ConfigError> {
        Self::read(Env::process(), service)
    }

    /// `LOG_LEVEL`, `LOG_FORMAT`, `LOG_OUTPUT`, `ENVIRONMENT` and `RUST_LOG` of `env`.
    pub fn read(env: &Env, service: &str) -> Result<Self, ConfigError> {
        let format = match env.or("LOG_FORMAT", "json").to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError {
                    name: "LOG_FORMAT".into(),
                    value: other.into(),
                    reason: "expected json or text".into(),
                });
            }
        };
        let level = env.or("LOG_LEVEL", "info").to_ascii_lowercase();
        if !["trace", "debug", "info", "warn", "error"].contains(&level.as_str()) {
            return Err(ConfigError {
                name: "LOG_LEVEL".into(),
                value: level,
                reason: "expected trace, debug, info, warn or error".into(),
            });
        }
        let environment = env.or("ENVIRONMENT", "dev");
        if !["dev", "staging", "prod"].contains(&environment.as_str()) {
            return Err(ConfigError::new(
                "ENVIRONMENT",
                &environment,
                "expected dev, staging or prod",
            ));
        }
        let filter = env.var("RUST_LOG");
        if let Some(directives) = &filter
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(directives)
        {
            return Err(ConfigError::new("RUST_LOG", directives, e.to_string()));
        }
        Ok(Self {
            service: service.to_owned(),
            environment,
            level,
            format,
            output: env.or("LOG_OUTPUT", "stdout"),
            filter,
        })
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `LOG_LEVEL` with a full
/// filter directive.
pub fn init_logging(settings: &LogSettings) -> Result<(), ConfigError> {
    let filter = match &settings.filter {
        Some(directive) => EnvFilter::new(directive),
        None => EnvFilter::new(format!(
            "{},h2=warn,hyper=warn,tower=warn,sqlx=warn",
            settings.level
        )),
    };
    let writer = match settings.output.as_str() {
        "stdout" => BoxMakeWriter::Stdout,
        "stderr" => BoxMakeWriter::Stderr,
        path => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| ConfigError {
                    name: "LOG_OUTPUT".into(),
                    value: path.into(),
                    reason: e.to_string(),
                })?;
            BoxMakeWriter::File(Mutex::new(file))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let result = match settings.format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields)
            .event_format(SeedJson {
                service: settings.service.clone(),
                environment: settings.environment.clone(),
            })
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second initialisation (tests that start several components) keeps the first one.
    let _ = result;
    Ok(())
}

enum BoxMakeWriter {
    Stdout,
    Stderr,
    File(Mutex<std::fs::File>),
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BoxMakeWriter {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        match self {
            Self::Stdout => Box::new(std::io::stdout()),
            Self::Stderr => Box::new(std::io::stderr()),
            Self::File(file) => Box::new(LockedFile(file)),
        }
    }
}

struct LockedFile<'a>(&'a Mutex<std::fs::File>);

impl std::io::Write for LockedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::io::Write::write(&mut *file, buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::io::Write::flush(&mut *file)
    }
}

/// The seed's JSON record format.
struct SeedJson {
    service: String,
    environment: String,
}

/// The service an event belongs to, from the crate that emitted it.
fn service_of<'a>(target: &str, default: &'a str) -> &'a str {
    const SERVICES: [(&str, &str); 3] = [
        ("user_service", "user-service"),
        ("diary_service", "diary-service"),
        ("api_gateway", "api-gateway"),
    ];
    SERVICES
        .iter()
        .find(|(krate, _)| target == *krate || target.starts_with(&format!("{krate}::")))
        .map_or(default, |(_, service)| service)
}

impl<S, N> FormatEvent<S, N> for SeedJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = FieldCollector::default();
        // The spans' fields, outermost first, then the event's own over them.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(span_fields)) =
                        serde_json::from_str::<Value>(&formatted.fields)
                {
                    fields.fields.extend(span_fields);
                }
            }
        }
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let record = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": level,
            "service": service_of(event.metadata().target(), &self.service),
            "environment": self.environment,
            "message": fields.message.unwrap_or_default(),
            "fields": Value::Object(fields.fields),
        });
        writeln!(writer, "{record}")
    }
}

/// Keeps a span's fields as a JSON object (the text [`FormattedFields`] holds), so that
/// [`SeedJson`] can merge them into the records written in the span.
struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut collector = FieldCollector::default();
        fields.record(&mut collector);
        write!(writer, "{}", Value::Object(collector.fields))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut collector = FieldCollector::default();
        if let Ok(Value::Object(known)) = serde_json::from_str::<Value>(&current.fields) {
            collector.fields = known;
        }
        fields.record(&mut collector);
        current.fields = Value::Object(collector.fields).to_string();
        Ok(())
    }
}

#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields.insert(field.name().into(), Value::from(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.fields
                .insert(field.name().into(), Value::from(format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_carries_the_fields_of_its_spans_under_its_own() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields)
            .event_format(SeedJson {
                service: "metachat".into(),
                environment: "dev".into(),
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "request",
                request_id = "r-1",
                trace_id = tracing::field::Empty
            );
            let _outer = outer.enter();
            outer.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            let inner = tracing::info_span!("call", span_id = "00f067aa0ba902b7", method = "A");
            let _inner = inner.enter();
            tracing::info!(target: "user_service::access", method = "GetUser", code = "OK", "call");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 1, "{text}");
        let record = &records[0];
        assert_eq!(record["service"], "user-service");
        assert_eq!(record["message"], "call");
        assert_eq!(
            record["fields"],
            serde_json::json!({
                "request_id": "r-1",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
                "method": "GetUser",
                "code": "OK",
            }),
            "the event's own method wins over the span's: {text}"
        );
    }

    #[test]
    fn events_are_attributed_to_the_crate_that_emitted_them() {
        assert_eq!(service_of("user_service::grpc", "metachat"), "user-service");
        assert_eq!(service_of("api_gateway", "metachat"), "api-gateway");
        assert_eq!(service_of("user_services_x", "metachat"), "metachat");
        assert_eq!(
            service_of("event_sourcing::projection", "diary-service"),
            "diary-service"
        );
    }
}
