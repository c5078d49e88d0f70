//! Suppression at the ingest edge: the digests of every suppressed identifier value, per
//! workspace, in memory, checked for each event before it is written.
//!
//! A workspace with no suppression costs one map lookup per request. In a workspace with
//! some, an event is checked by its `userId` and `anonymousId` first, then by every identifier
//! identity resolution would read from it (emails and phones in traits, device ids, custom
//! types), so a suppressed person cannot come back under an identifier the graph knows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde_json::Value;
use sluice_identity::{Rules, extract};
use sluice_privacy::SubjectDigest;
use sluice_privacy::regulation::digest;
use sluice_store::{NewEvent, StateStore, StoreError, WorkspaceId};

/// One workspace's suppressed digests, with what is needed to compute an event's.
struct Suppressed {
    key: Vec<u8>,
    digests: HashSet<SubjectDigest>,
    rules: Rules,
}

/// Suppressions read from the state store, ready to be swapped in.
pub struct Loaded(HashMap<WorkspaceId, Arc<Suppressed>>);

/// Every workspace's suppressions. See the module documentation.
#[derive(Default)]
pub struct Suppressions {
    by_workspace: RwLock<HashMap<WorkspaceId, Arc<Suppressed>>>,
}

impl Suppressions {
    /// Reads every suppression from the state store, replacing what was held.
    pub fn reload(&self, state: &StateStore) -> Result<(), StoreError> {
        self.set(Suppressions::load(state)?);
        Ok(())
    }

    /// Replaces what is held with what [`Suppressions::load`] read.
    pub fn set(&self, loaded: Loaded) {
        if let Ok(mut held) = self.by_workspace.write() {
            *held = loaded.0;
        }
    }

    /// Reads every suppression from the state store (blocking).
    pub fn load(state: &StateStore) -> Result<Loaded, StoreError> {
        let mut grouped: HashMap<WorkspaceId, HashSet<SubjectDigest>> = HashMap::new();
        for (workspace, digest) in state.all_suppressions()? {
            grouped.entry(workspace).or_default().insert(digest);
        }
        let mut loaded = HashMap::with_capacity(grouped.len());
        for (workspace, digests) in grouped {
            let key = state.digest_key(&workspace)?;
            let settings = state.identity_settings(&workspace)?;
            // Stored settings were validated when saved; if they no longer compile, the
            // defaults still find user ids, anonymous ids, emails and phones.
            let rules = Rules::compile(&settings)
                .or_else(|_| Rules::compile(&Default::default()))
                .map_err(|error| StoreError::Invalid {
                    field: "identity_settings",
                    message: error.to_string(),
                })?;
            loaded.insert(
                workspace,
                Arc::new(Suppressed {
                    key,
                    digests,
                    rules,
                }),
            );
        }
        Ok(Loaded(loaded))
    }

    /// How many identifier values are suppressed in the workspace.
    pub fn count(&self, workspace: &WorkspaceId) -> usize {
        self.get(workspace).map_or(0, |held| held.digests.len())
    }

    fn get(&self, workspace: &WorkspaceId) -> Option<Arc<Suppressed>> {
        let held = self.by_workspace.read().ok()?;
        held.get(workspace).cloned()
    }

    /// A checker for one workspace's events, or `None` when nothing is suppressed there.
    pub fn checker(&self, workspace: &WorkspaceId) -> Option<Checker> {
        self.get(workspace).map(|held| Checker {
            workspace: workspace.0.clone(),
            held,
        })
    }
}

/// Checks the events of one workspace that has suppressions.
pub struct Checker {
    workspace: String,
    held: Arc<Suppressed>,
}

impl Checker {
    fn hit(&self, value: &str) -> bool {
        self.held
            .digests
            .contains(&digest(&self.held.key, &self.workspace, value))
    }

    /// Whether the event belongs to a suppressed person.
    pub fn is_suppressed(&self, event: &NewEvent) -> bool {
        for value in [&event.user_id, &event.anonymous_id].into_iter().flatten() {
            if self.hit(value) {
                return true;
            }
        }
        let Ok(message) = serde_json::from_str::<Value>(&event.body) else {
            return false;
        };
        let found = extract(&message, &self.held.rules);
        found.user_ids.iter().any(|id| self.hit(&id.value))
            || found
                .alias_previous
                .as_deref()
                .is_some_and(|id| self.hit(id))
    }
}
