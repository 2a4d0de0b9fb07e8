//! The real binary as an operator runs it, on this pass's backend, killed with
//! SIGKILL: what was acknowledged must survive.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anteroom::domain::EventId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Reply, amqp_url, database_url, embedded, event_body, forget, fresh_namespace, redis_url, send,
    sqlite_path, try_send,
};

/// The admin token of every service this file starts.
pub const ADMIN_TOKEN: &str = "kill-test-admin-token-of-the-suite";

pub struct Service {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Service {
    /// Starts `anteroom` on this pass's backend for `namespace` (embedded: the
    /// namespace's SQLite file), and waits until it answers.
    pub async fn start(namespace: &str, port: u16) -> Self {
        Self::start_logging(namespace, port, None).await
    }

    /// Starts it with every log line at debug level written to `log`, if given.
    async fn start_logging(namespace: &str, port: u16, log: Option<&std::path::Path>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anteroom"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        if embedded() {
            command.env(
                "DATABASE_URL",
                format!("sqlite://{}", sqlite_path(namespace).display()),
            );
        } else {
            command
                .env("DATABASE_URL", database_url().await)
                .env("REDIS_URL", redis_url())
                .env("AMQP_URL", amqp_url())
                .env("ANTEROOM_SECRET", "kill-test-secret")
                .env("ANTEROOM_NAMESPACE", namespace);
        }
        let child = command
            .env("ANTEROOM_ADDR", format!("127.0.0.1:{port}"))
            .env("ANTEROOM_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("ANTEROOM_DEMO", "0")
            .env("RUST_LOG", if log.is_some() { "debug" } else { "warn" })
            .stdout(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("a log file")),
                None => Stdio::null(),
            })
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let service = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while service
            .client
            .get(format!("{}/healthz", service.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the service did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let reply = send(&self.client, &self.base, method, path, body, bearer).await;
        (reply.status, reply.body)
    }

    /// One request, or the error of a service that is gone.
    async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Result<Reply, reqwest::Error> {
        try_send(&self.client, &self.base, method, path, body, bearer).await
    }

    /// SIGTERM, as an orchestrator stops a process: the graceful stop.
    fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was sent");
    }

    /// Waits for the process to exit by itself; whether it exited successfully.
    async fn exited(mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().expect("the process is killed");
        let _ = self.child.wait();
    }
}

/// A test that fails midway leaves no process behind.
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn what_was_acknowledged_survives_kill_9() {
    use reqwest::Method;
    let namespace = fresh_namespace();
    let port = free_port();
    let service = Service::start(&namespace, port).await;
    let admin = Some(ADMIN_TOKEN);
    let admission = json!({ "per_second": 1000, "max_active": 2, "pass_seconds": 600 });
    let event = event_body(
        "durable",
        json!({ "hold_seconds": 3, "admission": admission }),
    );
    assert_eq!(
        service
            .send(Method::POST, "/api/admin/events", Some(event), admin)
            .await
            .0,
        StatusCode::CREATED
    );

    let mut tokens = Vec::new();
    for _ in 0..4 {
        let (status, body) = service
            .send(Method::POST, "/api/events/durable/queue", None, None)
            .await;
        assert_eq!(status, StatusCode::CREATED);
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let pass_of = |body: &Value| body["pass"].as_str().map(str::to_owned);
    let mut passes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while passes.len() < 2 {
        passes = Vec::new();
        for token in &tokens[..2] {
            passes.extend(pass_of(
                &service
                    .send(Method::GET, &format!("/api/queue/{token}"), None, None)
                    .await
                    .1,
            ));
        }
        assert!(Instant::now() < deadline, "the first two were not admitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, sold) = service
        .send(
            Method::POST,
            "/api/events/durable/holds",
            Some(json!({ "seats": ["A-1-1"] })),
            Some(&passes[0]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let sold_id = sold["order_id"].as_str().unwrap().to_owned();
    let paid = service
        .send(
            Method::POST,
            &format!("/api/orders/{sold_id}/pay"),
            Some(json!({ "payment_ref": "x" })),
            Some(&passes[0]),
        )
        .await;
    assert_eq!(paid.0, StatusCode::OK);
    let (status, held) = service
        .send(
            Method::POST,
            "/api/events/durable/holds",
            Some(json!({ "seats": ["A-1-2"] })),
            Some(&passes[1]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let held_id = held["order_id"].as_str().unwrap().to_owned();
    let held_at = Instant::now();
    let waiting: Vec<u64> = {
        let mut positions = Vec::new();
        for token in &tokens[2..] {
            positions.push(
                service
                    .send(Method::GET, &format!("/api/queue/{token}"), None, None)
                    .await
                    .1["position"]
                    .as_u64()
                    .unwrap(),
            );
        }
        positions
    };

    service.kill9();
    let service = Service::start(&namespace, port).await;

    // The joins are still in line, no further back than before.
    for (token, before) in tokens[2..].iter().zip(&waiting) {
        let (status, body) = service
            .send(Method::GET, &format!("/api/queue/{token}"), None, None)
            .await;
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::OK, Some("waiting")),
            "{body}"
        );
        assert!(
            body["position"].as_u64().unwrap() <= *before,
            "a position went up across the restart"
        );
    }
    // The admitted keep their passes; the payment is still paid.
    let order = service
        .send(
            Method::GET,
            &format!("/api/orders/{sold_id}"),
            None,
            Some(&passes[0]),
        )
        .await;
    assert_eq!(order.1["status"], "paid", "{}", order.1);
    // The hold made before the crash still expires on time, and its seat comes free.
    let deadline = held_at + Duration::from_secs(3 + 2);
    loop {
        let (_, order) = service
            .send(
                Method::GET,
                &format!("/api/orders/{held_id}"),
                None,
                Some(&passes[1]),
            )
            .await;
        if order["status"] == "expired" {
            break;
        }
        assert!(
            Instant::now() < deadline + Duration::from_millis(500),
            "not expired in time: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stats) = service
        .send(Method::GET, "/api/admin/events/durable/stats", None, admin)
        .await;
    assert_eq!(
        (
            stats["sold_seats"].as_u64(),
            stats["held_seats"].as_u64(),
            stats["orders_paid"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(
        stats["admitted_total"].as_u64(),
        Some(2),
        "no one was admitted twice: {stats}"
    );
    service.kill9();
    forget(
        &namespace,
        &[EventId::parse("durable").expect("a valid id")],
    )
    .await;
}

/// What the service acknowledged to the visitors of a load.
#[derive(Default)]
struct Acknowledged {
    /// Each token joined, with the last position it read (`None` once admitted).
    joins: Vec<(String, Option<u64>)>,
    /// Orders held (`201`), with the pass that holds them.
    holds: Vec<(String, String)>,
    /// Orders paid (`200`).
    paid: Vec<String>,
}

/// One visitor after another: join, poll until admitted, hold one seat, pay
/// every other hold; until the service stops answering.
async fn visit_until_gone(service: &Service, ledger: &std::sync::Mutex<Acknowledged>, seed: usize) {
    use reqwest::Method;
    let note = |f: &mut dyn FnMut(&mut Acknowledged)| {
        f(&mut ledger.lock().unwrap_or_else(|p| p.into_inner()))
    };
    for visit in seed.. {
        let Ok(joined) = service
            .try_send(Method::POST, "/api/events/busy/queue", None, None)
            .await
        else {
            return;
        };
        assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
        let token = joined.str("token").to_owned();
        let index = { ledger.lock().unwrap_or_else(|p| p.into_inner()).joins.len() };
        note(&mut |l| {
            l.joins
                .push((token.clone(), joined.body["position"].as_u64()))
        });
        let pass = loop {
            let Ok(poll) = service
                .try_send(Method::GET, &format!("/api/queue/{token}"), None, None)
                .await
            else {
                return;
            };
            let position = poll.body["position"].as_u64();
            note(&mut |l| {
                if let Some(entry) = l.joins.iter_mut().skip(index).find(|(t, _)| *t == token) {
                    entry.1 = position;
                }
            });
            if let Some(pass) = poll.body["pass"].as_str() {
                break pass.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let hold = json!({ "best_available": { "count": 1 } });
        let Ok(held) = service
            .try_send(
                Method::POST,
                "/api/events/busy/holds",
                Some(hold),
                Some(&pass),
            )
            .await
        else {
            return;
        };
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
        let order = held.str("order_id").to_owned();
        note(&mut |l| l.holds.push((order.clone(), pass.clone())));
        if visit % 2 == 0 {
            let path = format!("/api/orders/{order}/pay");
            let Ok(paid) = service
                .try_send(
                    Method::POST,
                    &path,
                    Some(json!({ "payment_ref": "x" })),
                    Some(&pass),
                )
                .await
            else {
                return;
            };
            assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
            note(&mut |l| l.paid.push(order.clone()));
        }
    }
}

#[tokio::test]
async fn what_was_acknowledged_under_load_survives_kill_9() {
    use reqwest::Method;
    let namespace = fresh_namespace();
    let port = free_port();
    let service = std::sync::Arc::new(Service::start(&namespace, port).await);
    let admin = Some(ADMIN_TOKEN);
    let admission = json!({ "per_second": 100, "max_active": 40, "pass_seconds": 600 });
    let event = event_body(
        "busy",
        json!({ "hold_seconds": 120, "admission": admission }),
    );
    assert_eq!(
        service
            .send(Method::POST, "/api/admin/events", Some(event), admin)
            .await
            .0,
        StatusCode::CREATED
    );

    let ledger = std::sync::Arc::new(std::sync::Mutex::new(Acknowledged::default()));
    let visitors: Vec<_> = (0..24)
        .map(|seed| {
            let (service, ledger) = (service.clone(), ledger.clone());
            tokio::spawn(async move { visit_until_gone(&service, &ledger, seed).await })
        })
        .collect();
    // Kill it while visitors are joining, polling, holding and paying.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let pid = service.child.id();
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    for visitor in visitors {
        visitor.await.expect("a visitor's checks held");
    }
    let service = Service::start(&namespace, port).await;
    let Acknowledged { joins, holds, paid } =
        std::mem::take(&mut *ledger.lock().unwrap_or_else(|p| p.into_inner()));
    assert!(
        joins.len() > 40 && holds.len() > 10 && !paid.is_empty(),
        "a load ran: {} joins",
        joins.len()
    );

    // Every join is still in line or admitted, never further back than it last read.
    let mut admitted = 0;
    for (token, last) in &joins {
        let (status, body) = service
            .send(Method::GET, &format!("/api/queue/{token}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        match (body["state"].as_str(), last) {
            (Some("admitted"), _) => admitted += 1,
            (Some("waiting"), Some(before)) => {
                assert!(
                    body["position"].as_u64().unwrap() <= *before,
                    "a position went up: {before} -> {body}"
                )
            }
            _ => panic!("a join acknowledged before the kill reads {body} (last read at {last:?})"),
        }
    }
    // Every hold and payment is as acknowledged, and no seat is in two orders.
    let mut seats = std::collections::HashSet::new();
    for (order, pass) in &holds {
        let (status, body) = service
            .send(
                Method::GET,
                &format!("/api/orders/{order}"),
                None,
                Some(pass),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let wanted = if paid.contains(order) {
            "paid"
        } else {
            "pending"
        };
        assert_eq!(body["status"], wanted, "{body}");
        for seat in body["seats"].as_array().unwrap() {
            assert!(
                seats.insert(seat.as_str().unwrap().to_owned()),
                "{seat} is in two orders"
            );
        }
    }
    let (_, stats) = service
        .send(Method::GET, "/api/admin/events/busy/stats", None, admin)
        .await;
    let count = |f: &str| stats[f].as_u64().unwrap();
    assert_eq!(
        count("sold_seats") + count("held_seats") + count("available_seats"),
        200,
        "{stats}"
    );
    assert!(
        count("sold_seats") >= paid.len() as u64 && count("orders_paid") == count("sold_seats"),
        "{stats}"
    );
    assert!(
        count("active") <= 40,
        "max_active held across the kill: {stats}"
    );
    assert!(
        count("admitted_total") >= admitted,
        "every admission counted: {stats}, {admitted} read admitted"
    );
    service.kill9();
    forget(&namespace, &[EventId::parse("busy").expect("a valid id")]).await;
}

#[tokio::test]
async fn no_secret_reaches_a_log_line() {
    use reqwest::Method;
    let namespace = fresh_namespace();
    let log = std::env::temp_dir().join(format!("{namespace}.log"));
    let service = Service::start_logging(&namespace, free_port(), Some(&log)).await;
    let admin = ADMIN_TOKEN;
    let event = event_body(
        "quiet",
        json!({ "admission": { "per_second": 100, "max_active": 10, "pass_seconds": 60 } }),
    );
    assert_eq!(
        service
            .send(Method::POST, "/api/admin/events", Some(event), Some(admin))
            .await
            .0,
        StatusCode::CREATED
    );
    let wrong_admin = service
        .send(
            Method::GET,
            "/api/admin/events/quiet/stats",
            None,
            Some("not-the-admin"),
        )
        .await;
    assert_eq!(wrong_admin.0, StatusCode::UNAUTHORIZED);

    let (_, joined) = service
        .send(Method::POST, "/api/events/quiet/queue", None, None)
        .await;
    let token = joined["token"].as_str().expect("a token").to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    let pass = loop {
        let (_, polled) = service
            .send(Method::GET, &format!("/api/queue/{token}"), None, None)
            .await;
        if let Some(pass) = polled["pass"].as_str() {
            break pass.to_owned();
        }
        assert!(Instant::now() < deadline, "not admitted: {polled}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hold = json!({ "seats": ["A-1-1"] });
    let (status, held) = service
        .send(
            Method::POST,
            "/api/events/quiet/holds",
            Some(hold),
            Some(&pass),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let order = held["order_id"].as_str().expect("an order");
    let pay = Some(json!({ "payment_ref": "card-4242" }));
    assert_eq!(
        service
            .send(
                Method::POST,
                &format!("/api/orders/{order}/pay"),
                pay,
                Some(&pass)
            )
            .await
            .0,
        StatusCode::OK
    );
    // Forged and tampered credentials are refused, and not echoed to the log either.
    let forged = format!("{pass}x");
    assert_eq!(
        service
            .send(
                Method::GET,
                &format!("/api/orders/{order}"),
                None,
                Some(&forged)
            )
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        service
            .send(Method::DELETE, &format!("/api/queue/{token}"), None, None)
            .await
            .0,
        StatusCode::OK
    );
    service.kill9();

    let logged = std::fs::read_to_string(&log).expect("the log");
    let at_debug = logged.contains("DEBUG") && logged.contains("event created");
    assert!(
        at_debug,
        "the log has the requests at debug level: {} bytes",
        logged.len()
    );
    let mut secrets = vec![
        ("the admin token", admin),
        ("a queue token", &token),
        ("a pass", &pass),
        ("a forged pass", &forged),
    ];
    if !embedded() {
        secrets.push(("the signing secret", "kill-test-secret"));
    }
    for (what, secret) in secrets {
        assert!(!logged.contains(secret), "{what} was logged");
    }
    let _ = std::fs::remove_file(&log);
    forget(&namespace, &[EventId::parse("quiet").expect("a valid id")]).await;
}

#[tokio::test]
async fn sigterm_answers_the_joins_in_flight_and_exits_cleanly() {
    use reqwest::Method;
    let namespace = fresh_namespace();
    let service = Service::start(&namespace, free_port()).await;
    let admin = Some(ADMIN_TOKEN);
    // Paused: every acknowledged join stays in the line, to be counted after the restart.
    let event = event_body("draining", json!({ "paused": true }));
    let (status, _) = service
        .send(Method::POST, "/api/admin/events", Some(event), admin)
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let mut joins: futures_util::stream::FuturesUnordered<_> = (0..300)
        .map(|_| service.try_send(Method::POST, "/api/events/draining/queue", None, None))
        .collect();
    let mut replies = vec![
        futures_util::StreamExt::next(&mut joins)
            .await
            .expect("a join"),
    ];
    service.terminate();
    replies.extend(futures_util::StreamExt::collect::<Vec<_>>(joins).await);
    assert!(
        service.exited(Duration::from_secs(30)).await,
        "a graceful stop exits with success"
    );
    let statuses: Vec<StatusCode> = replies.iter().flatten().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|&s| s == StatusCode::CREATED),
        "a join taken in is answered with its outcome, never refused for the stop: {statuses:?}"
    );
    let created = statuses.len() as u64;
    assert!(created >= 1);

    let again = Service::start(&namespace, free_port()).await;
    let (status, stats) = again
        .send(Method::GET, "/api/admin/events/draining/stats", None, admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats["waiting"].as_u64(),
        Some(created),
        "every acknowledged join is in the line"
    );
    again.kill9();
    forget(
        &namespace,
        &[EventId::parse("draining").expect("an event id")],
    )
    .await;
}

/// A plain poll is answered before axum's router (`http::PollFirst`), an
/// encoded one by the router: both are counted under the poll's route. In a
/// process of its own, so that no other test's polls are counted with them.
#[tokio::test]
async fn every_poll_is_counted_under_its_route_whichever_way_it_was_answered() {
    use reqwest::Method;
    let service = Service::start(&fresh_namespace(), free_port()).await;
    let event = event_body("counted", json!({ "paused": true }));
    let (status, _) = service
        .send(
            Method::POST,
            "/api/admin/events",
            Some(event),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, joined) = service
        .send(Method::POST, "/api/events/counted/queue", None, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{joined}");
    let token = joined["token"].as_str().expect("a token");
    let encoded = format!("%{:02X}{}", token.as_bytes()[0], &token[1..]);
    for written in [token, token, encoded.as_str()] {
        let (status, polled) = service
            .send(Method::GET, &format!("/api/queue/{written}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{written}: {polled}");
    }
    let (_, metrics) = service.send(Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().expect("prometheus text");
    let count = |route: &str| -> u64 {
        text.lines()
            .filter(|line| {
                line.starts_with("anteroom_http_request_duration_seconds_count{")
                    && line.contains(&format!(r#"route="{route}""#))
                    && line.contains(r#"method="GET""#)
                    && line.contains(r#"status="200""#)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(count("/api/queue/{token}"), 3, "{text}");
    assert_eq!(count("unmatched"), 0, "{text}");
}
