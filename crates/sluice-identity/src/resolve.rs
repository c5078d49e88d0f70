//! The merge algorithm ("flat matching").
//!
//! 1. Look up the profiles that hold any of the event's identifiers.
//! 2. None: a new profile. One: the event joins it. Several: they merge into the oldest.
//! 3. If the result would hold more values of a type than the type's limit allows within its
//!    window (and more than any of the matched profiles already held), drop the event's
//!    least trusted identifier and start again from 1.
//! 4. Caps: a merge that would take a profile past [`Rules::max_merges`] does not happen (the
//!    event joins the profile found by its most trusted identifier and the identifiers of the
//!    other profiles are dropped); identifiers past [`Rules::max_identifiers`] are not added.
//!
//! The caller applies the [`Decision`]; nothing here writes.

use serde::Serialize;

use crate::identifier::{self, Collection, Identifier};
use crate::settings::Rules;

/// A profile's internal number. Numbers grow with creation, so the smallest is the oldest.
pub type ProfileId = i64;

/// An identifier of a profile and when it was last seen (event time, ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdState {
    pub id: Identifier,
    pub last_seen_ms: i64,
}

/// What the resolver needs to know of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView {
    pub id: ProfileId,
    /// Merges the profile has taken in so far (its own and those of the profiles it absorbed).
    pub merges: u32,
    pub identifiers: Vec<IdState>,
}

/// Read access to the identity graph.
pub trait Graph {
    type Error;
    /// The live profile of `collection` holding `id`.
    fn find(
        &mut self,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<ProfileId>, Self::Error>;
    /// A live profile's merge count and identifiers.
    fn view(&mut self, profile: ProfileId) -> Result<ProfileView, Self::Error>;
}

/// Why an identifier of the event was not added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DropReason {
    /// Keeping it would have put too many values of `type` on the profile.
    Limit {
        #[serde(rename = "type")]
        kind: String,
    },
    /// It belongs to another profile and merging would pass the merge cap.
    MergeCap,
    /// The profile already has the maximum number of identifiers.
    IdentifierCap,
}

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The profile the event joins; `None` with `create` set: a new one; `None` without: the
    /// event has no usable identifier.
    pub target: Option<ProfileId>,
    pub create: bool,
    /// Profiles merged into the target, oldest first.
    pub absorbed: Vec<ProfileId>,
    /// Identifiers new to the target.
    pub added: Vec<Identifier>,
    /// Identifiers the target or an absorbed profile already had (with that profile): they
    /// were seen again.
    pub seen: Vec<(Identifier, ProfileId)>,
    pub dropped: Vec<(Identifier, DropReason)>,
}

/// The identifier an alias call's `previousId` stands for: the user id or anonymous id a
/// profile already holds (user id first), else a new anonymous id.
pub fn alias_identifier<G: Graph>(graph: &mut G, previous: &str) -> Result<Identifier, G::Error> {
    let as_user = Identifier::new(identifier::USER_ID, previous);
    if graph.find(Collection::Users, &as_user)?.is_some() {
        return Ok(as_user);
    }
    Ok(Identifier::new(identifier::ANONYMOUS_ID, previous))
}

/// Decides where an event with these identifiers goes, at event time `at_ms`.
pub fn resolve<G: Graph>(
    graph: &mut G,
    rules: &Rules,
    collection: Collection,
    ids: &[Identifier],
    at_ms: i64,
) -> Result<Decision, G::Error> {
    let mut ids = ids.to_vec();
    rules.sort_by_priority(&mut ids);
    ids.dedup();
    let mut dropped = Vec::new();
    loop {
        if ids.is_empty() {
            return Ok(Decision {
                dropped,
                ..Decision::default()
            });
        }
        let mut owners = Vec::with_capacity(ids.len());
        let mut matched: Vec<ProfileId> = Vec::new();
        for id in &ids {
            let owner = graph.find(collection, id)?;
            if let Some(profile) = owner
                && !matched.contains(&profile)
            {
                matched.push(profile);
            }
            owners.push(owner);
        }
        if matched.len() == 1 && owners.iter().all(Option::is_some) {
            // Every identifier is already on one profile: nothing grows, no rule can break.
            let profile = matched[0];
            let seen = ids.into_iter().map(|id| (id, profile)).collect();
            return Ok(Decision {
                target: Some(profile),
                seen,
                dropped,
                ..Decision::default()
            });
        }
        let mut views = Vec::with_capacity(matched.len());
        for profile in &matched {
            views.push(graph.view(*profile)?);
        }
        if let Some(kind) = limit_broken(rules, &views, &ids, at_ms) {
            let Some(least) = ids.pop() else {
                unreachable!("ids is not empty")
            };
            dropped.push((least, DropReason::Limit { kind }));
            continue;
        }
        return Ok(decide(rules, ids, owners, matched, views, dropped));
    }
}

/// Applies the caps and builds the decision once the limits hold.
fn decide(
    rules: &Rules,
    ids: Vec<Identifier>,
    owners: Vec<Option<ProfileId>>,
    matched: Vec<ProfileId>,
    mut views: Vec<ProfileView>,
    mut dropped: Vec<(Identifier, DropReason)>,
) -> Decision {
    let mut decision = Decision::default();
    if matched.is_empty() {
        decision.create = true;
    } else if matched.len() > 1 {
        let merges: u64 =
            views.iter().map(|v| u64::from(v.merges)).sum::<u64>() + matched.len() as u64 - 1;
        if merges > u64::from(rules.max_merges) {
            // No merge: the event stays with the profile of its most trusted identifier.
            let keep = matched[0];
            views.retain(|v| v.id == keep);
            decision.target = Some(keep);
        } else {
            let oldest = matched.iter().copied().min().unwrap_or(matched[0]);
            decision.target = Some(oldest);
            let mut absorbed: Vec<ProfileId> =
                matched.iter().copied().filter(|p| *p != oldest).collect();
            absorbed.sort_unstable();
            decision.absorbed = absorbed;
        }
    } else {
        decision.target = Some(matched[0]);
    }

    let in_result = |p: ProfileId| decision.target == Some(p) || decision.absorbed.contains(&p);
    let mut room = u64::from(rules.max_identifiers).saturating_sub(
        views
            .iter()
            .map(|v| v.identifiers.len() as u64)
            .sum::<u64>(),
    );
    let mut added = Vec::new();
    let mut seen = Vec::new();
    for (id, owner) in ids.into_iter().zip(owners) {
        if let Some(profile) = owner.filter(|p| in_result(*p)) {
            seen.push((id, profile));
        } else if owner.is_some() {
            dropped.push((id, DropReason::MergeCap));
        } else if room == 0 {
            dropped.push((id, DropReason::IdentifierCap));
        } else {
            room -= 1;
            added.push(id);
        }
    }
    decision.added = added;
    decision.seen = seen;
    decision.dropped = dropped;
    decision
}

/// The first type (in priority order of the event's identifiers) whose limit the union of the
/// matched profiles and the event would break.
fn limit_broken(
    rules: &Rules,
    views: &[ProfileView],
    ids: &[Identifier],
    at_ms: i64,
) -> Option<String> {
    let mut kinds: Vec<&str> = Vec::new();
    for id in ids {
        if !kinds.contains(&id.kind.as_str()) {
            kinds.push(&id.kind);
        }
    }
    for view in views {
        for state in &view.identifiers {
            if !kinds.contains(&state.id.kind.as_str()) {
                kinds.push(&state.id.kind);
            }
        }
    }
    for kind in kinds {
        let Some((limit, window_ms)) = rules.limit(kind) else {
            continue;
        };
        let counts = |of: &mut dyn Iterator<Item = (&Identifier, i64)>,
                      values: &mut Vec<String>| {
            for (id, last_seen) in of {
                let recent = window_ms.is_none_or(|w| last_seen > at_ms - w);
                if id.kind == kind && recent && !values.contains(&id.value) {
                    values.push(id.value.clone());
                }
            }
        };
        let mut union: Vec<String> = Vec::new();
        let mut largest_single = 0usize;
        for view in views {
            let mut own: Vec<String> = Vec::new();
            let mut states = view.identifiers.iter().map(|s| {
                let seen_now = ids.contains(&s.id);
                (
                    &s.id,
                    if seen_now {
                        at_ms.max(s.last_seen_ms)
                    } else {
                        s.last_seen_ms
                    },
                )
            });
            counts(&mut states, &mut own);
            largest_single = largest_single.max(own.len());
            for value in own {
                if !union.contains(&value) {
                    union.push(value);
                }
            }
        }
        counts(&mut ids.iter().map(|id| (id, at_ms)), &mut union);
        if union.len() > limit as usize && union.len() > largest_single {
            return Some(kind.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryGraph;
    use crate::settings::{IdentitySettings, Window};

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn id(kind: &str, value: &str) -> Identifier {
        Identifier::new(kind, value)
    }

    fn rules() -> Rules {
        Rules::compile(&IdentitySettings::default()).unwrap()
    }

    /// Resolves and applies; returns the profile the event joined.
    fn send(
        graph: &mut MemoryGraph,
        rules: &Rules,
        ids: &[Identifier],
        at: i64,
    ) -> (Option<ProfileId>, Decision) {
        let decision = resolve(graph, rules, Collection::Users, ids, at).unwrap();
        let profile = graph.apply(Collection::Users, &decision, at);
        (profile, decision)
    }

    #[test]
    fn new_then_join_then_merge_into_the_oldest() {
        let rules = rules();
        let mut graph = MemoryGraph::default();
        let (anon, d) = send(&mut graph, &rules, &[id("anonymous_id", "a1")], 0);
        assert!(d.create);
        let (user, _) = send(&mut graph, &rules, &[id("user_id", "u1")], 1);
        assert_ne!(anon, user);
        let (same, d) = send(
            &mut graph,
            &rules,
            &[id("anonymous_id", "a1"), id("email", "j@x.io")],
            2,
        );
        assert_eq!(same, anon);
        assert_eq!(d.added, vec![id("email", "j@x.io")]);
        assert_eq!(d.seen, vec![(id("anonymous_id", "a1"), anon.unwrap())]);
        let (merged, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u1"), id("anonymous_id", "a1")],
            3,
        );
        assert_eq!(merged, anon, "the oldest profile survives");
        assert_eq!(d.absorbed, vec![user.unwrap()]);
        assert_eq!(
            graph.find(Collection::Users, &id("user_id", "u1")).unwrap(),
            anon
        );
        assert_eq!(graph.view(anon.unwrap()).unwrap().merges, 1);
    }

    #[test]
    fn segment_example_user_id_limit_demotes_the_email() {
        // Profile {user_id abc123, email jane@}; event {user_id abc456, email jane@}: the
        // user_id limit (1) would break, so the email is dropped and abc456 gets its own profile.
        let rules = rules();
        let mut graph = MemoryGraph::default();
        let (first, _) = send(
            &mut graph,
            &rules,
            &[id("user_id", "abc123"), id("email", "jane@x.io")],
            0,
        );
        let (second, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "abc456"), id("email", "jane@x.io")],
            1,
        );
        assert!(d.create);
        assert_ne!(first, second);
        assert_eq!(
            d.dropped,
            vec![(
                id("email", "jane@x.io"),
                DropReason::Limit {
                    kind: "user_id".into()
                }
            )]
        );
        assert_eq!(d.added, vec![id("user_id", "abc456")]);
        assert_eq!(
            graph
                .find(Collection::Users, &id("email", "jane@x.io"))
                .unwrap(),
            first
        );
    }

    #[test]
    fn rotating_anonymous_ids_are_limited_per_week() {
        let rules = rules();
        let mut graph = MemoryGraph::default();
        let (user, _) = send(&mut graph, &rules, &[id("user_id", "u")], 0);
        for n in 0..5 {
            let (p, d) = send(
                &mut graph,
                &rules,
                &[id("user_id", "u"), id("anonymous_id", &format!("a{n}"))],
                n,
            );
            assert_eq!(p, user);
            assert_eq!(d.added.len(), 1);
        }
        // A sixth in the same week is dropped; the event still joins the user's profile.
        let (p, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("anonymous_id", "a5")],
            10,
        );
        assert_eq!(p, user);
        assert_eq!(
            d.dropped,
            vec![(
                id("anonymous_id", "a5"),
                DropReason::Limit {
                    kind: "anonymous_id".into()
                }
            )]
        );
        assert_eq!(
            graph
                .find(Collection::Users, &id("anonymous_id", "a5"))
                .unwrap(),
            None
        );
        // A week later the old ones are outside the window.
        let (p, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("anonymous_id", "a5")],
            8 * DAY,
        );
        assert_eq!(p, user);
        assert_eq!(d.added, vec![id("anonymous_id", "a5")]);
    }

    #[test]
    fn an_ever_limit_never_slides() {
        let mut settings = IdentitySettings::default();
        let email = settings
            .identifiers
            .iter_mut()
            .find(|r| r.kind == "email")
            .unwrap();
        email.limit = 1;
        email.window = Window::Ever;
        let rules = Rules::compile(&settings).unwrap();
        let mut graph = MemoryGraph::default();
        let (p, _) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("email", "a@x.io")],
            0,
        );
        let (q, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("email", "b@x.io")],
            400 * DAY,
        );
        assert_eq!(p, q);
        assert_eq!(
            d.dropped,
            vec![(
                id("email", "b@x.io"),
                DropReason::Limit {
                    kind: "email".into()
                }
            )]
        );
    }

    #[test]
    fn a_shared_email_does_not_make_a_blob() {
        // team@ is used by two people with different user ids: no merge.
        let rules = rules();
        let mut graph = MemoryGraph::default();
        let (a, _) = send(
            &mut graph,
            &rules,
            &[id("user_id", "alice"), id("email", "team@x.io")],
            0,
        );
        let (b, _) = send(
            &mut graph,
            &rules,
            &[id("user_id", "bob"), id("email", "team@x.io")],
            1,
        );
        assert_ne!(a, b);
        let (c, d) = send(
            &mut graph,
            &rules,
            &[
                id("user_id", "carol"),
                id("anonymous_id", "ipad"),
                id("email", "team@x.io"),
            ],
            2,
        );
        assert_ne!(c, a);
        // Segment's rule drops the least trusted identifier first, even one that broke nothing.
        let dropped: Vec<&Identifier> = d.dropped.iter().map(|(id, _)| id).collect();
        assert_eq!(
            dropped,
            [&id("anonymous_id", "ipad"), &id("email", "team@x.io")]
        );
        assert_eq!(d.added, vec![id("user_id", "carol")]);
    }

    #[test]
    fn existing_overages_do_not_block_events_that_add_nothing() {
        // Settings tightened later: a profile with two emails keeps receiving events.
        let rules_before = Rules::unlimited();
        let mut graph = MemoryGraph::default();
        let (p, _) = send(
            &mut graph,
            &rules_before,
            &[
                id("user_id", "u"),
                id("email", "a@x.io"),
                id("email", "b@x.io"),
            ],
            0,
        );
        let mut settings = IdentitySettings::default();
        settings
            .identifiers
            .iter_mut()
            .find(|r| r.kind == "email")
            .unwrap()
            .limit = 1;
        let rules = Rules::compile(&settings).unwrap();
        let (q, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("email", "a@x.io")],
            1,
        );
        assert_eq!(p, q);
        assert!(d.dropped.is_empty());
    }

    #[test]
    fn merge_cap_keeps_the_most_trusted_profile_and_stops_merging() {
        let mut rules = Rules::unlimited();
        rules.max_merges = 1;
        let mut graph = MemoryGraph::default();
        let (a, _) = send(&mut graph, &rules, &[id("anonymous_id", "a")], 0);
        let (_, _) = send(&mut graph, &rules, &[id("anonymous_id", "b")], 1);
        let (_, d) = send(
            &mut graph,
            &rules,
            &[id("anonymous_id", "a"), id("anonymous_id", "b")],
            2,
        );
        assert_eq!(d.absorbed.len(), 1);
        let (u, _) = send(&mut graph, &rules, &[id("user_id", "u")], 3);
        let (p, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("anonymous_id", "a")],
            4,
        );
        assert_eq!(p, u, "user_id is the most trusted identifier");
        assert!(d.absorbed.is_empty());
        assert_eq!(
            d.dropped,
            vec![(id("anonymous_id", "a"), DropReason::MergeCap)]
        );
        assert_eq!(
            graph
                .find(Collection::Users, &id("anonymous_id", "a"))
                .unwrap(),
            a
        );
    }

    #[test]
    fn identifier_cap_stops_adding_but_events_still_resolve() {
        let mut rules = Rules::unlimited();
        rules.max_identifiers = 3;
        let mut graph = MemoryGraph::default();
        let (p, _) = send(
            &mut graph,
            &rules,
            &[
                id("user_id", "u"),
                id("anonymous_id", "a"),
                id("anonymous_id", "b"),
            ],
            0,
        );
        let (q, d) = send(
            &mut graph,
            &rules,
            &[id("user_id", "u"), id("anonymous_id", "c")],
            1,
        );
        assert_eq!(p, q);
        assert_eq!(
            d.dropped,
            vec![(id("anonymous_id", "c"), DropReason::IdentifierCap)]
        );
    }

    #[test]
    fn no_identifiers_no_profile_and_alias_picks_the_known_type() {
        let rules = rules();
        let mut graph = MemoryGraph::default();
        let d = resolve(&mut graph, &rules, Collection::Users, &[], 0).unwrap();
        assert!(
            d.target.is_none() && !d.create,
            "no profile for an event without identifiers"
        );
        assert_eq!(
            alias_identifier(&mut graph, "x").unwrap(),
            id("anonymous_id", "x")
        );
        send(&mut graph, &rules, &[id("user_id", "x")], 0);
        assert_eq!(
            alias_identifier(&mut graph, "x").unwrap(),
            id("user_id", "x")
        );
    }
}
