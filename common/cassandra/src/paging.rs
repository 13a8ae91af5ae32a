//! One page of a query, by offset or by cursor, using the driver's paging state.

use metachat_read_model::{Page, PageRequest, QueryError};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::response::PagingState;
use scylla::response::query_result::QueryRowsResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use crate::cursor::{decode_cursor, encode_cursor};

/// The most rows fetched in one round trip (skipping an offset or filling a large page).
const CHUNK: u32 = 1000;

/// One page of `statement` (a SELECT) with `values`, in the statement's order.
///
/// With a cursor, the query resumes at the paging state the cursor carries. Without one, it
/// starts at the beginning and skips `offset` rows, paging through them in chunks (never
/// deserialising them), so `page`/`limit` keep working. Either way the page's `next_cursor`
/// holds the paging state right after its last row, and is `None` when no row follows (the
/// server may report more pages when a page ends exactly at the last row, so that is checked
/// with a one-row probe). `scope` identifies the query and its arguments; a cursor is only
/// accepted by the scope it was issued for.
pub async fn fetch_page<R, V>(
    session: &Session,
    statement: &PreparedStatement,
    values: &V,
    scope: &str,
    request: &PageRequest,
) -> Result<Page<R>, QueryError>
where
    R: for<'f> DeserializeRow<'f, 'f> + Send,
    V: SerializeRow + ?Sized + Sync,
{
    let (mut state, mut skip) = match &request.cursor {
        Some(cursor) => (decode_cursor(scope, cursor)?, 0),
        None => (PagingState::start(), request.offset),
    };
    while skip > 0 {
        let size = u32::try_from(skip).unwrap_or(CHUNK).min(CHUNK);
        let (rows, next) = single_page(session, statement, values, state, size).await?;
        skip = skip.saturating_sub(rows.rows_num() as u64);
        match next {
            Some(next) => state = next,
            None => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
        }
    }

    let mut items: Vec<R> = Vec::new();
    let mut wanted = u64::from(request.limit);
    // The state a client's cursor carried passed the check, which catches mistakes, not
    // forgery: the server's refusal of it is still the client's bad cursor, not an outage.
    let mut from_client = request.cursor.is_some();
    while wanted > 0 {
        let size = u32::try_from(wanted).unwrap_or(CHUNK).min(CHUNK);
        let (rows, next) = match single_page(session, statement, values, state, size).await {
            Err(QueryError::Backend(e)) if from_client && refuses_paging_state(e.as_ref()) => {
                return Err(QueryError::InvalidCursor);
            }
            other => other?,
        };
        from_client = false;
        let fetched = rows.rows_num();
        items.reserve(fetched);
        for row in rows.rows::<R>().map_err(backend)? {
            items.push(row.map_err(backend)?);
        }
        wanted = wanted.saturating_sub(fetched as u64);
        match next {
            Some(next) => state = next,
            None => {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
        }
    }

    // The page is full and the server may have more: make sure at least one row follows.
    let mut probe = state.clone();
    loop {
        let (rows, next) = single_page(session, statement, values, probe, 1).await?;
        if rows.rows_num() > 0 {
            return Ok(Page {
                items,
                next_cursor: Some(encode_cursor(scope, &state)),
            });
        }
        match next {
            Some(next) => probe = next,
            None => {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
        }
    }
}

async fn single_page<V>(
    session: &Session,
    statement: &PreparedStatement,
    values: &V,
    state: PagingState,
    size: u32,
) -> Result<(QueryRowsResult, Option<PagingState>), QueryError>
where
    V: SerializeRow + ?Sized + Sync,
{
    let mut statement = statement.clone();
    statement.set_page_size(i32::try_from(size.max(1)).unwrap_or(i32::MAX));
    let (result, response) = session
        .execute_single_page(&statement, values, state)
        .await
        .map_err(backend)?;
    let rows = result.into_rows_result().map_err(backend)?;
    let next = match response.into_paging_control_flow() {
        std::ops::ControlFlow::Break(()) => None,
        std::ops::ControlFlow::Continue(next) => Some(next),
    };
    Ok((rows, next))
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> QueryError {
    QueryError::Backend(Box::new(error))
}

/// Whether Cassandra refused a request as invalid (a paging state it cannot use), rather than
/// failing to serve it.
fn refuses_paging_state(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
    matches!(
        error.downcast_ref::<ExecutionError>(),
        Some(ExecutionError::LastAttemptError(
            RequestAttemptError::DbError(DbError::Invalid | DbError::ProtocolError, _)
        ))
    )
}

/// The version in the one `bigint` column of the row `statement` (a SELECT by id) finds for
/// `id`; `None` when there is no row. The read models use it to tell which version of an
/// aggregate their tables reflect.
pub async fn version_by_id(
    session: &Session,
    statement: &PreparedStatement,
    id: uuid::Uuid,
) -> Result<Option<u64>, QueryError> {
    let backend = |e: &dyn std::fmt::Display| QueryError::Backend(e.to_string().into());
    let row = session
        .execute_unpaged(statement, (id.hyphenated().to_string(),))
        .await
        .map_err(|e| backend(&e))?
        .into_rows_result()
        .map_err(|e| backend(&e))?
        .maybe_first_row::<(Option<i64>,)>()
        .map_err(|e| backend(&e))?;
    Ok(row
        .and_then(|(version,)| version)
        .and_then(|v| u64::try_from(v).ok()))
}
