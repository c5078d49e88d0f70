//! Building requests shared by the adapters: JSON POSTs, Basic auth, packing encoded records
//! into batches that respect a tool's count and byte limits, and per-event verdicts.

use base64::Engine;

use serde_json::Value;

use crate::contract::{HttpRequest, Method, Plan, Planned, Verdict};

/// A JSON `POST` to `url` with these extra headers.
pub(crate) fn json_post(url: String, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpRequest {
    let mut all = Vec::with_capacity(headers.len() + 1);
    all.push(("Content-Type".to_string(), "application/json".to_string()));
    all.extend(headers);
    HttpRequest {
        method: Method::Post,
        url,
        headers: all,
        body,
    }
}

/// An `Authorization` header value for HTTP Basic auth (RFC 7617).
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// One tool record, already encoded, and the index of the event it came from.
pub(crate) struct Encoded {
    pub(crate) event: usize,
    pub(crate) bytes: Vec<u8>,
}

/// A tool's limits for one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Most records in one request.
    pub(crate) max_records: usize,
    /// Most bytes in one request body.
    pub(crate) max_bytes: usize,
    /// Bytes of the body around the records (envelope, brackets).
    pub(crate) envelope_bytes: usize,
    /// Most bytes of one record (the tool's own per-event limit, else `max_bytes`).
    pub(crate) max_record_bytes: usize,
}

impl Limits {
    /// Whether one record can be sent at all.
    pub(crate) fn fits_alone(&self, record: &[u8]) -> bool {
        record.len() <= self.max_record_bytes
            && self.envelope_bytes + record.len() <= self.max_bytes
    }
}

/// What one event becomes for a tool that batches records.
pub(crate) enum Mapped {
    /// The tool's record for the event.
    Record(Value),
    /// The tool has no use for the event (see [`Plan::unsupported`]).
    Unsupported(String),
    /// The event can never be delivered (see [`Plan::invalid`]).
    Invalid(String),
}

/// The plan of a batching tool: maps each event, sets aside what is unsupported, invalid or
/// too large, packs the rest in order within `limits`, and makes one request per batch.
pub(crate) fn plan_batches(
    events: &[&Value],
    limits: Limits,
    tool: &str,
    mut map: impl FnMut(&Value) -> Mapped,
    mut request: impl FnMut(&[Encoded]) -> HttpRequest,
) -> Plan {
    let mut plan = Plan::default();
    let mut records = Vec::with_capacity(events.len());
    for (event, value) in events.iter().enumerate() {
        match map(value) {
            Mapped::Record(record) => {
                let bytes = to_bytes(&record);
                if limits.fits_alone(&bytes) {
                    records.push(Encoded { event, bytes });
                } else {
                    let reason = format!(
                        "event is {} bytes once mapped, over {tool}'s limit of {} bytes",
                        bytes.len(),
                        limits
                            .max_record_bytes
                            .min(limits.max_bytes - limits.envelope_bytes)
                    );
                    plan.invalid.push((event, reason));
                }
            }
            Mapped::Unsupported(reason) => plan.unsupported.push((event, reason)),
            Mapped::Invalid(reason) => plan.invalid.push((event, reason)),
        }
    }
    for batch in pack(records, limits) {
        plan.requests.push(Planned {
            request: request(&batch),
            events: batch.iter().map(|record| record.event).collect(),
        });
    }
    plan
}

/// Packs records, in order, into batches within `limits`: a batch closes when the next record
/// would pass the count or the byte limit (records are joined with one comma). Every record
/// must fit alone.
pub(crate) fn pack(records: Vec<Encoded>, limits: Limits) -> Vec<Vec<Encoded>> {
    let mut batches: Vec<Vec<Encoded>> = Vec::new();
    let mut current: Vec<Encoded> = Vec::new();
    let mut bytes = limits.envelope_bytes;
    for record in records {
        let separator = usize::from(!current.is_empty());
        let full = current.len() >= limits.max_records
            || bytes + separator + record.bytes.len() > limits.max_bytes;
        if full && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
            bytes = limits.envelope_bytes;
        }
        bytes += usize::from(!current.is_empty()) + record.bytes.len();
        current.push(record);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// `prefix`, the records joined with commas, `suffix`: a JSON array or an envelope around one.
pub(crate) fn join(prefix: &[u8], records: &[Encoded], suffix: &[u8]) -> Vec<u8> {
    let size =
        prefix.len() + suffix.len() + records.iter().map(|r| r.bytes.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(prefix);
    for (position, record) in records.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&record.bytes);
    }
    body.extend_from_slice(suffix);
    body
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

/// Serializes a JSON value (cannot fail for `Value`, which has string keys only).
pub(crate) fn to_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// One verdict per event of a request: the events named in `rejected` (index, reason) are
/// rejected, every other one gets `rest`. Indices out of range are ignored.
pub(crate) fn partial(events: usize, rejected: &[(usize, String)], rest: &Verdict) -> Verdict {
    let mut verdicts = vec![rest.clone(); events];
    for (index, reason) in rejected {
        if let Some(slot) = verdicts.get_mut(*index) {
            *slot = Verdict::Reject {
                reason: reason.clone(),
            };
        }
    }
    Verdict::Partial(verdicts)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn records(sizes: &[usize]) -> Vec<Encoded> {
        sizes
            .iter()
            .enumerate()
            .map(|(event, size)| Encoded {
                event,
                bytes: vec![b'x'; *size],
            })
            .collect()
    }

    #[test]
    fn basic_auth_matches_rfc_7617() {
        // RFC 7617 §2: "Aladdin" / "open sesame".
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("secret", ""), "Basic c2VjcmV0Og==");
    }

    #[test]
    fn packs_by_count_and_by_bytes() {
        let limits = Limits {
            max_records: 2,
            max_bytes: 100,
            envelope_bytes: 2,
            max_record_bytes: 100,
        };
        let sizes: Vec<Vec<usize>> = pack(records(&[10, 10, 10, 10, 10]), limits)
            .iter()
            .map(|batch| batch.iter().map(|r| r.event).collect())
            .collect();
        assert_eq!(sizes, vec![vec![0, 1], vec![2, 3], vec![4]]);

        let limits = Limits {
            max_records: 10,
            max_bytes: 23,
            envelope_bytes: 2,
            max_record_bytes: 23,
        };
        // 2 + 10 + 1 + 10 = 23 fits; a third does not.
        let batches = pack(records(&[10, 10, 10]), limits);
        assert_eq!(batches.len(), 2);
        assert_eq!(join(b"[", &batches[0], b"]").len(), 23);
    }

    #[test]
    fn partial_rejects_only_the_named_events() {
        let verdict = partial(
            3,
            &[(1, "bad".into()), (9, "ignored".into())],
            &Verdict::Delivered,
        );
        assert_eq!(
            verdict,
            Verdict::Partial(vec![
                Verdict::Delivered,
                Verdict::Reject {
                    reason: "bad".into()
                },
                Verdict::Delivered,
            ])
        );
    }

    proptest! {
        #[test]
        fn packing_keeps_order_and_limits(
            sizes in proptest::collection::vec(1usize..50, 0..60),
            max_records in 1usize..8,
            max_bytes in 60usize..200,
        ) {
            let limits = Limits { max_records, max_bytes, envelope_bytes: 2, max_record_bytes: max_bytes };
            let batches = pack(records(&sizes), limits);
            let order: Vec<usize> = batches.iter().flatten().map(|r| r.event).collect();
            prop_assert_eq!(order, (0..sizes.len()).collect::<Vec<_>>());
            for batch in &batches {
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.len() <= max_records);
                prop_assert!(join(b"[", batch, b"]").len() <= max_bytes);
            }
        }
    }
}
