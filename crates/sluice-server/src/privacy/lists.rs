//! Lists of people in memory: the digests of every listed identifier value, per workspace —
//! the suppressed (checked by the tracking API for each event before it is written) and those
//! who opted out of sale and sharing (checked by advertising destinations before sending).
//!
//! A workspace with nobody listed costs one map lookup per request. In a workspace with
//! some, an event is checked by its `userId` and `anonymousId` first, then by every identifier
//! identity resolution would read from it (emails and phones in traits, device ids, custom
//! types), so a listed person cannot come back under an identifier the graph knows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde_json::Value;
use sluice_identity::{Rules, extract};
use sluice_privacy::SubjectDigest;
use sluice_privacy::regulation::digest;
use sluice_store::{NewEvent, PersonList, StateStore, StoreError, WorkspaceId};

/// One workspace's listed digests, with what is needed to compute an event's.
struct Listed {
    key: Vec<u8>,
    digests: HashSet<SubjectDigest>,
    rules: Rules,
}

/// A list read from the state store, ready to be swapped in.
pub struct Loaded(HashMap<WorkspaceId, Arc<Listed>>);

/// One list of every workspace. See the module documentation.
pub struct Lists {
    list: PersonList,
    by_workspace: RwLock<HashMap<WorkspaceId, Arc<Listed>>>,
}

impl Lists {
    /// An empty list of this kind.
    pub fn new(list: PersonList) -> Lists {
        Lists {
            list,
            by_workspace: RwLock::new(HashMap::new()),
        }
    }

    pub fn kind(&self) -> PersonList {
        self.list
    }

    /// Reads the list from the state store, replacing what was held.
    pub fn reload(&self, state: &StateStore) -> Result<(), StoreError> {
        self.set(Lists::load(state, self.list)?);
        Ok(())
    }

    /// Replaces what is held with what [`Lists::load`] read.
    pub fn set(&self, loaded: Loaded) {
        if let Ok(mut held) = self.by_workspace.write() {
            *held = loaded.0;
        }
    }

    /// Reads a list from the state store (blocking).
    pub fn load(state: &StateStore, list: PersonList) -> Result<Loaded, StoreError> {
        let mut grouped: HashMap<WorkspaceId, HashSet<SubjectDigest>> = HashMap::new();
        for (workspace, digest) in state.all_listed(list)? {
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
                Arc::new(Listed {
                    key,
                    digests,
                    rules,
                }),
            );
        }
        Ok(Loaded(loaded))
    }

    /// How many identifier values are listed in the workspace.
    pub fn count(&self, workspace: &WorkspaceId) -> usize {
        self.get(workspace).map_or(0, |held| held.digests.len())
    }

    fn get(&self, workspace: &WorkspaceId) -> Option<Arc<Listed>> {
        let held = self.by_workspace.read().ok()?;
        held.get(workspace).cloned()
    }

    /// A checker for one workspace's events, or `None` when nobody is listed there.
    pub fn checker<'a>(&self, workspace: &'a WorkspaceId) -> Option<Checker<'a>> {
        self.get(workspace).map(|held| Checker {
            workspace: &workspace.0,
            held,
        })
    }
}

/// Checks the events of one workspace where someone is listed.
pub struct Checker<'a> {
    workspace: &'a str,
    held: Arc<Listed>,
}

impl Checker<'_> {
    fn hit(&self, value: &str) -> bool {
        self.held
            .digests
            .contains(&digest(&self.held.key, self.workspace, value))
    }

    /// Whether an identifier value is listed.
    pub fn holds_value(&self, value: &str) -> bool {
        self.hit(value)
    }

    /// Whether the event belongs to a listed person.
    pub fn holds(&self, event: &NewEvent) -> bool {
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
