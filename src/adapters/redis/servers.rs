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
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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
                let pings = routing.masters.iter().map(|(_, node)| Box::pin(ping(node)));
                futures_util::future::select_ok(pings).await.map(drop)
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Self::One(one) => one.close().await,
            Self::Cluster(masters) => {
                let nodes: Vec<Arc<Connections>> = masters
                    .nodes()
                    .drain()
                    .map(|(_, node)| node.connections)
                    .collect();
                futures_util::future::join_all(nodes.iter().map(|node| node.close())).await;
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
    /// The connections to every node that has served slots. One that no
    /// longer does is kept `RETIRE_AFTER` before they are closed: a command
    /// sent to it just before still gets its answer (`MOVED`), and a node that
    /// has not heard of a failover yet may name it again for a moment.
    nodes: Mutex<HashMap<Server, Node>>,
    /// When the slots were last read; one reading at a time.
    last_read: tokio::sync::Mutex<Option<Instant>>,
}

struct Node {
    connections: Arc<Connections>,
    /// Since when it serves no slot.
    retired_at: Option<Instant>,
}

/// How long the connections to a node that no longer serves slots are kept.
const RETIRE_AFTER: Duration = Duration::from_secs(10);
/// The slots of a Redis Cluster.
const SLOTS: usize = 16_384;
/// A slot no master serves.
const NO_MASTER: u16 = u16::MAX;

/// Which master serves each slot, and the connections to each master.
struct Routing {
    /// Each slot's master, as an index into `masters` (`NO_MASTER`: none).
    owners: Vec<u16>,
    masters: Vec<(Server, Arc<Connections>)>,
}

impl Routing {
    fn serving(&self, key: &str) -> Option<&(Server, Arc<Connections>)> {
        let owner = *self
            .owners
            .get(usize::from(redis_keyslot(key.as_bytes())))?;
        self.masters.get(usize::from(owner))
    }

    /// This routing with `slot` served by `server`.
    fn with_owner(&self, slot: u16, server: &Server, node: &Arc<Connections>) -> Self {
        let mut masters = self.masters.clone();
        let index = match masters.iter().position(|(known, _)| known == server) {
            Some(index) => index,
            None => {
                masters.push((server.clone(), node.clone()));
                masters.len() - 1
            }
        };
        let mut owners = self.owners.clone();
        if let (Some(owner), Ok(index)) = (owners.get_mut(usize::from(slot)), u16::try_from(index))
        {
            *owner = index;
        }
        Self { owners, masters }
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

/// The slot and its new master, from a `MOVED <slot> <host>:<port>` error;
/// an empty host is the one that answered (`from`).
fn moved_to(e: &Error, from: &Server) -> Option<(u16, Server)> {
    let mut words = e.details().split_whitespace();
    if words.next()? != "MOVED" {
        return None;
    }
    let slot = words.next()?.parse().ok()?;
    let (host, port) = words.next()?.rsplit_once(':')?;
    let host = if host.is_empty() {
        from.host.to_string()
    } else {
        host.to_owned()
    };
    Some((slot, Server::new(host, port.parse().ok()?)))
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
        let masters = Self {
            config,
            seeds,
            routing: RwLock::new(Arc::new(Routing {
                owners: vec![NO_MASTER; SLOTS],
                masters: Vec::new(),
            })),
            nodes: Mutex::default(),
            last_read: tokio::sync::Mutex::new(Some(Instant::now())),
        };
        masters.install(&slots)?;
        Ok(masters)
    }

    fn routing(&self) -> Arc<Routing> {
        match self.routing.read() {
            Ok(routing) => routing.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_routing(&self, next: Routing) {
        let next = Arc::new(next);
        match self.routing.write() {
            Ok(mut routing) => *routing = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<Server, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connections to `server`, made now if there are none.
    fn connections_to(&self, server: &Server) -> Result<Arc<Connections>, Error> {
        let mut nodes = self.nodes();
        if let Some(node) = nodes.get_mut(server) {
            node.retired_at = None;
            return Ok(node.connections.clone());
        }
        let connections = Arc::new(Connections::new(&master_builder(&self.config, server))?);
        connections.connect();
        tracing::info!(master = %server, "connecting to a Redis Cluster master");
        nodes.insert(
            server.clone(),
            Node {
                connections: connections.clone(),
                retired_at: None,
            },
        );
        Ok(connections)
    }

    /// Routes by `slots`; nodes that serve none start retiring.
    fn install(&self, slots: &ClusterRouting) -> Result<(), Error> {
        let mut owners = vec![NO_MASTER; SLOTS];
        let mut masters: Vec<(Server, Arc<Connections>)> = Vec::new();
        for range in slots.slots() {
            let index = match masters
                .iter()
                .position(|(known, _)| *known == range.primary)
            {
                Some(index) => index,
                None => {
                    let node = self.connections_to(&range.primary)?;
                    masters.push((range.primary.clone(), node));
                    masters.len() - 1
                }
            };
            let index = u16::try_from(index).unwrap_or(NO_MASTER);
            for owner in owners
                .iter_mut()
                .take(usize::from(range.end) + 1)
                .skip(usize::from(range.start))
            {
                *owner = index;
            }
        }
        let now = Instant::now();
        for (server, node) in self.nodes().iter_mut() {
            let serves = masters.iter().any(|(master, _)| master == server);
            if !serves && node.retired_at.is_none() {
                tracing::info!(node = %server, "a Redis Cluster node no longer serves slots");
                node.retired_at = Some(now);
            }
        }
        self.set_routing(Routing { owners, masters });
        Ok(())
    }

    /// Closes the connections to nodes that have served no slot for `RETIRE_AFTER`.
    async fn close_retired(&self) {
        let retired: Vec<Arc<Connections>> = {
            let mut nodes = self.nodes();
            let done: Vec<Server> = nodes
                .iter()
                .filter(|(_, node)| {
                    node.retired_at
                        .is_some_and(|at| at.elapsed() >= RETIRE_AFTER)
                })
                .map(|(server, _)| server.clone())
                .collect();
            done.iter()
                .filter_map(|server| nodes.remove(server))
                .map(|node| node.connections)
                .collect()
        };
        for node in retired {
            node.close().await;
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
            self.read_slots_soon(Instant::now(), None);
            let slot = redis_keyslot(key.as_bytes());
            return Err(Error::new(
                ErrorKind::Cluster,
                format!("no master serves slot {slot}"),
            ));
        };
        let first = command(node.clone()).await;
        let failed_at = Instant::now();
        let moved = match &first {
            Err(e) => moved_to(e, server),
            Ok(_) => None,
        };
        let Some((slot, owner)) = moved else {
            return self.read_slots_after(first, failed_at, None);
        };
        // The command did not run (each is sent once: `master_builder`).
        // It goes to the master the answer names, as that master says
        // (another node's reading may lag behind the failover).
        let node = match self.connections_to(&owner) {
            Ok(node) => node,
            Err(e) => return self.read_slots_after(Err(e), failed_at, None),
        };
        self.set_routing(self.routing().with_owner(slot, &owner, &node));
        tracing::debug!(from = %server, to = %owner, slot, "a slot moved: the command goes again to its new master");
        self.read_slots_soon(failed_at, Some(owner.clone()));
        let again = command(node).await;
        self.read_slots_after(again, Instant::now(), Some(owner))
    }

    /// `result`, having asked for the slots to be read again if it says
    /// they may have moved.
    fn read_slots_after<R>(
        self: &Arc<Self>,
        result: Result<R, Error>,
        at: Instant,
        ask_first: Option<Server>,
    ) -> Result<R, Error> {
        if let Err(e) = &result
            && slots_may_have_moved(e)
        {
            self.read_slots_soon(at, ask_first);
        }
        result
    }

    /// Reads the slots again in the background (a failing command's caller
    /// gets its error now; the next command goes where the cluster says).
    /// Not while a reading runs: commands failing together ask once, and a
    /// later failure asks again.
    fn read_slots_soon(self: &Arc<Self>, failed_at: Instant, ask_first: Option<Server>) {
        if self.last_read.try_lock().is_err() {
            return;
        }
        let masters = self.clone();
        tokio::spawn(async move {
            masters.read_slots(failed_at, ask_first).await;
            tokio::time::sleep(RETIRE_AFTER).await;
            masters.close_retired().await;
        });
    }

    /// Reads the slots again, unless a reading started since `failed_at`:
    /// from `ask_first` if given (the master a `MOVED` named knows of its
    /// promotion), else from the masters, else from the URL's nodes.
    async fn read_slots(&self, failed_at: Instant, ask_first: Option<Server>) {
        let mut last_read = self.last_read.lock().await;
        if last_read.is_some_and(|read| read >= failed_at) {
            return;
        }
        *last_read = Some(Instant::now());
        let mut slots = None;
        if let Some(server) = &ask_first
            && let Ok(node) = self.connections_to(server)
        {
            slots = cluster_slots_of(node.pool.next_connected(), server)
                .await
                .ok();
        }
        if slots.is_none() {
            slots = self.read_slots_from_masters().await;
        }
        let slots = match slots {
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
        if let Err(e) = self.install(&slots) {
            tracing::error!(error = %e, "cannot connect to a Redis Cluster master");
        }
    }

    /// The slots as the first master that answers sees them, connected
    /// masters first (a master that is gone would take a timeout to say so).
    async fn read_slots_from_masters(&self) -> Option<ClusterRouting> {
        let routing = self.routing();
        let mut nodes: Vec<&(Server, Arc<Connections>)> = routing.masters.iter().collect();
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
    fn a_moved_answer_names_the_slot_and_its_new_master() {
        let from = Server::new("10.0.0.1", 7000);
        let moved =
            |details: &str| moved_to(&Error::new(ErrorKind::Cluster, details.to_owned()), &from);
        assert_eq!(
            moved("MOVED 8883 127.0.0.1:7102"),
            Some((8883, Server::new("127.0.0.1", 7102)))
        );
        assert_eq!(
            moved("MOVED 1 :7102"),
            Some((1, Server::new("10.0.0.1", 7102))),
            "an empty host is the node that answered"
        );
        assert_eq!(moved("ASK 8883 127.0.0.1:7102"), None);
        assert_eq!(moved("MOVED 8883"), None);
        assert_eq!(moved("CLUSTERDOWN The cluster is down"), None);
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
