//! Start-up: configuration to running backends, workers and HTTP server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use time::OffsetDateTime;

use crate::adapters::embedded::{self, keyspace::Keyspace, queue::EmbeddedQueue, writer::Writer};
use crate::adapters::record::{PostgresRecord, SqliteRecord};
use crate::adapters::{amqp::AmqpLine, redis::RedisStore};
use crate::config::{Config, ConfigError, Secret};
use crate::domain::{
    Access, Admission, CodeHasher, Currency, Difficulty, EventId, EventSpec, Passes, Section,
    Signer, SigningKey,
};
use crate::http::{AppState, ClientLimiter, Inner, service};
use crate::ports::{
    AdmissionStore, BackendError, Clock, CodeRecords, DelayQueue, EventRepository,
    InsertEventError, LineQueue, LineRecords, OrderRepository, PassKeyRecords, RefusalCounts,
    SeatStore, WindowCounts,
};
use crate::services::booking::Booking;
use crate::services::catalog::Catalog;
use crate::services::codes::Invitations;
use crate::services::door::{ADMIN_FAILURES, CODE_FAILURES, FailureDoor, Failures};
use crate::services::group_commit::{
    GroupCommittedOrders, GroupCommittedSeats, GroupCommittedTimers,
};
use crate::services::line::Line;
use crate::services::pass_keys::PassKeys;
use crate::services::readiness::Readiness;
use crate::services::refusals::{FLUSH_INTERVAL as REFUSALS_FLUSH, Refusals};
use crate::tasks::Tasks;
use crate::telemetry;
use crate::worker::Workers;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The backends every process talks to, one trait object per port.
pub struct Backends {
    pub events: Arc<dyn EventRepository>,
    pub orders: Arc<dyn OrderRepository>,
    pub line_records: Arc<dyn LineRecords>,
    pub codes: Arc<dyn CodeRecords>,
    pub line_store: Arc<dyn AdmissionStore>,
    pub seats: Arc<dyn SeatStore>,
    pub line_queue: Arc<dyn LineQueue>,
    pub delays: Arc<dyn DelayQueue>,
    pub window_counts: Arc<dyn WindowCounts>,
    pub refusal_counts: Arc<dyn RefusalCounts>,
    pub pass_keys: Arc<dyn PassKeyRecords>,
    /// Embedded mode's hold on its database file, for as long as the backends live.
    pub process_lock: Option<embedded::ProcessLock>,
    connections: Connections,
    /// The adapters' own tasks (embedded mode's SQLite writer).
    tasks: Tasks,
}

/// The connections `Backends::close` closes, by backend.
enum Connections {
    Servers {
        sql: Arc<PostgresRecord>,
        redis: Arc<RedisStore>,
        amqp: Arc<AmqpLine>,
    },
    Embedded(sqlx::SqlitePool),
}

impl Backends {
    /// `clock` is the one the app will run on (embedded mode's start-up reads it).
    pub async fn connect(config: &Config, clock: &Clock) -> Result<Self, StartError> {
        let (Some(redis), Some(amqp)) = (&config.redis_url, &config.amqp_url) else {
            return Self::embedded(config, clock).await;
        };
        let ns = &config.namespace;
        let (sql, redis, amqp) = tokio::try_join!(
            PostgresRecord::connect(&config.database_url, ns),
            RedisStore::connect(redis, ns),
            AmqpLine::connect(amqp, ns),
        )?;
        let (sql, redis, amqp) = (Arc::new(sql), Arc::new(redis), Arc::new(amqp));
        Ok(Self {
            events: sql.clone(),
            orders: sql.clone(),
            line_records: sql.clone(),
            codes: sql.clone(),
            pass_keys: sql.clone(),
            line_store: redis.clone(),
            window_counts: redis.clone(),
            refusal_counts: redis.clone(),
            seats: redis.clone(),
            line_queue: amqp.clone(),
            delays: amqp.clone(),
            process_lock: None,
            connections: Connections::Servers { sql, redis, amqp },
            tasks: Tasks::new(),
        })
    }

    /// Closes the connections once nothing else uses the backends: call it
    /// after every task that publishes or writes has ended.
    pub async fn close(self) {
        // Every other handle on the backends goes first; the lock on embedded
        // mode's database file goes last.
        let (connections, tasks, _process_lock) = {
            let backends = self;
            (backends.connections, backends.tasks, backends.process_lock)
        };
        match connections {
            Connections::Servers { sql, redis, amqp } => {
                tokio::join!(amqp.close(), redis.close(), sql.close());
            }
            Connections::Embedded(pool) => {
                // The SQLite writer ends once the last handle on the keyspace and the
                // queues is gone (dropped above): every change made is on disk before
                // the pool closes.
                tasks.stop(CLOSE_TIMEOUT).await;
                pool.close().await;
            }
        }
    }
}

impl Backends {
    /// Embedded mode: one SQLite file holds the record, the durable queues and
    /// the journal of the in-process key-value store.
    async fn embedded(config: &Config, clock: &Clock) -> Result<Self, StartError> {
        let process_lock = embedded::lock_database(&config.database_url)?;
        let pool = embedded::open_database(&config.database_url).await?;
        let tasks = Tasks::new();
        let writer = Writer::start(pool.clone(), &tasks);
        let keyspace = Keyspace::open(pool.clone(), writer.clone()).await?;
        // Nobody polled while the process was down: a restart abandons nobody.
        keyspace.refresh_all(":seen", clock.now().unix_timestamp().to_string().as_bytes());
        let store = Arc::new(RedisStore::embedded(keyspace, &config.namespace));
        let queue = Arc::new(EmbeddedQueue::open(pool.clone(), writer).await?);
        let record = Arc::new(SqliteRecord::new(pool.clone()));
        Ok(Self {
            events: record.clone(),
            orders: record.clone(),
            codes: record.clone(),
            pass_keys: record.clone(),
            line_records: record,
            line_store: store.clone(),
            window_counts: store.clone(),
            refusal_counts: store.clone(),
            seats: store,
            line_queue: queue.clone(),
            delays: queue,
            process_lock,
            connections: Connections::Embedded(pool),
            tasks,
        })
    }
}

/// The use-cases every process runs, over the backends.
struct Core {
    catalog: Arc<Catalog>,
    invitations: Invitations,
    line: Arc<Line>,
    booking: Arc<Booking>,
    workers: Workers,
}

impl Core {
    /// `public_url`: the deployment's, as passes name their issuer.
    async fn start(
        config: &Config,
        public_url: &url::Url,
        b: &Backends,
        clock: &Clock,
        tasks: &Tasks,
    ) -> Result<Self, StartError> {
        let catalog = Arc::new(Catalog::load(b.events.clone()).await?);
        tasks.every(CATALOG_REFRESH, catalog.clone(), |catalog| async move {
            if let Err(e) = catalog.refresh().await {
                tracing::warn!(error = %e, "could not refresh events");
            }
        });
        let secret = match &config.secret {
            Some(secret) => secret.clone(),
            None => Secret::new(b.events.setting_or_insert("secret", &random_hex()?).await?),
        };
        let signing_key = match &config.signing_key {
            Some(key) => key.clone(),
            None => SigningKey::derive(secret.expose().as_bytes(), &config.namespace),
        };
        let passes = Arc::new(Passes::new(
            public_url.as_str().trim_end_matches('/'),
            signing_key,
        ));
        let signer = Signer::new(secret.expose().as_bytes(), &config.namespace, passes);
        let invitations =
            Invitations::new(b.codes.clone(), CodeHasher::new(secret.expose().as_bytes()));
        // Every process follows the lines' logs, and restores a line the admission store lost.
        let line = Line::start(
            b.line_store.clone(),
            b.line_records.clone(),
            b.line_queue.clone(),
            catalog.clone(),
            signer,
            clock.clone(),
            tasks,
        );
        // Holds are group-committed: concurrent holds share one step in the
        // fast store, one transaction and one confirmed message, each answered
        // once durable.
        let seats: Arc<dyn SeatStore> =
            Arc::new(GroupCommittedSeats::start(b.seats.clone(), tasks));
        let orders: Arc<dyn OrderRepository> =
            Arc::new(GroupCommittedOrders::start(b.orders.clone(), tasks));
        let delays: Arc<dyn DelayQueue> =
            Arc::new(GroupCommittedTimers::start(b.delays.clone(), tasks));
        let booking = Arc::new(Booking::new(
            catalog.clone(),
            seats,
            orders,
            delays.clone(),
            clock.clone(),
        ));
        let workers = Workers {
            catalog: catalog.clone(),
            line: line.clone(),
            booking: booking.clone(),
            store: b.line_store.clone(),
            record: b.line_records.clone(),
            queue: b.line_queue.clone(),
            watermarks: Arc::default(),
            delays,
            clock: clock.clone(),
        };
        Ok(Self {
            catalog,
            invitations,
            line,
            booking,
            workers,
        })
    }
}

/// A built service, listening, not yet serving.
pub struct App {
    listener: TcpListener,
    state: AppState,
    workers: Workers,
    tasks: Tasks,
    demo: Option<EventId>,
    /// Closed once the app has stopped (embedded mode's hold on its database file ends then).
    backends: Backends,
}

impl App {
    /// The app on `clock`: `Clock::system()` but in tests.
    pub async fn build(config: Config, clock: Clock) -> Result<Self, StartError> {
        let backends = Backends::connect(&config, &clock).await?;
        Self::with_backends(config, backends, clock).await
    }

    pub async fn with_backends(
        config: Config,
        backends: Backends,
        clock: Clock,
    ) -> Result<Self, StartError> {
        let admin_token = match &config.admin_token {
            Some(token) => token.clone(),
            None => Secret::new(
                backends
                    .events
                    .setting_or_insert("admin_token", &random_hex()?)
                    .await?,
            ),
        };
        // Bound first: without ANTEROOM_PUBLIC_URL, the address bound (a port
        // the system picked for :0) is what links and passes name.
        let listener = TcpListener::bind(config.addr).await?;
        let public_url = config.public_url_or(listener.local_addr()?);
        let tasks = Tasks::new();
        let Core {
            catalog,
            invitations,
            line,
            booking,
            workers,
        } = Core::start(&config, &public_url, &backends, &clock, &tasks).await?;
        // Only a serving process signs passes (and so rotates keys); workers verify none.
        PassKeys::start(
            line.signer().passes().clone(),
            backends.pass_keys.clone(),
            catalog.clone(),
            clock.clone(),
            &tasks,
        )
        .await?;
        let demo = if config.demo && catalog.all().is_empty() {
            Some(seed_demo(&line, clock.now()).await?)
        } else {
            None
        };
        tasks.every(SEAT_COUNTS_REFRESH, booking.clone(), |b| async move {
            b.refresh_counts().await
        });
        let refusals = Arc::new(Refusals::new(backends.refusal_counts.clone()));
        tasks.every(REFUSALS_FLUSH, refusals.clone(), |r| async move {
            r.flush().await
        });
        let state = AppState::new(Inner {
            line,
            catalog,
            booking,
            invitations,
            refusals,
            admin_token,
            admin_door: FailureDoor::new(
                backends.window_counts.clone(),
                ADMIN_FAILURES,
                Failures::AdminToken,
            ),
            code_door: FailureDoor::new(
                backends.window_counts.clone(),
                CODE_FAILURES,
                Failures::InviteCode,
            ),
            readiness: Readiness::new(
                backends.events.clone(),
                backends.line_store.clone(),
                backends.line_queue.clone(),
            ),
            metrics: telemetry::metrics(),
            limiter: ClientLimiter::new(config.client_rate, clock.clone()),
            trust_forwarded: config.trust_forwarded,
            public_url,
            tasks: tasks.clone(),
            clock,
        });
        Ok(Self {
            listener,
            state,
            workers,
            tasks,
            demo,
            backends,
        })
    }

    /// The demo event this start seeded into an empty database, if any.
    pub fn demo_event(&self) -> Option<&EventId> {
        self.demo.as_ref()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn admin_token(&self) -> &Secret {
        &self.state.admin_token
    }

    /// The workers' single steps, for driving them from tests.
    pub fn workers(&self) -> Workers {
        self.workers.clone()
    }

    /// The app's tasks: `running()` is 0 once `run_until` has returned.
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// Serves HTTP and runs the workers until `stop_accepting` completes, then
    /// drains: in-flight requests are answered (joins waiting for their group
    /// commit included), then background work stops and every task ends, then
    /// the connections close.
    pub async fn run_until(
        self,
        stop_accepting: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            state,
            workers,
            tasks,
            backends,
            ..
        } = self;
        workers.run(&tasks);
        let service =
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                SocketAddr,
            >(service(state));
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(stop_accepting)
            .await;
        // The workers stop at their next step; their unacknowledged deliveries return to their queues.
        tasks.stop(DRAIN_TIMEOUT).await;
        backends.close().await;
        served
    }
}

/// Runs only the workers (`anteroom worker`): admission, expiry and the sweeper.
pub async fn run_workers(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let clock = Clock::system();
    let backends = Backends::connect(&config, &clock).await?;
    let tasks = Tasks::new();
    // A worker signs no pass: the configured address stands in for an unset public URL.
    let public_url = config.public_url_or(config.addr);
    Core::start(&config, &public_url, &backends, &clock, &tasks)
        .await?
        .workers
        .run(&tasks);
    shutdown.await;
    tasks.stop(DRAIN_TIMEOUT).await;
    backends.close().await;
    Ok(())
}

/// How long the background work has to end once told to stop: the longest is a
/// group of joins being published (`PUBLISH_TIMEOUT`) or a hold being made.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long embedded mode's writer has to write its last changes.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often each process reloads event settings (a PATCH is seen within 1 s).
const CATALOG_REFRESH: std::time::Duration = std::time::Duration::from_millis(500);
/// How often each process refreshes seat counts (availability, sold out).
const SEAT_COUNTS_REFRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// A small sale, on now, so that a first `cargo run` has something to queue for.
async fn seed_demo(line: &Line, now: OffsetDateTime) -> Result<EventId, StartError> {
    let section = |id: &str, name: &str, price_cents, rows, seats_per_row| Section {
        id: id.into(),
        name: name.into(),
        price_cents,
        rows,
        seats_per_row,
    };
    let spec = EventSpec {
        id: EventId::parse("demo")
            .map_err(|e| BackendError::bug_caused_by("the demo event id", e))?,
        name: "Anteroom Demo Night".into(),
        venue: "The Demo Hall".into(),
        starts_at: now + std::time::Duration::from_secs(30 * 24 * 3600),
        on_sale_at: None,
        hold_seconds: 300,
        max_seats_per_user: 4,
        admission: Admission {
            per_second: 2.0,
            max_active: 50,
            pass_seconds: 900,
            abandon_seconds: 60,
        },
        paused: false,
        currency: Currency::EUR,
        join_challenge: Difficulty::OFF,
        access: Access::Open,
        address_limit: None,
        return_origins: Vec::new(),
        sections: vec![
            section("A", "Floor", 6_500, 8, 20),
            section("B", "Balcony", 3_900, 6, 15),
            section("C", "Gallery", 2_500, 4, 20),
        ],
    };
    match line.create_event(spec).await {
        Ok(event) => Ok(event.id().clone()),
        Err(InsertEventError::Exists) => Ok(EventId::parse("demo")
            .map_err(|e| BackendError::bug_caused_by("the demo event id", e))?),
        Err(InsertEventError::Backend(e)) => Err(e.into()),
    }
}

fn random_hex() -> Result<String, BackendError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| BackendError::unavailable("random", e))?;
    Ok(hex::encode(bytes))
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
