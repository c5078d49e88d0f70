//! An identity graph held in memory: the reference the store is tested against, and the scratch
//! graph an unmerge replays a profile's events into.

use std::collections::HashMap;

use crate::identifier::{Collection, Identifier};
use crate::resolve::{Decision, Graph, IdState, ProfileId, ProfileView};

#[derive(Debug, Default, Clone)]
pub struct MemoryGraph {
    owners: HashMap<(Collection, Identifier), ProfileId>,
    profiles: HashMap<ProfileId, ProfileView>,
    next: ProfileId,
}

impl MemoryGraph {
    /// Applies a decision made at event time `at_ms`; returns the profile the event joined.
    pub fn apply(
        &mut self,
        collection: Collection,
        decision: &Decision,
        at_ms: i64,
    ) -> Option<ProfileId> {
        let target = match (decision.target, decision.create) {
            (Some(profile), _) => profile,
            (None, true) => {
                self.next += 1;
                let profile = self.next;
                self.profiles.insert(
                    profile,
                    ProfileView {
                        id: profile,
                        merges: 0,
                        identifiers: Vec::new(),
                    },
                );
                profile
            }
            (None, false) => return None,
        };
        for absorbed in &decision.absorbed {
            let Some(gone) = self.profiles.remove(absorbed) else {
                continue;
            };
            for state in &gone.identifiers {
                self.owners.insert((collection, state.id.clone()), target);
            }
            if let Some(kept) = self.profiles.get_mut(&target) {
                kept.merges += gone.merges + 1;
                kept.identifiers.extend(gone.identifiers);
            }
        }
        let kept = self.profiles.get_mut(&target)?;
        for (id, _) in &decision.seen {
            if let Some(state) = kept.identifiers.iter_mut().find(|s| &s.id == id) {
                state.last_seen_ms = state.last_seen_ms.max(at_ms);
            }
        }
        for id in &decision.added {
            kept.identifiers.push(IdState {
                id: id.clone(),
                last_seen_ms: at_ms,
            });
            self.owners.insert((collection, id.clone()), target);
        }
        Some(target)
    }

    /// Every identifier with the profile that holds it.
    pub fn owners(&self) -> impl Iterator<Item = (&Identifier, ProfileId)> {
        self.owners.iter().map(|((_, id), profile)| (id, *profile))
    }

    /// The live profiles.
    pub fn profiles(&self) -> impl Iterator<Item = &ProfileView> {
        self.profiles.values()
    }
}

impl Graph for MemoryGraph {
    type Error = std::convert::Infallible;

    fn find(
        &mut self,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<ProfileId>, Self::Error> {
        Ok(self.owners.get(&(collection, id.clone())).copied())
    }

    fn view(&mut self, profile: ProfileId) -> Result<ProfileView, Self::Error> {
        Ok(self.profiles.get(&profile).cloned().unwrap_or(ProfileView {
            id: profile,
            merges: 0,
            identifiers: Vec::new(),
        }))
    }
}
