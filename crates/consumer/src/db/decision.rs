//! The help desk's decision, from a webhook or from reconciliation: the
//! status change and the record of its `webhook-id` in one statement.

use std::sync::LazyLock;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_contract::DocumentStatus;
use uuid::Uuid;

use super::ReviewRow;

/// What a decision did to the stored review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The review moved from PENDING_REVIEW to the decision.
    Applied(ReviewRow),
    /// The review already had this decision: nothing changed.
    AlreadyApplied(ReviewRow),
    /// The review already had the other decision, which stands.
    Contradicts(ReviewRow),
    /// The review found by the echoed id is bound to another document: the
    /// decision is not about it, and nothing changed. (A review is bound to
    /// one document once, by the help desk's answer or the first decision.)
    OtherDocument(ReviewRow),
    /// No review has this document id (nor the echoed id) — yet, perhaps.
    UnknownReview,
    /// This `webhook-id` was applied before: nothing changed.
    Duplicate,
}

/// A decision of the help desk, from a webhook or from reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingDecision<'a> {
    pub document_id: &'a str,
    pub agent_id: &'a str,
    /// The `id` the help desk echoed (our review id), if it parses as one.
    pub request_id: Option<Uuid>,
    pub decision: DocumentStatus,
    /// The Standard Webhooks `webhook-id`; `None` for reconciliation and
    /// unsigned webhooks.
    pub webhook_id: Option<&'a str>,
}

/// Applies the help desk's decision: the status change and the record of its
/// `webhook-id` commit together or not at all. The review is found by
/// `document_id`, or else by the echoed `request_id` if the webhook overtook
/// the help desk's answer to our request.
///
/// It is one statement (`decide.sql`, see [`DecideStatement`]), so one round
/// trip on a cached prepared statement, where a transaction of separate
/// queries would take several: it is the webhook path's whole database work.
pub async fn apply_decision(conn: &mut AsyncPgConnection, incoming: IncomingDecision<'_>) -> QueryResult<Decision> {
    let (duplicate, applied, row): (bool, Option<bool>, Option<ReviewRow>) =
        DecideStatement(incoming).get_result(conn).await?;
    let decision = incoming.decision;
    let bound_elsewhere = |row: &ReviewRow| {
        row.document_id
            .as_deref()
            .is_some_and(|bound| bound != incoming.document_id)
    };
    Ok(match (duplicate, applied, row) {
        (true, _, _) => Decision::Duplicate,
        (false, Some(true), Some(row)) => Decision::Applied(row),
        (false, _, Some(row)) if bound_elsewhere(&row) => Decision::OtherDocument(row),
        (false, _, Some(row)) if row.status() == decision => Decision::AlreadyApplied(row),
        // Not applied although found: the review holds the other decision
        // (the statement only changes a PENDING_REVIEW row).
        (false, _, Some(row)) => Decision::Contradicts(row),
        (false, _, None) => Decision::UnknownReview,
    })
}

/// The statement behind [`apply_decision`]: `decide.sql`. Diesel's query
/// builder has no data-modifying CTEs, so the text is SQL, its `{name}`
/// parameters bound in order with their SQL types; its [`QueryId`] is
/// static, so diesel-async prepares it once per connection.
///
/// Why it is correct under concurrency (READ COMMITTED): `FOR UPDATE` waits
/// for a transaction holding the row and then re-checks the row's *newest*
/// version against the `WHERE`, so
/// - a copy of the same webhook racing this one finds the review decided,
///   and this one answers "already applied" (2xx) without a second receipt;
/// - a contradicting webhook racing this one finds the first decision and is
///   refused;
/// - if `attach_ticket` stores the document id while this runs, the newest
///   version matches by `document_id` (a lookup in two statements could
///   miss the review in between, and lose the webhook);
/// - a review is bound to a document once: the update re-checks, on the
///   locked newest version, that the review has no document yet or this
///   one, so a decision found by the echoed id of a review bound meanwhile
///   to another document changes nothing.
///
/// The lookup is written so that its plan is two unique-index probes (by
/// `document_id`, then the primary key) whatever the parameters: the plain
/// `document_id = $1 OR (id = $2 AND document_id IS NULL)` gets a generic
/// plan (prepared statements switch to one after five runs) that scans the
/// `document_id IS NULL` entries of the unique index, where every review ever
/// created leaves a dead one until vacuum, so it slows down as reviews
/// accumulate.
///
/// `tests/trust.rs` and `tests/review_flow.rs` race these cases on purpose.
///
/// [`QueryId`]: diesel::query_builder::QueryId
#[derive(Debug, Clone, Copy)]
struct DecideStatement<'a>(IncomingDecision<'a>);

/// `decide.sql`, cut at its parameters once.
static DECIDE: LazyLock<Vec<Piece>> = LazyLock::new(|| pieces(include_str!("decide.sql")));

/// A run of SQL text, or a parameter by name.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Sql(&'static str),
    Param(&'static str),
}

/// `sql` cut into text and `{name}` parameters.
fn pieces(mut sql: &'static str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    while let Some(open) = sql.find('{') {
        let Some(close) = sql[open..].find('}') else { break };
        pieces.push(Piece::Sql(&sql[..open]));
        pieces.push(Piece::Param(&sql[open + 1..open + close]));
        sql = &sql[open + close + 1..];
    }
    pieces.push(Piece::Sql(sql));
    pieces
}

impl diesel::query_builder::QueryId for DecideStatement<'_> {
    type QueryId = DecideStatement<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for DecideStatement<'_> {
    type SqlType = (
        Bool,
        Nullable<Bool>,
        // ReviewRow's columns
        Nullable<(
            diesel::sql_types::Uuid,
            diesel::sql_types::Text,
            Nullable<diesel::sql_types::Text>,
            Nullable<diesel::sql_types::Text>,
            diesel::sql_types::Text,
            diesel::sql_types::Timestamptz,
            diesel::sql_types::Timestamptz,
            Nullable<diesel::sql_types::Timestamptz>,
        )>,
    );
}

impl diesel::query_builder::QueryFragment<Pg> for DecideStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Text, Uuid as SqlUuid};
        let IncomingDecision {
            document_id,
            agent_id,
            request_id,
            decision,
            webhook_id,
        } = &self.0;
        for piece in DECIDE.iter() {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Param("webhook_id") => out.push_bind_param::<Nullable<Text>, _>(webhook_id)?,
                Piece::Param("document_id") => out.push_bind_param::<Text, _>(document_id)?,
                Piece::Param("request_id") => out.push_bind_param::<Nullable<SqlUuid>, _>(request_id)?,
                Piece::Param("decision") => out.push_bind_param::<Text, _>(decision.as_str())?,
                Piece::Param("agent_id") => out.push_bind_param::<Text, _>(agent_id)?,
                Piece::Param("pending") => out.push_bind_param::<Text, _>(DocumentStatus::PendingReview.as_str())?,
                Piece::Param(other) => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("decide.sql names an unknown parameter {{{other}}}").into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_is_cut_at_its_parameters_and_names_only_known_ones() {
        assert_eq!(
            pieces("SELECT {a}::text, x FROM t WHERE y = {b}"),
            [
                Piece::Sql("SELECT "),
                Piece::Param("a"),
                Piece::Sql("::text, x FROM t WHERE y = "),
                Piece::Param("b"),
                Piece::Sql(""),
            ]
        );
        let known = [
            "webhook_id",
            "document_id",
            "request_id",
            "decision",
            "agent_id",
            "pending",
        ];
        let named: Vec<&str> = DECIDE
            .iter()
            .filter_map(|piece| match piece {
                Piece::Param(name) => Some(*name),
                Piece::Sql(_) => None,
            })
            .collect();
        assert_eq!(named.len(), 10, "{named:?}");
        assert!(named.iter().all(|name| known.contains(name)), "{named:?}");
    }
}
