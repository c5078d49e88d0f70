//! The size estimate of a draft audience, before it is saved: the draft and what it refers to
//! (other audiences, computed traits) evaluated in memory over the logged history of every
//! profile the consumer has seen, exactly as a backfill would, without storing anything.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sluice_audience::{Catalog, Engine, EventRef, ProfileState};
use sluice_store::{StoreError, WorkspaceId};

use super::Audiences;
use super::consumer::group_by_profile;
use crate::store_call;

/// What an estimate found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Profiles the draft would hold now.
    pub members: u64,
    /// Profiles evaluated (every profile with logged events).
    pub profiles: u64,
}

impl Audiences {
    /// Evaluates audience `key` of `catalog` (checked) over the history; the catalog is cut to
    /// what `key` needs.
    pub async fn estimate(
        &self,
        workspace: &WorkspaceId,
        catalog: &Catalog,
        key: &str,
    ) -> Result<Estimate, StoreError> {
        let needed = closure(catalog, key);
        let engine = Engine::new(&needed).map_err(|error| StoreError::Invalid {
            field: "definition",
            message: error.to_string(),
        })?;
        let engine = Arc::new(engine);
        let rules = self.rules(workspace).await?;
        let state = Arc::clone(&self.state);
        let ws = workspace.clone();
        let sources = store_call(move || state.list_sources(&ws)).await?;
        let mut states: HashMap<i64, ProfileState> = HashMap::new();
        let now = self.clock.now_ms();
        for source in sources {
            let store = Arc::clone(&self.store);
            let (ws, id) = (workspace.clone(), source.id.clone());
            let upto = store_call(move || store.cursor(&ws, &id)).await?;
            let mut from = 0;
            while from < upto {
                let events = self.read(workspace, &source.id, from, upto).await?;
                let Some(last) = events.last().map(|event| event.seq) else {
                    break;
                };
                from = last;
                let profiles = Arc::clone(&self.profiles.store);
                let (rules, ws) = (Arc::clone(&rules), workspace.clone());
                let (work, _) =
                    store_call(move || group_by_profile(&profiles, &ws, &rules, &events)).await?;
                for item in work {
                    let state = states.entry(item.profile).or_insert_with(|| engine.fresh());
                    for body in &item.events {
                        if let Some(event) = EventRef::read(body) {
                            engine.apply(state, &event, now);
                        }
                    }
                }
            }
        }
        let profiles = Arc::clone(&self.profiles.store);
        let ws = workspace.clone();
        let key = key.to_string();
        store_call(move || {
            let mut members = 0;
            let total = states.len() as u64;
            for (profile, mut state) in states {
                let traits = profiles.trait_values(&ws, profile, engine.profile_trait_names())?;
                engine.evaluate(&mut state, traits.as_slice(), now);
                if engine.outputs(&state).audiences.contains(&key) {
                    members += 1;
                }
            }
            Ok(Estimate {
                members,
                profiles: total,
            })
        })
        .await
    }
}

/// The part of `catalog` audience `key` needs: itself, the audiences it refers to (and so on)
/// and the computed traits.
fn closure(catalog: &Catalog, key: &str) -> Catalog {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut pending = vec![key.to_string()];
    while let Some(next) = pending.pop() {
        if !wanted.insert(next.clone()) {
            continue;
        }
        if let Some(audience) = catalog.audiences.iter().find(|a| a.key == next) {
            pending.extend(
                audience
                    .condition
                    .audiences()
                    .into_iter()
                    .map(str::to_string),
            );
        }
    }
    Catalog {
        traits: catalog.traits.clone(),
        audiences: catalog
            .audiences
            .iter()
            .filter(|audience| wanted.contains(&audience.key))
            .cloned()
            .collect(),
    }
}
