//! `spawn_app()` and the requests every test makes, against real servers.

use std::time::{Duration, Instant};

use anteroom::adapters::{amqp::AmqpLine, redis::RedisStore};
use anteroom::app::App;
use anteroom::config::{Config, Secret};
use anteroom::domain::EventId;
use anteroom::ports::ManualClock;
use anteroom::tasks::Tasks;
use anteroom::worker::Workers;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-for-the-suite";
pub const SECRET: &str = "test-secret";

/// A signer like a deployment's on `secret` and `namespace`, whose public URL
/// is the default one of the apps the tests spawn (`http://` + their address setting).
pub fn signer(secret: &[u8], namespace: &str) -> anteroom::domain::Signer {
    let passes = anteroom::domain::Passes::new(
        "http://127.0.0.1:0",
        anteroom::domain::SigningKey::derive(secret, namespace),
    );
    anteroom::domain::Signer::new(secret, namespace, std::sync::Arc::new(passes))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn redis_url() -> String {
    env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

pub fn amqp_url() -> String {
    env_or("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// One fresh database per test run; each test gets its own schema in it.
pub async fn database_url() -> String {
    static DATABASE: OnceCell<String> = OnceCell::const_new();
    DATABASE
        .get_or_init(|| async {
            let server = env_or(
                "TEST_POSTGRES_URL",
                "postgres://postgres:postgres@127.0.0.1:5432/postgres",
            );
            let name = format!(
                "anteroom_test_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
                .await
                .expect("postgres is reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("a test database can be created");
            let base = server
                .rsplit_once('/')
                .map_or(server.as_str(), |(base, _)| base)
                .to_owned();
            format!("{base}/{name}")
        })
        .await
        .clone()
}

/// Whether this run is the embedded pass (`ANTEROOM_TEST_BACKEND=embedded`).
pub fn embedded() -> bool {
    std::env::var("ANTEROOM_TEST_BACKEND").is_ok_and(|b| b == "embedded")
}

/// The SQLite file of a namespace in the embedded pass: one per test.
pub fn sqlite_path(namespace: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("anteroom-tests");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{namespace}.db"))
}

pub fn fresh_namespace() -> String {
    format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

pub struct TestApp {
    pub address: String,
    pub namespace: String,
    pub client: reqwest::Client,
    /// The workers' single steps, to drive them instead of waiting for them.
    pub workers: Workers,
    /// The app's tasks: none is left once `stop` has returned.
    pub tasks: Tasks,
    /// The app's clock: it runs with the system's until a test pauses or advances it.
    pub clock: ManualClock,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<()>,
    events: std::sync::Mutex<Vec<EventId>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&fresh_namespace(), |_| {}).await
}

/// Another process of the same deployment when `namespace` is shared.
pub async fn spawn_app_in(namespace: &str) -> TestApp {
    spawn_app_with(namespace, |_| {}).await
}

pub async fn spawn_app_with(namespace: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    anteroom::telemetry::init_logs();
    let (database_url, redis_url, amqp_url) = if embedded() {
        (
            format!("sqlite://{}", sqlite_path(namespace).display()),
            None,
            None,
        )
    } else {
        (database_url().await, Some(redis_url()), Some(amqp_url()))
    };
    let mut config = Config {
        addr: "127.0.0.1:0".parse().expect("a valid address"),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        secret: Some(Secret::new(SECRET)),
        database_url,
        redis_url,
        amqp_url,
        client_rate: 0,
        trust_forwarded: false,
        namespace: namespace.to_owned(),
        demo: false,
        public_url: None,
        signing_key: None,
    };
    configure(&mut config);
    let clock = ManualClock::new();
    let app = App::build(config, clock.clock())
        .await
        .expect("the app starts");
    let address = format!("http://{}", app.local_addr().expect("a bound address"));
    let (workers, tasks) = (app.workers(), app.tasks());
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let served = tokio::spawn(async move {
        app.run_until(async move { shutdown.cancelled().await })
            .await
            .expect("the app serves");
    });
    TestApp {
        address,
        namespace: namespace.to_owned(),
        client: reqwest::Client::new(),
        workers,
        tasks,
        clock,
        stop,
        served,
        events: Default::default(),
    }
}

/// An event body with sensible defaults; `overrides` replaces top-level fields.
pub fn event_body(id: &str, overrides: Value) -> Value {
    let mut body = json!({
        "id": id,
        "name": format!("Event {id}"),
        "venue": "Arena",
        "starts_at": "2030-06-01T19:00:00Z",
        "hold_seconds": 300,
        "max_seats_per_user": 4,
        "admission": { "per_second": 50, "max_active": 500, "pass_seconds": 600 },
        "sections": [{ "id": "A", "name": "Floor", "price_cents": 9900, "rows": 10, "seats_per_row": 20 }]
    });
    if let (Some(body), Some(overrides)) = (body.as_object_mut(), overrides.as_object()) {
        for (k, v) in overrides {
            body.insert(k.clone(), v.clone());
        }
    }
    body
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {}", self.body))
    }

    pub fn u64(&self, field: &str) -> u64 {
        self.body[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no number {field:?} in {}", self.body))
    }

    pub fn error(&self) -> &str {
        self.str("error")
    }
}

/// One request to the service at `base`; the body is parsed as JSON when it is JSON.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Reply {
    try_send(client, base, method, path, body, bearer)
        .await
        .expect("the request is answered")
}

/// One request, or the error of a service that did not answer (a test that kills it).
pub async fn try_send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Result<Reply, reqwest::Error> {
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    let res = req.send().await?;
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Reply {
        status,
        headers,
        body,
    })
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Reply {
        send(&self.client, &self.address, method, path, body, bearer).await
    }

    pub async fn create_event(&self, body: Value) -> Reply {
        let reply = self
            .request(
                Method::POST,
                "/api/admin/events",
                Some(body.clone()),
                Some(ADMIN_TOKEN),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            let id = EventId::parse(reply.str("id")).expect("a valid id");
            self.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(id);
        }
        reply
    }

    /// Creates an event from `event_body` and asserts it was created.
    pub async fn event(&self, id: &str, overrides: Value) -> Reply {
        let reply = self.create_event(event_body(id, overrides)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply
    }

    pub async fn patch_event(&self, id: &str, body: Value) -> Reply {
        self.request(
            Method::PATCH,
            &format!("/api/admin/events/{id}"),
            Some(body),
            Some(ADMIN_TOKEN),
        )
        .await
    }

    pub async fn stats(&self, id: &str) -> Reply {
        let reply = self
            .request(
                Method::GET,
                &format!("/api/admin/events/{id}/stats"),
                None,
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply
    }

    pub async fn join(&self, event: &str, visitor: Option<&str>) -> Reply {
        let body = visitor.map(|v| json!({ "visitor": v }));
        self.request(
            Method::POST,
            &format!("/api/events/{event}/queue"),
            body,
            None,
        )
        .await
    }

    /// Joins and asserts a new place was created; returns the token.
    pub async fn joined(&self, event: &str) -> String {
        let reply = self.join(event, None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.str("token").to_owned()
    }

    pub async fn poll(&self, token: &str) -> Reply {
        self.request(Method::GET, &format!("/api/queue/{token}"), None, None)
            .await
    }

    pub async fn leave(&self, token: &str) -> Reply {
        self.request(Method::DELETE, &format!("/api/queue/{token}"), None, None)
            .await
    }

    /// Polls `token` until its state is `state`, or panics after `within`.
    pub async fn poll_until(&self, token: &str, state: &str, within: Duration) -> Reply {
        let deadline = Instant::now() + within;
        loop {
            let reply = self.poll(token).await;
            if reply.body["state"] == state {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "still {} after {within:?}, wanted {state}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Joins and waits for admission; returns the admission pass.
    pub async fn admitted_pass(&self, event: &str) -> String {
        let token = self.joined(event).await;
        self.poll_until(&token, "admitted", Duration::from_secs(10))
            .await
            .str("pass")
            .to_owned()
    }

    /// `n` passes, joined together and admitted.
    pub async fn admitted_passes(&self, event: &str, n: usize) -> Vec<String> {
        let tokens = futures_util::future::join_all((0..n).map(|_| self.joined(event))).await;
        let admitted = futures_util::future::join_all(
            tokens
                .iter()
                .map(|t| self.poll_until(t, "admitted", Duration::from_secs(15))),
        )
        .await;
        admitted.iter().map(|r| r.str("pass").to_owned()).collect()
    }

    pub async fn hold(&self, event: &str, pass: &str, body: Value) -> Reply {
        self.request(
            Method::POST,
            &format!("/api/events/{event}/holds"),
            Some(body),
            Some(pass),
        )
        .await
    }

    pub async fn hold_seats(&self, event: &str, pass: &str, seats: &[&str]) -> Reply {
        self.hold(event, pass, json!({ "seats": seats })).await
    }

    pub async fn order(&self, id: &str, pass: &str) -> Reply {
        self.request(Method::GET, &format!("/api/orders/{id}"), None, Some(pass))
            .await
    }

    pub async fn pay(&self, id: &str, pass: &str) -> Reply {
        let body = json!({ "payment_ref": "test-card-4242" });
        self.request(
            Method::POST,
            &format!("/api/orders/{id}/pay"),
            Some(body),
            Some(pass),
        )
        .await
    }

    pub async fn cancel(&self, id: &str, pass: &str) -> Reply {
        self.request(
            Method::DELETE,
            &format!("/api/orders/{id}"),
            None,
            Some(pass),
        )
        .await
    }

    /// Seat id → state, from the public seat map.
    pub async fn seat_states(&self, event: &str) -> std::collections::HashMap<String, String> {
        let reply = self
            .request(
                Method::GET,
                &format!("/api/events/{event}/seats"),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let seats = reply.body["seats"].as_array().expect("a seat list");
        seats
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or("").to_owned(),
                    s["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Stops this process gracefully: its HTTP server, then its workers.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.served.await;
        assert_eq!(self.tasks.running(), 0, "a task outlived the app");
    }

    /// Stops the app and removes what it left on the shared servers.
    pub async fn finish(self) {
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()));
        let namespace = self.namespace.clone();
        self.stop().await;
        forget(&namespace, &events).await;
    }
}

pub async fn forget(namespace: &str, events: &[EventId]) {
    if embedded() {
        let db = sqlite_path(namespace);
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        return;
    }
    if let Ok(line) = AmqpLine::connect(&amqp_url(), namespace).await {
        let _ = line.delete_queues(events).await;
    }
    if let Ok(store) = RedisStore::connect(&redis_url(), namespace).await {
        let _ = store.delete_lines(events).await;
    }
}

/// Waits for `check` to hold, or panics after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A poll that sends back the log position of the client's last answer, as
/// the waiting-room page does: the answer and the mark to send with the next, or
/// `None` when the poll was refused (502/503) or not answered.
pub async fn poll_echoing(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    last_read: Option<&str>,
) -> Option<(serde_json::Value, Option<String>)> {
    let mut request = client.get(format!("{base}/api/queue/{token}"));
    if let Some(position) = last_read {
        request = request.header("anteroom-log-position", position);
    }
    let response = request.send().await.ok()?;
    if matches!(
        response.status(),
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    assert_eq!(response.status(), StatusCode::OK);
    let read_at = response
        .headers()
        .get("anteroom-log-position")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some((response.json().await.ok()?, read_at))
}
