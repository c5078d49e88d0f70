//! Which history rows belong to which profile.
//!
//! `profile_events` is appended in row order and has no index of its own, so recording an
//! event writes only at the end of one B-tree. A profile's rows are found through two small
//! tables of `(profile_id, row)` pairs, both ordered by profile:
//!
//! - `history_recent` takes a pair for every event recorded. It holds at most about
//!   [`FOLD_AT`] pairs (a few hundred pages), so a batch's scattered inserts land in pages
//!   that stay in the page cache and are written to the WAL once per batch.
//! - `history_index` holds everything older. When `history_recent` reaches [`FOLD_AT`]
//!   pairs, all of them move into it in one ordered pass: each of its pages is rewritten at
//!   most once per fold instead of once per batch.
//!
//! A pair names the profile the event was recorded for, and so does `profile_events.profile_id`
//! (an unmerge changes both). A merge changes neither: the rows of a live profile are those of
//! its family, itself and the profiles merged into it (`profiles.merged_into` always names a
//! live profile), so a merge writes nothing here ([`rows_of`]).

use rusqlite::{Connection, params};
use sluice_identity::ProfileId;

use super::ingest::exec;
use crate::StoreError;

/// Pairs `history_recent` holds before they move to `history_index`.
pub(crate) const FOLD_AT: i64 = 100_000;

/// A subquery of the history rows of the live profile numbered by parameter `param` (`"?1"`):
/// those of its family.
pub(crate) fn rows_of(param: &str) -> String {
    let family =
        format!("SELECT {param} UNION ALL SELECT id FROM profiles WHERE merged_into = {param}");
    format!(
        "SELECT row FROM history_index WHERE profile_id IN ({family})
         UNION ALL SELECT row FROM history_recent WHERE profile_id IN ({family})"
    )
}

/// A subquery of the history rows recorded for exactly the profile numbered by `param`.
fn own_rows_of(param: &str) -> String {
    format!(
        "SELECT row FROM history_index WHERE profile_id = {param}
         UNION ALL SELECT row FROM history_recent WHERE profile_id = {param}"
    )
}

/// Records that history row `row` belongs to `profile`.
pub(crate) fn append(
    connection: &Connection,
    profile: ProfileId,
    row: i64,
) -> Result<(), StoreError> {
    exec(
        connection,
        "INSERT INTO history_recent(profile_id, row) VALUES (?1, ?2)",
        params![profile, row],
    )?;
    Ok(())
}

/// Moves the pairs to `history_index` once `history_recent` is full (once per batch).
pub(crate) fn fold_if_due(connection: &Connection, fold_at: i64) -> Result<bool, StoreError> {
    let recent: i64 = connection
        .prepare_cached("SELECT count(*) FROM history_recent")?
        .query_row([], |row| row.get(0))?;
    if recent < fold_at {
        return Ok(false);
    }
    exec(
        connection,
        "INSERT INTO history_index(profile_id, row)
         SELECT profile_id, row FROM history_recent ORDER BY profile_id, row",
        [],
    )?;
    exec(connection, "DELETE FROM history_recent", [])?;
    Ok(true)
}

/// Gives history row `row`, recorded for `from`, to `to` (an unmerge).
pub(crate) fn repoint_row(
    connection: &Connection,
    row: i64,
    from: ProfileId,
    to: ProfileId,
) -> Result<(), StoreError> {
    if from == to {
        return Ok(());
    }
    exec(
        connection,
        "UPDATE profile_events SET profile_id = ?1 WHERE id = ?2",
        params![to, row],
    )?;
    for table in ["history_index", "history_recent"] {
        exec(
            connection,
            &format!("UPDATE {table} SET profile_id = ?1 WHERE profile_id = ?2 AND row = ?3"),
            params![to, from, row],
        )?;
    }
    Ok(())
}

/// Deletes the history rows recorded for exactly `profile`; returns how many.
pub(crate) fn delete_profile(
    connection: &Connection,
    profile: ProfileId,
) -> Result<u64, StoreError> {
    let removed = exec(
        connection,
        &format!(
            "DELETE FROM profile_events WHERE id IN ({})",
            own_rows_of("?1")
        ),
        [profile],
    )?;
    for table in ["history_index", "history_recent"] {
        exec(
            connection,
            &format!("DELETE FROM {table} WHERE profile_id = ?1"),
            [profile],
        )?;
    }
    Ok(removed as u64)
}

/// Deletes one history row's pair (the row itself is deleted by the caller).
pub(crate) fn forget_row(
    connection: &Connection,
    profile: ProfileId,
    row: i64,
) -> Result<(), StoreError> {
    for table in ["history_index", "history_recent"] {
        exec(
            connection,
            &format!("DELETE FROM {table} WHERE profile_id = ?1 AND row = ?2"),
            params![profile, row],
        )?;
    }
    Ok(())
}
