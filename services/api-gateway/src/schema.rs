//! JSON Schemas of the values whose rules are constants: field lengths, ranges, patterns and
//! enumerations built from [`crate::limits`] and the error table, so that the OpenAPI document
//! states exactly what the code enforces. Types refer to them with
//! `#[schema(schema_with = schema::name)]` (utoipa's attributes take only literals). Also the
//! parameter sets of the routes (path ids, `If-Match`, query parameters), for the document.

use metachat_proto::error::ErrorCode;
use serde::Deserialize;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{RefOr, Required};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::limits::*;

/// A canonical UUID, any case (what [`crate::validate::canonical_uuid`] accepts).
pub(crate) const UUID_PATTERN: &str =
    "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$";
/// Exactly `YYYY-MM-DD` (what [`crate::time::parse_date`] accepts, before the calendar check).
pub(crate) const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

fn of(ty: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([ty, Type::Null])
    } else {
        SchemaType::Type(ty)
    }
}

/// Characters one-line text may not contain ([`crate::validate`]): controls, U+2028, U+2029.
const LINE_BREAKING: &str = r"\u0000-\u001F\u007F-\u009F\u2028\u2029";
/// Characters multi-line text may not contain: controls other than tab, LF and CR.
const FORBIDDEN_IN_TEXT: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";

/// Text without the `forbidden` characters; with `blank` false, also not only whitespace
/// (the services trim, or refuse blank content, before checking the length).
fn text_pattern(forbidden: &str, blank: bool) -> String {
    if blank {
        format!("^[^{forbidden}]*$")
    } else {
        format!("^[^{forbidden}]*[^\\s{forbidden}][^{forbidden}]*$")
    }
}

/// A string of `min..=max` characters (no lower bound when `min` is 0).
fn text(min: usize, max: usize, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of(Type::String, nullable))
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
}

/// One line of `min..=max` characters.
fn line(min: usize, max: usize) -> ObjectBuilder {
    text(min, max, false).pattern(Some(text_pattern(LINE_BREAKING, min == 0)))
}

/// Multi-line text of `min..=max` characters.
fn prose_text(min: usize, max: usize, nullable: bool) -> ObjectBuilder {
    text(min, max, nullable).pattern(Some(text_pattern(FORBIDDEN_IN_TEXT, min == 0)))
}

fn formatted(format: KnownFormat, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of(Type::String, nullable))
        .format(Some(SchemaFormat::KnownFormat(format)))
}

fn uuid(nullable: bool) -> ObjectBuilder {
    formatted(KnownFormat::Uuid, nullable).pattern(Some(UUID_PATTERN))
}

fn one_of(values: &[&str], nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of(Type::String, nullable))
        .enum_values(Some(values.iter().copied()))
}

fn fraction() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0))
        .maximum(Some(1))
}

/// An object of modality weights: only the known modalities, each `0..=1`.
fn weights(nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of(Type::Object, nullable))
        .property_names(Some(one_of(&MODALITIES, false)))
        .additional_properties(Some(AdditionalProperties::RefOr(fraction().into())))
}

fn tags(nullable: bool) -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(of(Type::Array, nullable))
        .items(line(1, TAG_MAX))
        .max_items(Some(TAGS_MAX))
}

/// Joins the lines of a doc comment into one paragraph.
fn prose(doc: &str) -> String {
    doc.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `schema` with `null` added to its types.
fn or_null(schema: Schema) -> Schema {
    let add_null = |types: &mut SchemaType| {
        if let SchemaType::Type(ty) = types {
            *types = SchemaType::from_iter([ty.clone(), Type::Null]);
        }
    };
    match schema {
        Schema::Object(mut object) => {
            add_null(&mut object.schema_type);
            Schema::Object(object)
        }
        Schema::Array(mut array) => {
            add_null(&mut array.schema_type);
            Schema::Array(array)
        }
        other => other,
    }
}

/// `fn name() -> Schema` for each field rule, and `fn or_null()` for its nullable form; the
/// doc comment is the schema's description (utoipa drops a field's own doc comment when the
/// field uses `schema_with`).
macro_rules! fields {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident $(| $or_null:ident)? = $schema:expr;
    )+) => {$(
        $(#[doc = $doc])+
        pub(crate) fn $name() -> Schema {
            Schema::from($schema.description(Some(prose(concat!($($doc, "\n"),+)))))
        }
        $(
            /// The same, or `null`.
            pub(crate) fn $or_null() -> Schema {
                or_null($name())
            }
        )?
    )+};
}

fields! {
    /// Letters, digits, `_`, `.` or `-`. Unique regardless of case (409 `already_exists`).
    username = text(USERNAME_MIN, USERNAME_MAX, false).pattern(Some(format!(
        "^[A-Za-z0-9_.-]{{{USERNAME_MIN},{USERNAME_MAX}}}$"
    )));
    /// A syntactically valid e-mail address. Unique regardless of case (409 `already_exists`).
    email = formatted(KnownFormat::Email, false).max_length(Some(EMAIL_MAX));
    /// One line; length counted after trimming leading and trailing whitespace.
    name | name_or_null = line(1, NAME_MAX);
    /// Exactly `YYYY-MM-DD`: a real calendar date, in the past and not before 1900-01-01.
    /// `null` or absent for none.
    date_of_birth_or_null = formatted(KnownFormat::Date, true).pattern(Some(DATE_PATTERN));
    /// Exactly `YYYY-MM-DD`: a real calendar date, in the past and not before 1900-01-01. An
    /// empty string clears it; `null` or absent leaves it unchanged.
    date_of_birth_update = ObjectBuilder::new()
        .schema_type(of(Type::String, true))
        .pattern(Some(format!("^({})?$", &DATE_PATTERN[1..DATE_PATTERN.len() - 1])));
    /// One line (e.g. a base64-encoded image); length counted after trimming. Empty after
    /// trimming clears it.
    avatar_or_null = line(0, AVATAR_MAX).schema_type(of(Type::String, true));
    /// Tab and line breaks allowed, other control characters not; length counted after
    /// trimming. Empty after trimming clears it.
    bio_or_null = prose_text(0, BIO_MAX, true);
    /// Lowercase letters, digits, `_` or `-`.
    archetype_id = text(1, ARCHETYPE_ID_MAX, false)
        .pattern(Some(format!("^[a-z0-9_-]{{1,{ARCHETYPE_ID_MAX}}}$")));
    /// One line; length counted after trimming.
    archetype_name = line(1, ARCHETYPE_NAME_MAX);
    /// Tab and line breaks allowed; empty when absent.
    archetype_description = prose_text(0, DESCRIPTION_MAX, false).default(Some("".into()));
    /// How sure the profiling is, 0 to 1 inclusive.
    confidence = fraction();
    /// At least one of the modalities (no other keys), each weighted 0 to 1. Replaces the
    /// previous weights. A key given twice is 400.
    modalities = weights(false).min_properties(Some(1));
    /// The modality weights that were set, each 0 to 1; `null` until modalities are set.
    modalities_or_null = weights(true);
    /// An existing user (404 `not_found` otherwise).
    user_id = uuid(false);
    /// An existing session of the same user that has not ended (404 `not_found` / 409
    /// `failed_precondition` otherwise). `null` or absent for none; an empty string is 400.
    session_id_or_null = uuid(true);
    /// One line; length counted after trimming; may be empty.
    title | title_or_null = line(0, TITLE_MAX);
    /// Stored as sent (not trimmed), but must not be only whitespace. Tab, line feed and
    /// carriage return allowed, other control characters not.
    content | content_or_null = prose_text(1, CONTENT_MAX, false);
    /// A whole number (an integral float such as `549.0` is accepted); counted from the
    /// content when absent.
    token_count_or_null = ObjectBuilder::new()
        .schema_type(of(Type::Integer, true))
        .minimum(Some(0))
        .maximum(Some(TOKEN_COUNT_MAX));
    /// Each tag one line, its length counted after trimming; tags are trimmed and
    /// de-duplicated regardless of case (the first spelling is kept). On update, present
    /// replaces all tags (`[]` clears them).
    tags_or_null = tags(true);
    /// RFC 3339. Defaults to now; may not be more than 5 minutes in the future.
    start_time_or_null = formatted(KnownFormat::DateTime, true);
    /// RFC 3339. Defaults to now; must not be before the session's startTime, nor before the
    /// `createdAt` given to an entry written in the session.
    end_time_or_null = formatted(KnownFormat::DateTime, true);
    /// `active` until the session is ended.
    session_status = one_of(&SESSION_STATUSES, false);
    /// The length of the window; `custom` for an explicit `from` and `to`.
    analytics_period = one_of(
        &[&PERIODS[..], &[CUSTOM_PERIOD]].concat(),
        false,
    );
    /// `measured`, or why not: too few English words, or text in a language the lexicons do
    /// not cover.
    measure_state = one_of(&MEASURE_STATES, false);
    /// RFC 3339: when the entry was written. Defaults to now; may be earlier (an entry about
    /// an earlier day, or imported from another journal), not more than 5 minutes in the
    /// future; in a session, not before the session's startTime.
    created_at_or_null = formatted(KnownFormat::DateTime, true);
}

/// `error.code`: the error table's codes.
pub(crate) struct ErrorCodeSchema;

impl PartialSchema for ErrorCodeSchema {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        one_of(&codes, false)
            .description(Some(
                "Machine-readable error code; the HTTP status follows from it (see the table in \
                 the API description).",
            ))
            .into()
    }
}

impl ToSchema for ErrorCodeSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

// Documents metachat_proto::error::FieldViolation, which is serialised as is.
/// One invalid field of a request.
#[derive(ToSchema)]
#[schema(as = FieldViolation)]
#[allow(dead_code)] // Documents a foreign type.
pub(crate) struct FieldViolationSchema {
    /// The offending JSON field as the client sent it (camelCase; nested as
    /// `modalities.visual`, array items as `tags[1]`), the query parameter (e.g. `limit`),
    /// `body` for the body as a whole, or a header (`Content-Type`, `If-Match`).
    #[schema(examples("email"))]
    field: String,
    /// Why it was rejected.
    #[schema(examples("must be an e-mail address like name@example.com"))]
    message: String,
}

/// A path's `{id}` or `{userId}` parameter.
fn id_parameter(name: &str, whose: &str) -> utoipa::openapi::path::Parameter {
    utoipa::openapi::path::ParameterBuilder::new()
        .name(name)
        .parameter_in(utoipa::openapi::path::ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!(
            "{whose} id: a UUID in the canonical form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, \
             any case (400 `invalid_argument` naming the parameter otherwise)."
        )))
        .schema(Some(uuid(false)))
        .build()
}

macro_rules! id_params {
    ($($(#[doc = $doc:literal])+ $ty:ident($name:literal, $whose:literal);)+) => {$(
        $(#[doc = $doc])+
        pub(crate) struct $ty;

        impl IntoParams for $ty {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![id_parameter($name, $whose)]
            }
        }
    )+};
}

id_params! {
    /// `{id}` of a user.
    UserIdPath("id", "The user's");
    /// `{id}` of an entry.
    EntryIdPath("id", "The entry's");
    /// `{id}` of a session.
    SessionIdPath("id", "The session's");
    /// `{userId}` of a list.
    OwnerIdPath("userId", "The owning user's");
}

/// A consistency token, `<id>:<version>`: what a write answers in `X-Consistency-Token`.
pub(crate) const CONSISTENCY_TOKEN_PATTERN: &str = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}:[1-9][0-9]{0,17}$";

/// `X-Consistency-Token` on a list or analytics read ([`crate::consistency::ReadAfter`]).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Read by ReadAfter; this type documents it.
pub(crate) struct ConsistencyTokenHeader {
    /// Read your own write: the `X-Consistency-Token` a write answered. The read waits,
    /// bounded by the service's `READ_YOUR_WRITES_TIMEOUT_MS` (3 s by default), until the list
    /// shows that write (or anything later), then answers; if the lists have not caught up by
    /// then, 503 `unavailable` with `Retry-After` (retrying is safe). A token of a user write
    /// works on `/users`, of an entry or session write on the diary lists and analytics.
    #[serde(rename = "X-Consistency-Token")]
    #[param(value_type = String, required = false, pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}:[1-9][0-9]{0,17}$", example = "123e4567-e89b-12d3-a456-426614174000:3")]
    consistency_token: Option<String>,
}

/// `If-Match` on a write ([`crate::precondition::IfMatch`]).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Read by IfMatch; this type documents it.
pub(crate) struct IfMatchHeader {
    /// Apply the change only if the resource is at this version: its `ETag`, e.g. `"3"`
    /// (412 `precondition_failed` otherwise); `*` for any version. Entity tags compare byte
    /// for byte: a weak tag (`W/"3"`) or another spelling (`"03"`) never matches (412). One
    /// tag only: a list, or anything that is not an entity tag, is 400.
    #[serde(rename = "If-Match")]
    #[param(value_type = String, required = false, pattern = r#"^(\*|(W/)?"[\x21\x23-\x7E]*")$"#, example = "\"3\"")]
    if_match: Option<String>,
}

fn page() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(u32::MAX))
        .default(Some(1.into()))
        .into()
}

fn limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(PAGE_LIMIT_MAX))
        .default(Some(PAGE_LIMIT_DEFAULT.into()))
        .into()
}

fn cursor() -> Schema {
    text(0, CURSOR_MAX, false).into()
}

/// A moment in a query: RFC 3339, or a date `YYYY-MM-DD` (UTC).
fn moment() -> Schema {
    utoipa::openapi::schema::AnyOfBuilder::new()
        .item(formatted(KnownFormat::DateTime, false))
        // An empty value is the same as leaving the parameter out.
        .item(text(0, 0, false))
        .item(formatted(KnownFormat::Date, false).pattern(Some(DATE_PATTERN)))
        .examples(["2023-01-01", "2023-01-01T10:00:00Z"])
        .into()
}

fn query_uuid() -> Schema {
    uuid(false).into()
}

fn timestamp() -> Schema {
    formatted(KnownFormat::DateTime, false).into()
}

fn time_zone() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .examples(["Europe/Paris"])
        .into()
}

fn search_text() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(1_000))
        .examples(["when did I last feel like this: tight chest, can't sleep"])
        .into()
}

fn result_limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(50))
        .default(Some(10.into()))
        .into()
}

fn query_period() -> Schema {
    one_of(&PERIODS, false)
        .default(Some(DEFAULT_PERIOD.into()))
        .into()
}

fn query_parameter(
    name: &str,
    description: &str,
    schema: Schema,
    required: bool,
) -> utoipa::openapi::path::Parameter {
    utoipa::openapi::path::ParameterBuilder::new()
        .name(name)
        .parameter_in(utoipa::openapi::path::ParameterIn::Query)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(prose(description)))
        .schema(Some(schema))
        .build()
}

// Written out rather than derived: utoipa drops a parameter's description and `required`
// when its schema comes from `schema_with`. The names are checked against the parsers by
// `openapi::tests::the_documented_query_parameters_are_the_ones_read`.
macro_rules! query_params {
    ($($(#[doc = $doc:literal])+ $ty:ident {
        $($name:literal: $schema:expr, $required:literal, $description:literal;)+
    })+) => {$(
        $(#[doc = $doc])+
        pub(crate) struct $ty;

        impl IntoParams for $ty {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![$(query_parameter($name, $description, $schema, $required)),+]
            }
        }
    )+};
}

query_params! {
    /// The query of a list ([`crate::extract::QueryParams::paging`]).
    PagingQuery {
        "page": page(), false, "1-based page number.";
        "limit": limit(), false, "Page size.";
        "cursor": cursor(), false, "The `nextCursor` of the previous page. When given, `page` is
            ignored. Cursors are opaque and only valid for the list that returned them (400
            otherwise).";
    }
    /// `asOf` of a single resource ([`crate::time::as_of`]).
    AsOfQuery {
        "asOf": moment(), false, "Temporal query: the state as of this moment, replayed from the
            event store. RFC 3339, or a date `YYYY-MM-DD` meaning the end of that day (UTC). 404
            when the resource did not exist yet.";
    }
    /// The time range of a user's entries ([`crate::diary::time_range`]).
    TimeRangeQuery {
        "startTime": moment(), false, "Only entries created at or after this moment. RFC 3339,
            or a date `YYYY-MM-DD` meaning 00:00:00Z that day. Must not be after `endTime`;
            equal is an empty range.";
        "endTime": moment(), false, "Only entries created before this moment (exclusive). RFC
            3339, or a date `YYYY-MM-DD` meaning the end of that day inclusive (00:00:00Z of
            the next day, exclusive).";
    }
    /// The query of a search ([`crate::diary::search`]).
    SearchQuery {
        "userId": query_uuid(), true, "Whose entries to search: a UUID in the canonical form,
            any case.";
        "q": search_text(), true, "What to look for, in words (1 to 1,000 characters, one
            line, UTF-8): a question, a feeling, a topic or a name. The whole URI is limited to
            8 KiB (414 beyond), which a 1,000-character query of non-Latin letters, each three
            or four bytes percent-encoded, can exceed.";
        "page": page(), false, "1-based page number. A search ranks at most 100 results: a page
            past them is empty.";
        "limit": result_limit(), false, "Results per page.";
    }
    /// The paging of related entries ([`crate::diary::related_entries`]).
    RelatedQuery {
        "page": page(), false, "1-based page number. At most 100 related entries are ranked: a
            page past them is empty.";
        "limit": result_limit(), false, "Results per page.";
    }
    /// The query of the analytics ([`crate::diary::analytics_request`]).
    AnalyticsQuery {
        "userId": query_uuid(), true, "The user's id: a UUID in the canonical form, any case.";
        "period": query_period(), false, "Length of the window ending at `to` (or now), or
            starting at `from` when only `from` is given. Ignored when both `from` and `to` are
            given.";
        "from": timestamp(), false, "Start of an explicit window (RFC 3339). With `to`, the
            window is `[from, to)`; `from` must be before `to`, and the window at most 370
            days. Entries and sessions count by the UTC quarter hour they fall in: the quarter
            hour holding `from` counts whole.";
        "to": timestamp(), false, "End of the window, exclusive (RFC 3339). Defaults to now.";
        "timeZone": time_zone(), false, "IANA time zone whose calendar days the per-day
            series, writing days and streaks use, e.g. `Europe/Paris` or `Asia/Kolkata`.
            Default `UTC`. An unknown zone is a 400 naming `timeZone`.";
    }
}
