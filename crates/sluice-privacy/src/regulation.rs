//! Regulations: requests to suppress or delete a person, in Segment's shapes.
//!
//! A regulation names a type ([`RegulationType`]: what to do), a subject type and up to
//! [`MAX_SUBJECTS`] subject ids. Segment takes `USER_ID` and `ANONYMOUS_ID` subjects; Sluice
//! also takes `EMAIL`, `PHONE` and `IDENTIFIER` (`type:value`, any identifier type), which the
//! identity graph resolves to every identifier of the person.
//!
//! Suppression stores no identifier: it stores a [`SubjectDigest`], a keyed hash of the
//! workspace and the identifier's value, so a suppressed person's identifiers are not in the
//! data directory after their deletion.

use crate::keyed::hmac_sha256;
use serde_json::Value;
use sluice_identity::Identifier;
use sluice_identity::identifier::{ANONYMOUS_ID, EMAIL, PHONE, USER_ID};

/// Most subject ids in one regulation (Segment's limit).
pub const MAX_SUBJECTS: usize = 5_000;
/// Longest subject id accepted.
pub const MAX_SUBJECT_BYTES: usize = 1_000;

/// What a regulation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegulationType {
    /// Block the person's new events; keep what is held.
    SuppressOnly,
    /// Stop a suppression.
    Unsuppress,
    /// Suppress, delete from Sluice's stores, and forward the deletion to destinations.
    SuppressWithDelete,
    /// Delete from Sluice's stores and forward the deletion to destinations.
    DeleteOnly,
    /// Delete from Sluice's stores only.
    DeleteInternal,
    /// Suppress and delete from Sluice's stores only.
    SuppressWithDeleteInternal,
}

impl RegulationType {
    pub const ALL: [RegulationType; 6] = [
        RegulationType::SuppressOnly,
        RegulationType::Unsuppress,
        RegulationType::SuppressWithDelete,
        RegulationType::DeleteOnly,
        RegulationType::DeleteInternal,
        RegulationType::SuppressWithDeleteInternal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RegulationType::SuppressOnly => "SUPPRESS_ONLY",
            RegulationType::Unsuppress => "UNSUPPRESS",
            RegulationType::SuppressWithDelete => "SUPPRESS_WITH_DELETE",
            RegulationType::DeleteOnly => "DELETE_ONLY",
            RegulationType::DeleteInternal => "DELETE_INTERNAL",
            RegulationType::SuppressWithDeleteInternal => "SUPPRESS_WITH_DELETE_INTERNAL",
        }
    }

    pub fn parse(text: &str) -> Option<RegulationType> {
        RegulationType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// The person's new events are refused from now on.
    pub fn suppresses(self) -> bool {
        matches!(
            self,
            RegulationType::SuppressOnly
                | RegulationType::SuppressWithDelete
                | RegulationType::SuppressWithDeleteInternal
        )
    }

    /// What Sluice holds about the person is erased.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            RegulationType::SuppressWithDelete
                | RegulationType::DeleteOnly
                | RegulationType::DeleteInternal
                | RegulationType::SuppressWithDeleteInternal
        )
    }

    /// The deletion is forwarded to destinations that can take it.
    pub fn forwards(self) -> bool {
        matches!(
            self,
            RegulationType::SuppressWithDelete | RegulationType::DeleteOnly
        )
    }
}

/// How the subject ids of a regulation are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubjectType {
    UserId,
    AnonymousId,
    Email,
    Phone,
    /// `type:value`, any identifier type of the workspace.
    Identifier,
}

impl SubjectType {
    pub const ALL: [SubjectType; 5] = [
        SubjectType::UserId,
        SubjectType::AnonymousId,
        SubjectType::Email,
        SubjectType::Phone,
        SubjectType::Identifier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectType::UserId => "USER_ID",
            SubjectType::AnonymousId => "ANONYMOUS_ID",
            SubjectType::Email => "EMAIL",
            SubjectType::Phone => "PHONE",
            SubjectType::Identifier => "IDENTIFIER",
        }
    }

    pub fn parse(text: &str) -> Option<SubjectType> {
        SubjectType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// The identifier a subject id names (emails lowercased and trimmed, as the identity graph
    /// keeps them), or `None` when it is not a valid id of this type.
    pub fn identifier(self, id: &str) -> Option<Identifier> {
        if id.is_empty() || id.len() > MAX_SUBJECT_BYTES {
            return None;
        }
        let identifier = match self {
            SubjectType::UserId => Identifier::new(USER_ID, id),
            SubjectType::AnonymousId => Identifier::new(ANONYMOUS_ID, id),
            SubjectType::Email => Identifier::new(EMAIL, id.trim().to_lowercase()),
            SubjectType::Phone => Identifier::new(PHONE, id.trim()),
            SubjectType::Identifier => {
                let parsed = Identifier::parse_lookup(id)?;
                if !sluice_identity::identifier::valid_kind(&parsed.kind) {
                    return None;
                }
                parsed
            }
        };
        (!identifier.value.is_empty()).then_some(identifier)
    }
}

/// Where a regulation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Accepted, waiting for the worker.
    Initialized,
    Running,
    /// Done everywhere.
    Finished,
    /// Done in Sluice; some destination could not be told.
    PartialSuccess,
    /// Sluice's own stores could not be cleaned.
    Failed,
    /// A destination has no deletion API (in a destination's status only).
    NotSupported,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Initialized,
        Status::Running,
        Status::Finished,
        Status::PartialSuccess,
        Status::Failed,
        Status::NotSupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initialized => "INITIALIZED",
            Status::Running => "RUNNING",
            Status::Finished => "FINISHED",
            Status::PartialSuccess => "PARTIAL_SUCCESS",
            Status::Failed => "FAILED",
            Status::NotSupported => "NOT_SUPPORTED",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Nothing more will happen to a regulation in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Finished | Status::PartialSuccess | Status::Failed
        )
    }
}

/// A checked regulation request.
#[derive(Clone, PartialEq, Eq)]
pub struct RegulationRequest {
    pub regulation_type: RegulationType,
    pub subject_type: SubjectType,
    /// The subjects, in the order given, without repeats.
    pub subjects: Vec<Identifier>,
}

// Subjects are personal data: `Debug` shows how many, never which.
impl std::fmt::Debug for RegulationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegulationRequest")
            .field("regulation_type", &self.regulation_type)
            .field("subject_type", &self.subject_type)
            .field("subjects", &self.subjects.len())
            .finish()
    }
}

/// A request that is not a valid regulation; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RegulationError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RegulationError {
    RegulationError {
        field: field.into(),
        message: message.into(),
    }
}

impl RegulationRequest {
    /// Reads `{regulationType, subjectType, subjectIds}` (Segment's Public API body).
    pub fn from_json(body: &Value) -> Result<RegulationRequest, RegulationError> {
        let Some(object) = body.as_object() else {
            return Err(invalid("body", "expected a JSON object"));
        };
        let regulation_type = match object.get("regulationType").and_then(Value::as_str) {
            Some(text) => RegulationType::parse(text).ok_or_else(|| {
                let all: Vec<&str> = RegulationType::ALL.iter().map(|t| t.as_str()).collect();
                invalid(
                    "regulationType",
                    format!("expected one of {}", all.join(", ")),
                )
            })?,
            None => return Err(invalid("regulationType", "required string")),
        };
        let (subject_type, subjects) = subjects_from_json(body, &["regulationType"])?;
        Ok(RegulationRequest {
            regulation_type,
            subject_type,
            subjects,
        })
    }

    /// Checks the subject ids against the subject type.
    pub fn new(
        regulation_type: RegulationType,
        subject_type: SubjectType,
        ids: &[&str],
    ) -> Result<RegulationRequest, RegulationError> {
        Ok(RegulationRequest {
            regulation_type,
            subject_type,
            subjects: subjects(subject_type, ids)?,
        })
    }
}

/// Reads `{subjectType, subjectIds}` from a body that may also hold the `other` fields (any
/// other field is refused): the subjects of a regulation or an opt-out.
pub fn subjects_from_json(
    body: &Value,
    other: &[&str],
) -> Result<(SubjectType, Vec<Identifier>), RegulationError> {
    let Some(object) = body.as_object() else {
        return Err(invalid("body", "expected a JSON object"));
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "subjectType" | "subjectIds") && !other.contains(&key.as_str()) {
            return Err(invalid(key.clone(), "unknown field"));
        }
    }
    let subject_type = match object.get("subjectType").and_then(Value::as_str) {
        Some(text) => SubjectType::parse(text).ok_or_else(|| {
            let all: Vec<&str> = SubjectType::ALL.iter().map(|t| t.as_str()).collect();
            invalid("subjectType", format!("expected one of {}", all.join(", ")))
        })?,
        None => return Err(invalid("subjectType", "required string")),
    };
    let Some(ids) = object.get("subjectIds").and_then(Value::as_array) else {
        return Err(invalid("subjectIds", "required array of strings"));
    };
    let mut texts = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let Some(text) = id.as_str() else {
            return Err(invalid(format!("subjectIds[{index}]"), "expected a string"));
        };
        texts.push(text);
    }
    Ok((subject_type, subjects(subject_type, &texts)?))
}

/// The identifiers the ids name, in order, without repeats.
fn subjects(subject_type: SubjectType, ids: &[&str]) -> Result<Vec<Identifier>, RegulationError> {
    if ids.is_empty() {
        return Err(invalid("subjectIds", "at least one subject id is required"));
    }
    if ids.len() > MAX_SUBJECTS {
        return Err(invalid(
            "subjectIds",
            format!("at most {MAX_SUBJECTS} subject ids per request"),
        ));
    }
    let mut subjects: Vec<Identifier> = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let Some(identifier) = subject_type.identifier(id) else {
            let expected = match subject_type {
                SubjectType::Identifier => "expected type:value with a valid type",
                _ => "expected a non-empty id of at most 1000 bytes",
            };
            return Err(invalid(format!("subjectIds[{index}]"), expected));
        };
        if !subjects.contains(&identifier) {
            subjects.push(identifier);
        }
    }
    Ok(subjects)
}

/// A keyed hash of one identifier value in one workspace: what a suppression keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectDigest(pub [u8; 16]);

/// The key of a workspace's subject digests (random, kept in the state store).
pub const DIGEST_KEY_BYTES: usize = 32;

/// HMAC-SHA-256 of the workspace and the value, cut to 128 bits. The identifier's type is left
/// out on purpose: a value suppressed as an email also stops a `userId` that is that email.
pub fn digest(key: &[u8], workspace: &str, value: &str) -> SubjectDigest {
    let full = hmac_sha256(key, &[workspace.as_bytes(), &[0], value.as_bytes()]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    SubjectDigest(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_type_round_trips_and_says_what_it_does() {
        for kind in RegulationType::ALL {
            assert_eq!(RegulationType::parse(kind.as_str()), Some(kind));
        }
        use RegulationType::*;
        let table = [
            (SuppressOnly, true, false, false),
            (Unsuppress, false, false, false),
            (SuppressWithDelete, true, true, true),
            (DeleteOnly, false, true, true),
            (DeleteInternal, false, true, false),
            (SuppressWithDeleteInternal, true, true, false),
        ];
        for (kind, suppresses, deletes, forwards) in table {
            assert_eq!(kind.suppresses(), suppresses, "{kind:?}");
            assert_eq!(kind.deletes(), deletes, "{kind:?}");
            assert_eq!(kind.forwards(), forwards, "{kind:?}");
        }
        assert_eq!(RegulationType::parse("suppress_only"), None);
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn a_request_reads_segments_shape() {
        let request = RegulationRequest::from_json(&json!({
            "regulationType": "SUPPRESS_WITH_DELETE",
            "subjectType": "EMAIL",
            "subjectIds": [" Jane@Example.com", "jane@example.com", "bob@example.com"]
        }))
        .unwrap();
        assert_eq!(request.regulation_type, RegulationType::SuppressWithDelete);
        assert_eq!(
            request.subjects,
            vec![
                Identifier::new("email", "jane@example.com"),
                Identifier::new("email", "bob@example.com")
            ]
        );
        let by_identifier = RegulationRequest::from_json(&json!({
            "regulationType": "DELETE_ONLY",
            "subjectType": "IDENTIFIER",
            "subjectIds": ["ios.idfa:ABC-1", "user_id:u1"]
        }))
        .unwrap();
        assert_eq!(
            by_identifier.subjects[0],
            Identifier::new("ios.idfa", "ABC-1")
        );
        assert!(!format!("{by_identifier:?}").contains("u1"));
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            (json!([]), "body"),
            (
                json!({"subjectType": "USER_ID", "subjectIds": ["a"]}),
                "regulationType",
            ),
            (
                json!({"regulationType": "FORGET", "subjectType": "USER_ID", "subjectIds": ["a"]}),
                "regulationType",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "OBJECT_ID", "subjectIds": ["a"]}),
                "subjectType",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID"}),
                "subjectIds",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": []}),
                "subjectIds",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["a", 7]}),
                "subjectIds[1]",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": [""]}),
                "subjectIds[0]",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "IDENTIFIER", "subjectIds": ["nocolon"]}),
                "subjectIds[0]",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "IDENTIFIER", "subjectIds": ["Bad Type:x"]}),
                "subjectIds[0]",
            ),
            (
                json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["a"], "extra": 1}),
                "extra",
            ),
        ];
        for (body, field) in cases {
            let error = RegulationRequest::from_json(&body).unwrap_err();
            assert_eq!(error.field, field, "{body}");
        }
        let too_many: Vec<String> = (0..=MAX_SUBJECTS).map(|i| format!("u{i}")).collect();
        let error = RegulationRequest::from_json(&json!({
            "regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": too_many
        }))
        .unwrap_err();
        assert_eq!(error.field, "subjectIds");
    }

    #[test]
    fn digests_depend_on_key_workspace_and_value() {
        let key = [7u8; DIGEST_KEY_BYTES];
        let base = digest(&key, "ws1", "jane@example.com");
        assert_eq!(base, digest(&key, "ws1", "jane@example.com"));
        assert_ne!(base, digest(&key, "ws2", "jane@example.com"));
        assert_ne!(base, digest(&key, "ws1", "jane@example.org"));
        assert_ne!(
            base,
            digest(&[8u8; DIGEST_KEY_BYTES], "ws1", "jane@example.com")
        );
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(digest(&key, "ab", "c"), digest(&key, "a", "bc"));
    }
}
