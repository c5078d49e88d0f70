//! Destination filters: a condition and its actions, validated on construction, and
//! [`apply`], which runs a destination's filters on one event.
//!
//! Every filter's condition is evaluated once, against the event as it arrived. Then the
//! actions of the matching filters run in Segment's order, across filters: every sample, then
//! every drop, then property drops, then property allow-lists.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::actions::{self, Action};
use crate::error::FilterError;
use crate::query::Query;
use crate::sample;

/// Longest filter title, in characters.
pub const MAX_TITLE_CHARS: usize = 64;

/// Most filters one destination may have.
pub const MAX_FILTERS_PER_DESTINATION: usize = 10;

/// A destination filter: when the `if` condition matches an event, the actions apply.
///
/// Built with [`DestinationFilter::new`] or deserialized from Segment's Public API shape
/// (`{"title", "description"?, "if", "actions", "enabled"?}`; other fields such as `id` or
/// `destinationId` are ignored, `enabled` defaults to `true`). Both validate: the condition
/// must parse, a sample percent must be within `0..=1`. The condition is parsed once and kept.
#[derive(Debug, Clone)]
pub struct DestinationFilter {
    title: String,
    description: Option<String>,
    if_: String,
    actions: Vec<Action>,
    enabled: bool,
    query: Query,
}

impl DestinationFilter {
    /// A filter; refuses invalid FQL (with its position), a bad action, no action, or a title
    /// over [`MAX_TITLE_CHARS`].
    pub fn new(
        title: impl Into<String>,
        if_: impl Into<String>,
        actions: Vec<Action>,
        enabled: bool,
    ) -> Result<DestinationFilter, FilterError> {
        let title = title.into();
        let if_ = if_.into();
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(FilterError::TitleTooLong);
        }
        if actions.is_empty() {
            return Err(FilterError::NoActions);
        }
        for (index, action) in actions.iter().enumerate() {
            action.validate(index)?;
        }
        let query = Query::parse(&if_)?;
        Ok(DestinationFilter {
            title,
            description: None,
            if_,
            actions,
            enabled,
            query,
        })
    }

    /// The same filter with a description.
    pub fn with_description(mut self, description: impl Into<String>) -> DestinationFilter {
        self.description = Some(description.into());
        self
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The condition as written (`if` in JSON).
    pub fn if_(&self) -> &str {
        &self.if_
    }

    /// The parsed condition.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The actions, as given.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Whether the filter runs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Turns the filter on or off.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Whether the condition matches `event` (whether or not the filter is enabled).
    pub fn matches(&self, event: &Value) -> bool {
        self.query.matches(event)
    }

    /// The actions as tsub transformers, in the order they run.
    pub fn tsub_transformers(&self) -> Value {
        let mut actions: Vec<&Action> = self.actions.iter().collect();
        actions.sort_by_key(|a| a.phase());
        Value::Array(actions.into_iter().map(Action::to_tsub).collect())
    }
}

impl PartialEq for DestinationFilter {
    fn eq(&self, other: &DestinationFilter) -> bool {
        self.title == other.title
            && self.description == other.description
            && self.if_ == other.if_
            && self.actions == other.actions
            && self.enabled == other.enabled
    }
}

/// Refuses more than [`MAX_FILTERS_PER_DESTINATION`] filters for one destination.
pub fn validate_filters(filters: &[DestinationFilter]) -> Result<(), FilterError> {
    if filters.len() > MAX_FILTERS_PER_DESTINATION {
        return Err(FilterError::TooManyFilters(filters.len()));
    }
    Ok(())
}

/// Runs a destination's filters on an event: `None` when the event is dropped (or sampled
/// out), else the event with any property actions applied. Disabled filters are skipped.
pub fn apply(filters: &[DestinationFilter], mut event: Value) -> Option<Value> {
    let matched = Matched::evaluate(filters, &event);
    if matched.none() {
        return Some(event);
    }
    let actions = || {
        filters
            .iter()
            .enumerate()
            .filter(|(i, _)| matched.get(*i))
            .flat_map(|(_, f)| f.actions.iter())
    };
    let sampled_out = actions().any(|action| match action {
        Action::Sample { percent, path } => !sample::keeps(&event, *percent, path.as_deref()),
        _ => false,
    });
    if sampled_out {
        return None;
    }
    if actions().any(|a| *a == Action::Drop) {
        return None;
    }
    for action in actions() {
        if let Action::DropProperties { fields } = action {
            actions::drop_properties(&mut event, fields);
        }
    }
    for action in actions() {
        if let Action::AllowProperties { fields } = action {
            actions::allow_properties(&mut event, fields);
        }
    }
    Some(event)
}

/// Which filters matched, without allocating for up to 64 filters.
enum Matched {
    Few(u64),
    Many(Vec<bool>),
}

impl Matched {
    fn evaluate(filters: &[DestinationFilter], event: &Value) -> Matched {
        let hit = |f: &DestinationFilter| f.enabled && f.matches(event);
        if filters.len() <= 64 {
            Matched::Few(
                filters
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| hit(f))
                    .fold(0, |bits, (i, _)| bits | (1 << i)),
            )
        } else {
            Matched::Many(filters.iter().map(hit).collect())
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Matched::Few(bits) => i < 64 && bits & (1 << i) != 0,
            Matched::Many(hits) => hits.get(i).copied().unwrap_or(false),
        }
    }

    fn none(&self) -> bool {
        match self {
            Matched::Few(bits) => *bits == 0,
            Matched::Many(hits) => !hits.contains(&true),
        }
    }
}

/// Segment's Public API shape, as read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterSpec {
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "if")]
    if_: String,
    actions: Vec<Action>,
    #[serde(default = "default_enabled")]
    enabled: bool,
}

fn default_enabled() -> bool {
    true
}

/// Segment's Public API shape, as written.
#[derive(Serialize)]
struct FilterView<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(rename = "if")]
    if_: &'a str,
    actions: &'a [Action],
    enabled: bool,
}

impl Serialize for DestinationFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FilterView {
            title: &self.title,
            description: self.description.as_deref(),
            if_: &self.if_,
            actions: &self.actions,
            enabled: self.enabled,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DestinationFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DestinationFilter, D::Error> {
        let spec = FilterSpec::deserialize(deserializer)?;
        let filter = DestinationFilter::new(spec.title, spec.if_, spec.actions, spec.enabled)
            .map_err(D::Error::custom)?;
        Ok(match spec.description {
            Some(description) => filter.with_description(description),
            None => filter,
        })
    }
}

#[cfg(test)]
mod tests;
