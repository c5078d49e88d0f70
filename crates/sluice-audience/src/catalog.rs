//! A workspace's definitions taken together: keys unique across traits and audiences,
//! references to audiences that exist, and no cycle between audiences.

use std::collections::HashMap;

use crate::definition::{Audience, ComputedTrait, DefinitionError};

/// Every computed trait and audience of a workspace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    pub traits: Vec<ComputedTrait>,
    pub audiences: Vec<Audience>,
}

impl Catalog {
    /// Checks the definitions together; on success, the order to evaluate the audiences in
    /// (indices into `audiences`, every audience after those it refers to).
    pub fn check(&self) -> Result<Vec<usize>, DefinitionError> {
        let mut keys: HashMap<&str, &str> = HashMap::new();
        for definition in &self.traits {
            if keys.insert(&definition.key, "computed trait").is_some() {
                return Err(taken(&definition.key, "computed trait"));
            }
        }
        let mut audiences: HashMap<&str, usize> = HashMap::new();
        for (index, definition) in self.audiences.iter().enumerate() {
            if let Some(owner) = keys.insert(&definition.key, "audience") {
                return Err(taken(&definition.key, owner));
            }
            audiences.insert(&definition.key, index);
        }
        let mut references = Vec::with_capacity(self.audiences.len());
        for definition in &self.audiences {
            let named = definition.condition.audiences();
            let mut indices = Vec::with_capacity(named.len());
            for key in named {
                let index = audiences.get(key).ok_or_else(|| DefinitionError {
                    field: "condition".into(),
                    message: format!("audience {key:?} does not exist"),
                })?;
                indices.push(*index);
            }
            references.push(indices);
        }
        // Depth-first: an audience is placed after everything it refers to.
        let mut order = Vec::with_capacity(self.audiences.len());
        let mut mark = vec![Mark::New; self.audiences.len()];
        for start in 0..self.audiences.len() {
            let mut path = Vec::new();
            self.visit(start, &references, &mut mark, &mut order, &mut path)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        index: usize,
        references: &[Vec<usize>],
        mark: &mut [Mark],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<(), DefinitionError> {
        match mark[index] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                let start = path.iter().position(|open| *open == index).unwrap_or(0);
                let mut keys: Vec<&str> = path[start..]
                    .iter()
                    .map(|open| self.audiences[*open].key.as_str())
                    .collect();
                keys.push(&self.audiences[index].key);
                return Err(DefinitionError {
                    field: "condition".into(),
                    message: format!("would create a cycle: {}", keys.join(" -> ")),
                });
            }
            Mark::New => {}
        }
        mark[index] = Mark::Open;
        path.push(index);
        for next in &references[index] {
            self.visit(*next, references, mark, order, path)?;
        }
        path.pop();
        mark[index] = Mark::Done;
        order.push(index);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    Open,
    Done,
}

fn taken(key: &str, owner: &str) -> DefinitionError {
    DefinitionError {
        field: "key".into(),
        message: format!("{key:?} is already the key of a {owner}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{read_audience, read_trait};
    use serde_json::json;

    fn audience(key: &str, condition: serde_json::Value) -> Audience {
        read_audience(&json!({"key": key, "name": key, "condition": condition})).unwrap()
    }

    #[test]
    fn orders_audiences_after_those_they_refer_to() {
        let catalog = Catalog {
            traits: vec![],
            audiences: vec![
                audience("c", json!({"and": [{"audience": "b"}, {"audience": "a"}]})),
                audience("b", json!({"not": {"audience": "a"}})),
                audience("a", json!({"performed": {"event": "E"}})),
            ],
        };
        assert_eq!(catalog.check().unwrap(), vec![2, 1, 0]);
    }

    #[test]
    fn refuses_cycles_unknown_audiences_and_shared_keys() {
        let cycle = Catalog {
            traits: vec![],
            audiences: vec![
                audience("a", json!({"audience": "b"})),
                audience(
                    "b",
                    json!({"or": [{"audience": "c"}, {"performed": {"event": "E"}}]}),
                ),
                audience("c", json!({"audience": "a"})),
            ],
        };
        assert_eq!(
            cycle.check().unwrap_err().to_string(),
            "condition: would create a cycle: a -> b -> c -> a"
        );
        let myself = Catalog {
            traits: vec![],
            audiences: vec![audience("a", json!({"not": {"audience": "a"}}))],
        };
        assert_eq!(
            myself.check().unwrap_err().to_string(),
            "condition: would create a cycle: a -> a"
        );
        let unknown = Catalog {
            traits: vec![],
            audiences: vec![audience("a", json!({"audience": "ghost"}))],
        };
        assert_eq!(
            unknown.check().unwrap_err().to_string(),
            "condition: audience \"ghost\" does not exist"
        );
        let shared = Catalog {
            traits: vec![
                read_trait(&json!({"key": "a", "name": "a", "type": "count", "event": "E"}))
                    .unwrap(),
            ],
            audiences: vec![audience("a", json!({"performed": {"event": "E"}}))],
        };
        assert_eq!(
            shared.check().unwrap_err().to_string(),
            "key: \"a\" is already the key of a computed trait"
        );
    }
}
