//! Starting a node for a test, and small HTTP helpers.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sluice_server::{App, Config, SecretString};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestNode {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub struct TestSource {
    pub id: String,
    pub write_key: String,
}

pub async fn spawn() -> TestNode {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_token: Some(SecretString::new(ADMIN_TOKEN)),
        ..Config::default()
    };
    adjust(&mut config);
    start(config, dir, None).await
}

/// Starts a node that calls `hook` each time it has given its caches back when idle.
pub async fn spawn_with_idle_hook(hook: fn()) -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    start(restart_config(&dir, |_| {}), dir, Some(hook)).await
}

/// Starts a new node on the data directory of a stopped one.
pub async fn restart(dir: tempfile::TempDir) -> TestNode {
    start(restart_config(&dir, |_| {}), dir, None).await
}

/// The configuration [`restart`] uses, adjusted (to build the app by hand).
pub fn restart_config(dir: &tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_token: Some(SecretString::new(ADMIN_TOKEN)),
        ..Config::default()
    };
    adjust(&mut config);
    config
}

/// Restarts on the data directory of a stopped node with an adjusted configuration.
pub async fn restart_with(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestNode {
    start(restart_config(&dir, adjust), dir, None).await
}

async fn start(config: Config, dir: tempfile::TempDir, idle_hook: Option<fn()>) -> TestNode {
    let mut app = App::build(config).await.expect("build app");
    if let Some(hook) = idle_hook {
        app = app.on_idle(hook);
    }
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async {
            let _ = stopped.await;
        })
        .await
        .expect("run");
    });
    TestNode {
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.dir
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn create_source(&self, name: &str) -> TestSource {
        let response = self
            .admin(reqwest::Method::POST, "/api/v1/sources")
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("create source");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        TestSource {
            id: body["id"].as_str().expect("id").to_owned(),
            write_key: body["write_key"].as_str().expect("write_key").to_owned(),
        }
    }

    /// POSTs a JSON body to a tracking path with Basic auth; returns status and JSON body.
    pub async fn track(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .basic_auth(key, Some(""))
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Every event of the source, oldest first, paging forward with `after`.
    pub async fn events_all(&self, source: &TestSource) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page: Value = self
                .admin(
                    reqwest::Method::GET,
                    &format!(
                        "/api/v1/sources/{}/events?after={after}&limit=1000",
                        source.id
                    ),
                )
                .send()
                .await
                .expect("events")
                .json()
                .await
                .expect("json");
            let events = page["events"].as_array().expect("events").clone();
            if events.is_empty() {
                return all;
            }
            after = page["cursor"].as_i64().expect("cursor");
            all.extend(events);
        }
    }

    pub async fn events(&self, source: &TestSource) -> Vec<Value> {
        let response = self
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/sources/{}/events?limit=1000", source.id),
            )
            .send()
            .await
            .expect("events");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["events"].as_array().expect("events array").clone()
    }
}

/// A valid track message with a given messageId.
pub fn track_message(message_id: &str) -> Value {
    serde_json::json!({
        "type": "track",
        "userId": "user-1",
        "event": "Order Completed",
        "messageId": message_id,
        "properties": {"revenue": 42.5}
    })
}
