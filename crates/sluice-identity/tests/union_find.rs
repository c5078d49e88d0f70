//! With no limits and no caps, resolution is a plain union of identifiers: every identifier
//! ends in the same profile as every other identifier it was ever sent with, and nothing else.

use std::collections::HashMap;

use proptest::prelude::*;
use sluice_identity::{Collection, Identifier, MemoryGraph, Rules, resolve};

/// A textbook union-find over identifier indexes.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
        }
    }
    fn root(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }
}

const KINDS: [&str; 4] = ["user_id", "anonymous_id", "email", "phone"];

fn identifier(index: usize) -> Identifier {
    Identifier::new(KINDS[index % KINDS.len()], format!("v{index}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn resolution_without_limits_is_union_find(
        universe in 2usize..40,
        events in prop::collection::vec(prop::collection::vec(0usize..40, 1..5), 1..80),
    ) {
        let rules = Rules::unlimited();
        let mut graph = MemoryGraph::default();
        let mut model = UnionFind::new(universe);
        let mut used = vec![false; universe];
        for (at, event) in events.iter().enumerate() {
            let indexes: Vec<usize> = event.iter().map(|i| i % universe).collect();
            let ids: Vec<Identifier> = indexes.iter().map(|i| identifier(*i)).collect();
            let decision = resolve(&mut graph, &rules, Collection::Users, &ids, at as i64).unwrap();
            prop_assert!(decision.dropped.is_empty());
            graph.apply(Collection::Users, &decision, at as i64);
            for i in &indexes {
                used[*i] = true;
                model.union(indexes[0], *i);
            }
        }
        // Same partition: two identifiers share a profile exactly when they share a root.
        let owners: HashMap<Identifier, i64> = graph.owners().map(|(id, p)| (id.clone(), p)).collect();
        for a in 0..universe {
            prop_assert_eq!(owners.contains_key(&identifier(a)), used[a]);
            for b in 0..universe {
                if !(used[a] && used[b]) {
                    continue;
                }
                let same_profile = owners[&identifier(a)] == owners[&identifier(b)];
                prop_assert_eq!(same_profile, model.root(a) == model.root(b), "{} {}", a, b);
            }
        }
        let roots: std::collections::HashSet<usize> = (0..universe).filter(|i| used[*i]).map(|i| model.root(i)).collect();
        prop_assert_eq!(graph.profiles().count(), roots.len());
    }
}
