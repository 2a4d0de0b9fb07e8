//! The connections to Redis, and which of them serves a key.
//!
//! One node, or the primary a Sentinel set names: fred's client follows it.
//! A Redis Cluster: a pool of connections per master, each command sent to
//! the master that owns its key's slot, so that a master that is gone (until
//! its replica is promoted) holds back only the commands for its own slots.
//! fred's cluster client holds back every command until it has reached every
//! master the slots name again (`router/clustered.rs::sync` connects to them
//! all in one `try_join_all`): one master's failover paused every event.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use fred::prelude::*;
use fred::types::ConnectHandle;
use fred::types::cluster::ClusterRouting;
use fred::types::config::{Server, ServerConfig};
use fred::util::redis_keyslot;
use tokio::time::Instant;

use super::COMMAND_TIMEOUT;

/// Multiplexed connections per Redis server for commands and scripts.
const POOL_SIZE: usize = 4;

/// The connections to one Redis server.
pub(super) struct Connections {
    /// Commands and scripts.
    pub pool: Pool,
    /// The connection admission steps run on. `WAIT` blocks the connection it
    /// is sent on, and fred multiplexes every command of a client over one: on
    /// a pool client it would stall joins and polls behind it.
    pub replicated: Client,
    /// The tasks that drive the connections (and reconnect them).
    tasks: std::sync::Mutex<Vec<ConnectHandle>>,
}

impl Connections {
    /// Connections as `builder` makes them, not yet connected.
    fn new(builder: &Builder) -> Result<Self, Error> {
        let pool = builder.build_pool(POOL_SIZE)?;
        let replicated = pool.next().clone_new();
        Ok(Self {
            pool,
            replicated,
            tasks: std::sync::Mutex::default(),
        })
    }

    /// Connects, and fails if the server does not answer the first time.
    async fn init(&self) -> Result<(), Error> {
        for client in self.clients() {
            let task = client.init().await?;
            self.keep_tasks([task]);
        }
        Ok(())
    }

    /// Connects in the background: commands sent meanwhile wait for the
    /// connection (up to their timeout), which is tried again until it is up.
    fn connect(&self) {
        self.keep_tasks(self.clients().map(|client| client.connect()));
    }

    fn clients(&self) -> impl Iterator<Item = &Client> {
        self.pool
            .clients()
            .iter()
            .chain(std::iter::once(&self.replicated))
    }

    fn is_connected(&self) -> bool {
        self.clients().any(|client| client.is_connected())
    }

    /// Each client's task, so that closing can stop one that is still
    /// reconnecting to a server that is gone for good.
    fn keep_tasks(&self, started: impl IntoIterator<Item = ConnectHandle>) {
        match self.tasks.lock() {
            Ok(mut tasks) => tasks.extend(started),
            Err(poisoned) => poisoned.into_inner().extend(started),
        }
    }

    /// Says goodbye to the server if it answers, and stops reconnecting to it.
    async fn close(&self) {
        let quit = async { tokio::try_join!(self.pool.quit(), self.replicated.quit()) };
        match tokio::time::timeout(COMMAND_TIMEOUT, quit).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "the Redis connections were already gone"),
            Err(_) => tracing::debug!("a Redis server did not answer QUIT in time"),
        }
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for task in tasks {
            task.abort();
        }
    }
}

/// A client of `config`'s server(s): each command bounded by
/// `COMMAND_TIMEOUT`, a lost connection reconnected at once, then with back-off.
fn builder(config: Config) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    builder
}

/// A client of one master of the cluster, as [`builder`] makes it, and:
/// - it connects until the master answers, even if it does not the first
///   time (a master found while it is down, or just promoted);
/// - a command is sent once: a connection lost under it is its caller's
///   error, never a second run. So a `MOVED` (or `CLUSTERDOWN`) reply is
///   the command's only answer, and says that it did not run.
fn master_builder(template: &Config, server: &Server) -> Builder {
    let mut config = config_for(template, server);
    config.fail_fast = false;
    let mut builder = builder(config);
    builder.with_connection_config(|c| c.max_command_attempts = 1);
    builder
}

/// Where the keys are: one server, or the masters of a Redis Cluster.
pub(super) enum Servers {
    One(Arc<Connections>),
    Cluster(Arc<Masters>),
}

impl Servers {
    /// Connects to what `url` names (fred's URL forms); a cluster's masters
    /// are found through the nodes the URL lists.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let config = Config::from_url(url)?;
        if let ServerConfig::Clustered { hosts, .. } = &config.server {
            let seeds = hosts.clone();
            return Ok(Self::Cluster(Arc::new(
                Masters::discover(config, seeds).await?,
            )));
        }
        let one = Connections::new(&builder(config))?;
        one.init().await?;
        Ok(Self::One(Arc::new(one)))
    }

    /// Runs `command` on the connections of the server that serves `key`.
    /// In a cluster, a command the master refused because the slot has moved
    /// (`MOVED`: it did not run) is sent once more, to the new owner.
    pub async fn on<R, F>(
        &self,
        key: &str,
        command: impl Fn(Arc<Connections>) -> F,
    ) -> Result<R, Error>
    where
        F: Future<Output = Result<R, Error>>,
    {
        match self {
            Self::One(one) => command(one.clone()).await,
            Self::Cluster(masters) => masters.on(key, command).await,
        }
    }

    /// Whether Redis answers: the server, or any master of the cluster (a
    /// master that is gone stops only its own slots' events, which another
    /// instance could not serve either).
    pub async fn ping(&self) -> Result<(), Error> {
        let ping = async |node: &Arc<Connections>| node.pool.next().ping::<()>(None).await;
        match self {
            Self::One(one) => ping(one).await,
            Self::Cluster(masters) => {
                let routing = masters.routing();
                if routing.masters.is_empty() {
                    return Err(Error::new(ErrorKind::Cluster, "no master serves a slot"));
                }
                let pings = routing.masters.values().map(|node| Box::pin(ping(node)));
                futures_util::future::select_ok(pings).await.map(drop)
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Self::One(one) => one.close().await,
            Self::Cluster(masters) => {
                let routing = masters.routing();
                futures_util::future::join_all(routing.masters.values().map(|node| node.close()))
                    .await;
            }
        }
    }
}

/// The masters of a Redis Cluster, by the slots they serve.
pub(super) struct Masters {
    /// The URL's settings (credentials, timeouts) for each master's connections.
    config: Config,
    /// The nodes the URL lists: asked for the slots when no master answers.
    seeds: Vec<Server>,
    routing: RwLock<Arc<Routing>>,
    /// When the slots were last read; one reading at a time.
    last_read: tokio::sync::Mutex<Option<Instant>>,
}

/// Which master serves each slot, and the connections to each master.
struct Routing {
    slots: ClusterRouting,
    masters: HashMap<Server, Arc<Connections>>,
}

impl Routing {
    fn serving(&self, key: &str) -> Option<(&Server, &Arc<Connections>)> {
        let server = self.slots.get_server(redis_keyslot(key.as_bytes()))?;
        self.masters.get_key_value(server)
    }
}

/// A node's settings under the URL's, with `server` as its one server.
fn config_for(template: &Config, server: &Server) -> Config {
    let mut config = template.clone();
    config.server = ServerConfig::Centralized {
        server: server.clone(),
    };
    config
}

/// An error after which the slots may have moved: the master refused
/// (`MOVED`, `ASK`, `CLUSTERDOWN`) or did not answer.
fn slots_may_have_moved(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Cluster | ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled
    )
}

impl Masters {
    /// Reads the slots from the first seed that answers and connects to
    /// every master they name.
    async fn discover(config: Config, seeds: Vec<Server>) -> Result<Self, Error> {
        let slots = read_slots_from_seeds(&config, &seeds).await?;
        if slots.len() == 0 {
            return Err(Error::new(
                ErrorKind::Cluster,
                "the Redis Cluster serves no slots",
            ));
        }
        let mut masters = HashMap::new();
        for server in slots.unique_primary_nodes() {
            let connections = Connections::new(&master_builder(&config, &server))?;
            connections.connect();
            masters.insert(server, Arc::new(connections));
        }
        Ok(Self {
            config,
            seeds,
            routing: RwLock::new(Arc::new(Routing { slots, masters })),
            last_read: tokio::sync::Mutex::new(Some(Instant::now())),
        })
    }

    fn routing(&self) -> Arc<Routing> {
        match self.routing.read() {
            Ok(routing) => routing.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn on<R, F>(
        self: &Arc<Self>,
        key: &str,
        command: impl Fn(Arc<Connections>) -> F,
    ) -> Result<R, Error>
    where
        F: Future<Output = Result<R, Error>>,
    {
        let routing = self.routing();
        let Some((server, node)) = routing.serving(key) else {
            self.read_slots_soon(Instant::now());
            let slot = redis_keyslot(key.as_bytes());
            return Err(Error::new(
                ErrorKind::Cluster,
                format!("no master serves slot {slot}"),
            ));
        };
        let first = command(node.clone()).await;
        let failed_at = Instant::now();
        match first {
            Err(e) if e.is_moved() => {
                self.read_slots(failed_at).await;
                let now = self.routing();
                match now.serving(key) {
                    Some((owner, node)) if owner != server => {
                        tracing::debug!(from = %server, to = %owner, "a slot moved: the command goes again to its new master");
                        let again = command(node.clone()).await;
                        self.read_slots_after(again, Instant::now())
                    }
                    _ => Err(e),
                }
            }
            result => self.read_slots_after(result, failed_at),
        }
    }

    /// `result`, having asked for the slots to be read again if it says
    /// they may have moved.
    fn read_slots_after<R>(
        self: &Arc<Self>,
        result: Result<R, Error>,
        at: Instant,
    ) -> Result<R, Error> {
        if let Err(e) = &result
            && slots_may_have_moved(e)
        {
            self.read_slots_soon(at);
        }
        result
    }

    /// Reads the slots again in the background (a failing command's caller
    /// gets its error now; the next command goes where the cluster says).
    /// Not while a reading runs: commands failing together ask once, and a
    /// later failure asks again.
    fn read_slots_soon(self: &Arc<Self>, failed_at: Instant) {
        if self.last_read.try_lock().is_err() {
            return;
        }
        let masters = self.clone();
        tokio::spawn(async move { masters.read_slots(failed_at).await });
    }

    /// Reads the slots again, unless a reading started since `failed_at`;
    /// connects to new masters and closes the connections to former ones.
    async fn read_slots(&self, failed_at: Instant) {
        let mut last_read = self.last_read.lock().await;
        if last_read.is_some_and(|read| read >= failed_at) {
            return;
        }
        *last_read = Some(Instant::now());
        let current = self.routing();
        let slots = match self.read_slots_from_masters(&current).await {
            Some(slots) => slots,
            None => match read_slots_from_seeds(&self.config, &self.seeds).await {
                Ok(slots) => slots,
                Err(e) => {
                    tracing::warn!(error = %e, "no node of the Redis Cluster answered CLUSTER SLOTS");
                    return;
                }
            },
        };
        if slots.len() == 0 {
            tracing::warn!("the Redis Cluster answered that it serves no slots: routing kept");
            return;
        }
        let mut masters = HashMap::new();
        for server in slots.unique_primary_nodes() {
            if let Some(node) = current.masters.get(&server) {
                masters.insert(server, node.clone());
                continue;
            }
            match Connections::new(&master_builder(&self.config, &server)) {
                Ok(node) => {
                    tracing::info!(master = %server, "a new Redis Cluster master serves slots");
                    node.connect();
                    masters.insert(server, Arc::new(node));
                }
                Err(e) => {
                    tracing::error!(master = %server, error = %e, "cannot connect to a Redis Cluster master")
                }
            }
        }
        let former: Vec<Arc<Connections>> = current
            .masters
            .iter()
            .filter(|(server, _)| !masters.contains_key(*server))
            .map(|(server, node)| {
                tracing::info!(master = %server, "a Redis Cluster node no longer serves slots");
                node.clone()
            })
            .collect();
        let next = Arc::new(Routing { slots, masters });
        match self.routing.write() {
            Ok(mut routing) => *routing = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        for node in former {
            tokio::spawn(async move { node.close().await });
        }
    }

    /// The slots as the first master that answers sees them, connected
    /// masters first (a master that is gone would take a timeout to say so).
    async fn read_slots_from_masters(&self, routing: &Routing) -> Option<ClusterRouting> {
        let mut nodes: Vec<(&Server, &Arc<Connections>)> = routing.masters.iter().collect();
        nodes.sort_by_key(|(_, node)| !node.is_connected());
        for (server, node) in nodes {
            match cluster_slots_of(node.pool.next_connected(), server).await {
                Ok(slots) => return Some(slots),
                Err(e) => tracing::debug!(master = %server, error = %e, "CLUSTER SLOTS failed"),
            }
        }
        None
    }
}

/// The slots as `server` (which `client` is connected to) sees them.
async fn cluster_slots_of(client: &Client, server: &Server) -> Result<ClusterRouting, Error> {
    let reply: Value = client.cluster_slots().await?;
    ClusterRouting::from_cluster_slots(reply, server.host.clone())
}

/// The slots as the first of `seeds` that answers sees them.
async fn read_slots_from_seeds(config: &Config, seeds: &[Server]) -> Result<ClusterRouting, Error> {
    let mut failures = Vec::new();
    for seed in seeds {
        let client = builder(config_for(config, seed)).build()?;
        let slots = match client.init().await {
            Ok(task) => {
                let slots = cluster_slots_of(&client, seed).await;
                if let Err(e) = client.quit().await {
                    tracing::debug!(error = %e, "QUIT after CLUSTER SLOTS failed");
                }
                task.abort();
                slots
            }
            Err(e) => Err(e),
        };
        match slots {
            Ok(slots) => return Ok(slots),
            Err(e) => failures.push(format!("{seed}: {e}")),
        }
    }
    Err(Error::new(
        ErrorKind::IO,
        format!(
            "no node of the Redis Cluster answered CLUSTER SLOTS ({})",
            failures.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masters_connections_keep_the_urls_credentials_and_name_it_alone() {
        let cluster =
            Config::from_url("redis-cluster://app:secret@10.0.0.1:7000?node=10.0.0.2:7000")
                .unwrap();
        let master = Server::new("10.0.0.3", 7001);
        let config = config_for(&cluster, &master);
        assert!(matches!(
            &config.server,
            ServerConfig::Centralized { server } if *server == master
        ));
        assert_eq!(
            (config.username.as_deref(), config.password.as_deref()),
            (Some("app"), Some("secret"))
        );
    }

    #[test]
    fn the_slots_are_read_again_after_a_refusal_or_silence_but_not_after_a_bad_command() {
        let read_again = |kind: ErrorKind, details: &str| {
            slots_may_have_moved(&Error::new(kind, details.to_owned()))
        };
        assert!(read_again(ErrorKind::Cluster, "MOVED 3999 127.0.0.1:7102"));
        assert!(read_again(
            ErrorKind::Cluster,
            "CLUSTERDOWN The cluster is down"
        ));
        assert!(read_again(ErrorKind::Timeout, "Request timed out."));
        assert!(read_again(ErrorKind::IO, "Connection refused"));
        assert!(!read_again(
            ErrorKind::InvalidArgument,
            "wrong number of arguments"
        ));
        assert!(!read_again(ErrorKind::Unknown, "ERR a script's own error"));
    }
}
