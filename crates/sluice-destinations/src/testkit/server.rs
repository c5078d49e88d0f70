//! The HTTP server behind every fake, and what a test can script: queued answers, hanging
//! requests, a rate limit. Tool-specific checks live in the sibling modules. Deletion requests
//! (which the tool fake recognises) are recorded apart as well, with the ids the tool took.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use super::answer::{Answer, Rate};
use super::audiences::{AdState, Member, TokenCheck};
use super::{Tool, amplitude, google, meta, mixpanel, slack, tiktok, webhook};

/// Largest body a fake reads: above every tool's limit, so the fake answers "too large" itself.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Header names in lowercase, with their values, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What the fake has seen and been told.
#[derive(Default)]
struct Script {
    recorded: Vec<Recorded>,
    accepted: Vec<Value>,
    deletions: Vec<Recorded>,
    deleted: Vec<String>,
    received: u64,
    accepted_count: u64,
    answers: VecDeque<Answer>,
    hang: Option<(Duration, usize)>,
    rate: Option<Rate>,
    /// The ad platforms' audiences.
    ads: AdState,
}

struct Shared {
    tool: Option<Tool>,
    script: Mutex<Script>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake. Dropping it stops the server.
pub struct FakeTool {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeTool {
    /// Starts a fake of `tool` on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// When no local port can be bound, or outside a Tokio runtime.
    pub async fn start(tool: Tool) -> FakeTool {
        FakeTool::serve(Some(tool)).await
    }

    /// Starts a sink that answers `200 ok` to any request at once and only counts (requests,
    /// and events: the elements of a JSON array body, else one), for throughput benchmarks.
    ///
    /// # Panics
    /// As [`FakeTool::start`].
    pub async fn webhook_sink() -> FakeTool {
        FakeTool::serve(None).await
    }

    async fn serve(tool: Option<Tool>) -> FakeTool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("fake tool: cannot bind 127.0.0.1: {error}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("fake tool: no local address: {error}"));
        let shared = Arc::new(Shared {
            tool,
            script: Mutex::new(Script::default()),
        });
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // The server ends when the fake is dropped (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        FakeTool {
            address,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The tool this fakes (`None` for the sink).
    pub fn tool(&self) -> Option<Tool> {
        self.shared.tool
    }

    /// Settings of the matching destination type that deliver to this fake with the
    /// credentials it accepts (see [`credentials`](super::credentials)). Empty for the sink:
    /// use `{"url": sink.base_url()}` with the `webhook` type.
    pub fn settings(&self) -> Map<String, Value> {
        let base = self.base_url();
        match self.shared.tool {
            Some(Tool::Webhook) => webhook::settings(&base),
            Some(Tool::Mixpanel) => mixpanel::settings(&base),
            Some(Tool::Amplitude) => amplitude::settings(&base),
            Some(Tool::Slack) => slack::settings(&base),
            Some(Tool::MetaAudiences) => meta::settings(&base),
            Some(Tool::GoogleAudiences) => google::settings(&base),
            Some(Tool::TikTokAudiences) => tiktok::settings(&base),
            None => Map::new(),
        }
    }

    /// Every request that arrived, in order (the sink keeps none: see [`FakeTool::received`]).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().recorded.clone()
    }

    /// What the tool would have stored: the events (Mixpanel, Amplitude, webhook) or messages
    /// (Slack) of the requests it accepted, in order. Empty for the sink.
    pub fn accepted(&self) -> Vec<Value> {
        self.shared.lock().accepted.clone()
    }

    /// The members of an ad-platform audience (Meta, Google, TikTok) after the requests the
    /// fake accepted: each a map of the platform's identifier keys (`EMAIL`, `emailAddress`,
    /// `EMAIL_SHA256`...) to the values sent. Empty for other tools.
    pub fn members(&self, audience_id: &str) -> Vec<Member> {
        self.shared.lock().ads.members(audience_id)
    }

    /// The audiences created through an ad-platform fake's API, (id, name), in order.
    pub fn created_audiences(&self) -> Vec<(String, String)> {
        self.shared.lock().ads.created()
    }

    /// Every deletion request that arrived, in order, whatever it was answered (they are in
    /// [`FakeTool::requests`] too): Amplitude's `/api/2/deletions/users`, Mixpanel's
    /// `/api/app/data-deletions/v3.0/`, a webhook `delete` event. None for Slack.
    pub fn deletions(&self) -> Vec<Recorded> {
        self.shared.lock().deletions.clone()
    }

    /// The ids of the deletion requests the tool accepted, in order: what it would delete.
    pub fn deleted(&self) -> Vec<String> {
        self.shared.lock().deleted.clone()
    }

    /// How many requests arrived.
    pub fn received(&self) -> u64 {
        self.shared.lock().received
    }

    /// How many events were accepted (the sink counts every event it received).
    pub fn accepted_count(&self) -> u64 {
        self.shared.lock().accepted_count
    }

    /// Queues an answer: the next request that is not rate limited gets it instead of the
    /// tool's own, whatever it carries. Answers are used in the order pushed.
    pub fn push_answer(&self, status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) {
        let headers = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        self.shared
            .lock()
            .answers
            .push_back(Answer::new(status, headers, body.into()));
    }

    /// The next `requests` requests wait `duration` before they are answered (to trip the
    /// sender's timeout). They are recorded when they arrive.
    pub fn hang(&self, duration: Duration, requests: usize) {
        self.shared.lock().hang = Some((duration, requests));
    }

    /// The ad-platform fakes (Meta, Google, TikTok) take the access tokens `check` accepts
    /// from now on instead of their fixed one, and answer any other the way the platform
    /// answers a bad or revoked token. For example the live tokens of a
    /// `sluice_oauth::testkit::FakeProvider`, so that an expired or revoked grant stops working
    /// here as it would at the platform.
    pub fn set_token_check(&self, check: TokenCheck) {
        self.shared.lock().ads.token_check = Some(check);
    }

    /// Answers requests beyond `per_second` in a one-second window like the tool does when
    /// rate limited (429 and its body; `Retry-After` where the tool sends one). `0` turns the
    /// limit off.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.shared.lock().rate = (per_second > 0).then(|| Rate::new(per_second, Instant::now()));
    }
}

impl Drop for FakeTool {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(tool) = shared.tool else {
        let events = count_events(&body);
        let mut script = shared.lock();
        script.received += 1;
        script.accepted_count += events;
        return Answer::text(200, "ok").into_response();
    };
    let request = Recorded {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: body.to_vec(),
    };
    let deletion = match tool {
        Tool::Webhook => webhook::is_deletion(&request),
        Tool::Mixpanel => mixpanel::is_deletion(&request),
        Tool::Amplitude => amplitude::is_deletion(&request),
        Tool::Slack | Tool::MetaAudiences | Tool::GoogleAudiences | Tool::TikTokAudiences => false,
    };
    let wait = {
        let mut script = shared.lock();
        script.received += 1;
        script.recorded.push(request.clone());
        if deletion {
            script.deletions.push(request.clone());
        }
        match script.hang.as_mut() {
            Some((duration, left)) if *left > 0 => {
                *left -= 1;
                Some(*duration)
            }
            _ => None,
        }
    };
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
    let mut script = shared.lock();
    let throttled = script
        .rate
        .as_mut()
        .and_then(|rate| rate.over(Instant::now()));
    let answer = if let Some(retry_after) = throttled {
        match tool {
            Tool::Webhook => webhook::throttled(retry_after),
            Tool::Mixpanel => mixpanel::throttled(&request),
            Tool::Amplitude => amplitude::throttled(&request),
            Tool::Slack => slack::throttled(retry_after),
            Tool::MetaAudiences => meta::throttled(&request, retry_after),
            Tool::GoogleAudiences => google::throttled(),
            Tool::TikTokAudiences => tiktok::throttled(&request),
        }
    } else if let Some(answer) = script.answers.pop_front() {
        answer
    } else if deletion {
        let mut deleted = Vec::new();
        let answer = match tool {
            Tool::Webhook => webhook::respond_deletion(&request, &mut deleted),
            Tool::Mixpanel => mixpanel::respond_deletion(&request, &mut deleted),
            Tool::Amplitude => {
                amplitude::respond_deletion(&request, &script.accepted, &mut deleted)
            }
            Tool::Slack | Tool::MetaAudiences | Tool::GoogleAudiences | Tool::TikTokAudiences => {
                Answer::text(404, "no_service")
            }
        };
        script.deleted.extend(deleted);
        answer
    } else {
        let mut accepted = Vec::new();
        let answer = match tool {
            Tool::Webhook => webhook::respond(&request, &mut accepted),
            Tool::Mixpanel => mixpanel::respond(&request, &mut accepted),
            Tool::Amplitude => amplitude::respond(&request, &mut accepted),
            Tool::Slack => slack::respond(&request, &mut accepted),
            Tool::MetaAudiences => meta::respond(&request, &mut script.ads, &mut accepted),
            Tool::GoogleAudiences => google::respond(&request, &mut script.ads, &mut accepted),
            Tool::TikTokAudiences => tiktok::respond(&request, &mut script.ads, &mut accepted),
        };
        script.accepted_count += u64::try_from(accepted.len()).unwrap_or(u64::MAX);
        script.accepted.extend(accepted);
        answer
    };
    drop(script);
    answer.into_response()
}

/// Elements of a JSON array body, else one.
fn count_events(body: &[u8]) -> u64 {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'[') {
        return 1;
    }
    serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body)
        .map(|items| u64::try_from(items.len()).unwrap_or(u64::MAX))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_counts_array_elements() {
        assert_eq!(count_events(b" [1, {\"a\": [2, 3]}, \"x\"]"), 3);
        assert_eq!(count_events(b"{\"a\": 1}"), 1);
        assert_eq!(count_events(b"[broken"), 1);
    }
}
