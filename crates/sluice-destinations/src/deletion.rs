//! Pieces shared by the adapters that forward deletions: which ids to send, and how a deletion
//! API's answer reads. The requests themselves are each tool's own (see its `deletion.rs`).

use std::collections::HashSet;
use std::time::Duration;

use crate::contract::{HttpResponse, Verdict, excerpt, retry_after};

/// The ids of a deletion as a tool receives them: in the order given, each once, empty ones
/// left out.
pub(crate) fn unique_ids(user_ids: &[String]) -> Vec<&str> {
    let mut seen = HashSet::with_capacity(user_ids.len());
    user_ids
        .iter()
        .map(String::as_str)
        .filter(|id| !id.is_empty() && seen.insert(*id))
        .collect()
}

/// Reads the answer of a tool's deletion API: 2xx accepted; 408, 429 and 5xx retried, no
/// sooner than `Retry-After` or, without one, `throttle_wait` for a 429 (these APIs allow
/// about one request a second); anything else rejected, naming the tool.
pub(crate) fn classify(tool: &str, response: &HttpResponse, throttle_wait: Duration) -> Verdict {
    let status = response.status;
    if (200..300).contains(&status) {
        return Verdict::Delivered;
    }
    let reason = format!(
        "{tool}: deletion {} (http {status}): {}",
        match status {
            401 | 403 => "credentials refused",
            429 => "throttled",
            408 | 500.. => "failed",
            _ => "refused",
        },
        excerpt(&response.body)
    );
    match status {
        429 => Verdict::Retry {
            after: Some(retry_after(response).unwrap_or(throttle_wait)),
            reason,
        },
        408 | 500.. => Verdict::Retry {
            after: retry_after(response),
            reason,
        },
        _ => Verdict::Reject { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::response;

    #[test]
    fn ids_keep_their_order_once_each_without_empty_ones() {
        let ids: Vec<String> = ["b", "", "a", "b", "c", "a"]
            .iter()
            .map(|id| id.to_string())
            .collect();
        assert_eq!(unique_ids(&ids), ["b", "a", "c"]);
        assert!(unique_ids(&[]).is_empty());
    }

    #[test]
    fn answers_read_by_status() {
        let second = Duration::from_secs(1);
        assert_eq!(
            classify("tool", &response(201, &[], "{}"), second),
            Verdict::Delivered
        );
        assert_eq!(
            classify("tool", &response(429, &[], "slow down"), second),
            Verdict::Retry {
                after: Some(second),
                reason: "tool: deletion throttled (http 429): slow down".into()
            }
        );
        assert!(matches!(
            classify("tool", &response(429, &[("retry-after", "7")], ""), second),
            Verdict::Retry { after: Some(after), .. } if after == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify("tool", &response(503, &[], ""), second),
            Verdict::Retry { after: None, .. }
        ));
        assert_eq!(
            classify("tool", &response(401, &[], "no"), second),
            Verdict::Reject {
                reason: "tool: deletion credentials refused (http 401): no".into()
            }
        );
        assert!(matches!(
            classify("tool", &response(400, &[], ""), second),
            Verdict::Reject { reason } if reason.contains("deletion refused")
        ));
    }
}
