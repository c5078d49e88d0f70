//! `privacy verify`: looks for a person in every store that holds personal data, through each
//! store's "find" (log, profiles and identity graph, dead letters, audience states), then scans the bytes of
//! every file of the data directory for each of their identifier values. Used by the admin API
//! and by the CLI (which reads the files of a node that may be running).

use std::path::Path;

use serde_json::{Value, json};
use sluice_identity::Identifier;
use sluice_store::log::sqlite::find_person_in_file;
use sluice_store::{StoreError, WorkspaceId};

use super::PersonStores;
use super::scan::{Hit, scan_dir};

/// What was found about a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// The identifier values looked for: the subject's and, if a profile holds it, every
    /// identifier of that profile.
    pub values: Vec<String>,
    /// The `messageId`s of the person's events still in the log.
    pub message_ids: Vec<String>,
    /// Per store, how many records hold the person.
    pub stores: Vec<(&'static str, u64)>,
    /// Files of the data directory whose bytes hold one of the values.
    pub files: Vec<Hit>,
}

impl Findings {
    /// Nothing anywhere.
    pub fn is_clean(&self) -> bool {
        self.stores.iter().all(|(_, count)| *count == 0) && self.files.is_empty()
    }

    /// The answer of the API and of `--json` (file hits name the value by its position only).
    pub fn to_json(&self) -> Value {
        let stores: Vec<Value> = self
            .stores
            .iter()
            .map(|(store, found)| json!({"store": store, "found": found}))
            .collect();
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|hit| json!({"file": hit.file, "value": hit.value, "occurrences": hit.count}))
            .collect();
        json!({
            "clean": self.is_clean(),
            "identifiersSearched": self.values.len(),
            "stores": stores,
            "files": files,
        })
    }
}

/// Looks for the person named by `subject` in the stores of `data_dir`.
pub fn find(
    data_dir: &Path,
    stores: &PersonStores<'_>,
    workspace: &WorkspaceId,
    subject: &Identifier,
) -> Result<Findings, StoreError> {
    let person = stores
        .profiles
        .find_person(workspace, std::slice::from_ref(subject))?;
    let mut values = vec![subject.value.clone()];
    for identifier in &person.identifiers {
        if !values.contains(&identifier.value) {
            values.push(identifier.value.clone());
        }
    }
    let events = find_person_in_file(&data_dir.join("log.db"), workspace, &values)?;
    let profile_records = person.profiles.len() as u64 + person.events;
    let dead_letters = stores.delivery.find_person(workspace, &values)?.len() as u64;
    let audiences = stores
        .audiences
        .find_person(workspace, &person.profile_ids)?;
    let files = scan_dir(data_dir, &values)?;
    Ok(Findings {
        values,
        message_ids: events.iter().map(|e| e.event.message_id.clone()).collect(),
        stores: vec![
            ("log", events.len() as u64),
            ("profiles", profile_records),
            ("dead_letters", dead_letters),
            ("audiences", audiences),
        ],
        files,
    })
}
