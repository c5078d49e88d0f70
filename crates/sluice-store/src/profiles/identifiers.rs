//! The `identifiers` table: one row per identifier of a live profile.
//!
//! Rows are found by a 64-bit key computed from the workspace, collection, type and value
//! (FNV-1a), indexed beside the profile the row belongs to. The table itself is appended to in
//! row order, and both indexes hold only integers, so the consumer's lookups compare integers
//! and each new identifier adds small entries, not a wide text key in two places. Two
//! identifiers may share a key: every lookup also compares the text columns.
//!
//! Invariant: the writer inserts an identifier only after finding it absent in the same
//! transaction, so each (workspace, collection, type, value) has at most one row.

use rusqlite::{Connection, OptionalExtension, params};
use sluice_identity::{Collection, Identifier, ProfileId};

/// An identifier's row as the consumer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) row: i64,
    pub(crate) profile: ProfileId,
    pub(crate) last_seen_ms: i64,
}

/// Where an identifier was first seen.
pub(crate) struct Origin<'a> {
    pub(crate) source_id: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) first_seen_ms: i64,
    pub(crate) last_seen_ms: i64,
}

/// The lookup key of an identifier: FNV-1a (64 bits) over its four parts, each followed by a
/// 0xff byte (which UTF-8 text never contains), so part boundaries cannot shift.
pub(crate) fn key(workspace: &str, collection: Collection, id: &Identifier) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in [workspace, collection.as_str(), &id.kind, &id.value] {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    // SQLite integers are signed: the same 64 bits, read as i64.
    hash as i64
}

/// The row holding `id`, if a profile has it.
pub(crate) fn find(
    connection: &Connection,
    workspace: &str,
    collection: Collection,
    id: &Identifier,
) -> rusqlite::Result<Option<Found>> {
    connection
        .prepare_cached(
            "SELECT id, profile_id, last_seen FROM identifiers
             WHERE key = ?1 AND workspace_id = ?2 AND collection = ?3 AND kind = ?4 AND value = ?5",
        )?
        .query_row(
            params![
                key(workspace, collection, id),
                workspace,
                collection.as_str(),
                id.kind,
                id.value
            ],
            |row| {
                Ok(Found {
                    row: row.get(0)?,
                    profile: row.get(1)?,
                    last_seen_ms: row.get(2)?,
                })
            },
        )
        .optional()
}

/// Adds `id` to `profile` (see the module invariant: it must be absent).
pub(crate) fn insert(
    connection: &Connection,
    workspace: &str,
    collection: Collection,
    id: &Identifier,
    profile: ProfileId,
    origin: &Origin<'_>,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO identifiers(key, workspace_id, collection, kind, value, profile_id, source_id,
                 first_message_id, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            key(workspace, collection, id),
            workspace,
            collection.as_str(),
            id.kind,
            id.value,
            profile,
            origin.source_id,
            origin.message_id,
            origin.first_seen_ms,
            origin.last_seen_ms
        ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_every_part_and_on_where_parts_end() {
        let id = Identifier::new("email", "a@x.io");
        let base = key("ws_1", Collection::Users, &id);
        assert_eq!(base, key("ws_1", Collection::Users, &id), "stable");
        assert_ne!(base, key("ws_2", Collection::Users, &id));
        assert_ne!(base, key("ws_1", Collection::Accounts, &id));
        assert_ne!(
            base,
            key(
                "ws_1",
                Collection::Users,
                &Identifier::new("email", "b@x.io")
            )
        );
        assert_ne!(
            key("ws_1", Collection::Users, &Identifier::new("ab", "c")),
            key("ws_1", Collection::Users, &Identifier::new("a", "bc"))
        );
        // Keys are stored, so the definition must never drift: FNV-1a written out plainly.
        assert_eq!(
            key("w", Collection::Users, &Identifier::new("k", "v")),
            key_reference("w", "users", "k", "v")
        );
    }

    /// FNV-1a with the published offset basis and prime, as decimal numbers.
    fn key_reference(w: &str, c: &str, k: &str, v: &str) -> i64 {
        let mut bytes = Vec::new();
        for part in [w, c, k, v] {
            bytes.extend_from_slice(part.as_bytes());
            bytes.push(0xff);
        }
        let mut hash: u64 = 14_695_981_039_346_656_037;
        for byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(1_099_511_628_211);
        }
        hash as i64
    }

    #[test]
    fn find_compares_the_text_not_only_the_key() {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(super::super::SCHEMA).unwrap();
        let id = Identifier::new("user_id", "u1");
        let origin = Origin {
            source_id: "src",
            message_id: "m1",
            first_seen_ms: 1,
            last_seen_ms: 2,
        };
        insert(&connection, "ws", Collection::Users, &id, 7, &origin).unwrap();
        let found = find(&connection, "ws", Collection::Users, &id)
            .unwrap()
            .unwrap();
        assert_eq!((found.profile, found.last_seen_ms), (7, 2));
        // A row that carries the same key but another value (a collision) is not a match.
        connection
            .execute(
                "UPDATE identifiers SET value = 'other' WHERE id = ?1",
                [found.row],
            )
            .unwrap();
        assert_eq!(
            find(&connection, "ws", Collection::Users, &id).unwrap(),
            None
        );
        assert_eq!(
            find(&connection, "ws2", Collection::Users, &id).unwrap(),
            None
        );
    }
}
