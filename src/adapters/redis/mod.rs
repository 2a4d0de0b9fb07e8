//! The admission store on Redis: one hash-tagged key family per event, so that
//! every script touches one cluster slot, and every multi-key change is one Lua call.

mod servers;
mod window_counts;

use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};

use super::embedded::keyspace::Keyspace;
use servers::Servers;

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::door::WindowLimit;
use crate::domain::prequeue::{draw_from_bytes, draw_to_bytes};
use crate::domain::{EventId, Holder, LogEntry, LogPosition, Ticket, TokenKey, TokenKind};
use crate::ports::{
    AbortedJoin, AdmissionStore, AdmitOutcome, AdmitRequest, AllocateOutcome, AllocateRequest,
    Allocation, BackendError, BackendResult, Candidate, DoorRefusal, GapProbe, HeldOrder, HoldAsk,
    HoldOutcome, JoinCommit, LeaveOutcome, Leaving, LineCounters, LineLost, LineMessage,
    LineRecord, LineStart, LiveSeat, LogRead, PassTerms, SeatCounts, SeatState, SeatStore, SeatsAt,
    SellOutcome, VisitorPlace,
};

/// How long one command may take before the request gets a clear 503.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an admission step waits for a replica to have it before the
/// worker acknowledges its deliveries anyway: a replica that is down or far
/// behind must not stop the sale (docs/reliability.md, "Which writes need WAIT").
const REPLICA_WAIT: Duration = Duration::from_millis(200);
/// Log entries read per round trip when a view catches up.
const LOG_PAGE: i64 = 10_000;

/// A Lua script: by SHA on Redis, by source in the embedded keyspace, with
/// the keys it is called with. The key list is the one place the Rust side
/// says which keys, in which order; a unit test checks it against the
/// script's `-- KEYS:` header, which binds them to names in that order.
struct LuaScript {
    name: &'static str,
    redis: Script,
    source: Arc<str>,
    keys: &'static [KeyName],
}

impl LuaScript {
    fn new(name: &'static str, source: &'static str, keys: &'static [KeyName]) -> Self {
        Self {
            name,
            redis: Script::from_lua(source),
            source: Arc::from(source),
            keys,
        }
    }

    /// A reply this adapter does not know: a bug (a script and its caller
    /// drifted apart), never read as one of the known outcomes.
    fn unexpected(&self, reply: impl std::fmt::Debug) -> BackendError {
        BackendError::bug(format!(
            "unexpected reply from {}.lua: {reply:?}",
            self.name
        ))
    }
}

/// Where the keys live: Redis (one server, a Sentinel set's primary or a
/// cluster's masters), or the embedded keyspace (embedded mode), which runs
/// the same scripts with the same atomicity.
enum Kv {
    Redis(Servers),
    Embedded(Arc<Keyspace>),
}

impl Kv {
    /// A command whose first argument is its key (a keyless one, such as
    /// `PING`, is for [`Servers::ping`]).
    async fn call<R: FromValue>(&self, name: &'static str, args: Vec<Value>) -> BackendResult<R> {
        match self {
            Kv::Redis(servers) => {
                let key = args
                    .first()
                    .and_then(Value::as_str)
                    .ok_or_else(|| BackendError::bug(format!("{name} sent without a key")))?;
                servers
                    .on(&key, |node| {
                        let args = args.clone();
                        async move {
                            let command =
                                CustomCommand::new_static(name, ClusterHash::FirstKey, false);
                            node.pool.next().custom(command, args).await
                        }
                    })
                    .await
                    .map_err(redis_error)
            }
            Kv::Embedded(keyspace) => keyspace
                .call(name, args)
                .await?
                .convert()
                .map_err(redis_error),
        }
    }

    async fn eval<R: FromValue>(
        &self,
        script: &LuaScript,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> BackendResult<R> {
        match self {
            Kv::Redis(servers) => servers
                .on(first_key(&keys)?, |node| {
                    let (keys, args) = (keys.clone(), args.clone());
                    async move {
                        let reply = script
                            .redis
                            .evalsha_with_reload(node.pool.next(), keys, args);
                        reply.await
                    }
                })
                .await
                .map_err(redis_error),
            Kv::Embedded(keyspace) => keyspace
                .eval(&script.source, keys, args)
                .await?
                .convert()
                .map_err(redis_error),
        }
    }

    async fn ping(&self) -> BackendResult<()> {
        match self {
            Kv::Redis(servers) => servers.ping().await.map_err(redis_error),
            Kv::Embedded(keyspace) => keyspace
                .call("PING", Vec::new())
                .await?
                .convert::<String>()
                .map(drop)
                .map_err(redis_error),
        }
    }
}

/// A script's first key, which routes it (all of a script's keys share one slot).
fn first_key(keys: &[String]) -> BackendResult<&str> {
    keys.first()
        .map(String::as_str)
        .ok_or_else(|| BackendError::bug("a script sent without a key"))
}

/// Whether a write reached a replica before the caller went on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replication {
    /// The node has no replica (or it is the embedded keyspace): nothing to wait for.
    NoReplica,
    Replicated,
    /// No replica had it within the wait: it survives a failover only if the
    /// replica catches up before one.
    NotReplicated,
}

impl Kv {
    /// Runs `script` as [`Self::eval`] does; then, when the node has replicas
    /// (`replicas`, read from the script's reply), waits up to `within` for one
    /// of them to have every write made so far on the connection that ran it
    /// (`WAIT 1` on that node: writes on other connections are not its concern).
    async fn eval_replicated<R: FromValue>(
        &self,
        script: &LuaScript,
        keys: Vec<String>,
        args: Vec<Value>,
        replicas: impl FnOnce(&R) -> BackendResult<u64>,
        within: Duration,
    ) -> BackendResult<(R, Replication)> {
        let Kv::Redis(servers) = self else {
            return Ok((self.eval(script, keys, args).await?, Replication::NoReplica));
        };
        let (reply, node): (R, _) = servers
            .on(first_key(&keys)?, |node| {
                let (keys, args) = (keys.clone(), args.clone());
                async move {
                    let reply = script
                        .redis
                        .evalsha_with_reload(&node.replicated, keys, args)
                        .await?;
                    Ok((reply, node))
                }
            })
            .await
            .map_err(redis_error)?;
        if replicas(&reply)? == 0 {
            return Ok((reply, Replication::NoReplica));
        }
        let timeout_ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        // The script's writes are made whatever WAIT answers: its failure must
        // not turn them into a step that "failed" (and be counted unspent).
        let replication = match node.replicated.wait::<i64>(1, timeout_ms).await {
            Ok(n) if n >= 1 => Replication::Replicated,
            Ok(_) => Replication::NotReplicated,
            Err(e) => {
                tracing::warn!(error = %e, "WAIT after an admission step failed");
                Replication::NotReplicated
            }
        };
        Ok((reply, replication))
    }
}

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<Value> {
    items.into_iter().map(|s| Value::from(s.into())).collect()
}

struct Scripts {
    allocate: LuaScript,
    commit_joins: LuaScript,
    abort_joins: LuaScript,
    leave: LuaScript,
    freeze: LuaScript,
    publish_draw: LuaScript,
    probe_gaps: LuaScript,
    admit: LuaScript,
    hold: LuaScript,
    release: LuaScript,
    sell: LuaScript,
    rebuild: LuaScript,
    start_line: LuaScript,
    extend_reservation: LuaScript,
    read_log: LuaScript,
    seats_ready: LuaScript,
    seat_changes: LuaScript,
    counters: LuaScript,
}

/// A script of lua/, by its file name, with the keys it is called with.
/// Every script starts with lua/fence.lua (which node serves its keys);
/// `writes_log` also prepends lua/log_entry.lua, the one encoding of log entries;
/// `changes_seats` prepends lua/seat_log.lua, which versions every change of a seat's state.
macro_rules! script {
    ($name:literal, [$($key:ident),* $(,)?]) => {
        LuaScript::new(
            $name,
            concat!(
                include_str!("lua/fence.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
            &[$(KeyName::$key),*],
        )
    };
    ($name:literal, writes_log, [$($key:ident),* $(,)?]) => {
        LuaScript::new(
            $name,
            concat!(
                include_str!("lua/fence.lua"),
                include_str!("lua/log_entry.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
            &[$(KeyName::$key),*],
        )
    };
    ($name:literal, changes_seats, [$($key:ident),* $(,)?]) => {
        LuaScript::new(
            $name,
            concat!(
                include_str!("lua/fence.lua"),
                include_str!("lua/seat_log.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
            &[$(KeyName::$key),*],
        )
    };
}

/// The window of `limit` that places joined at `now_ms` count in.
fn address_window(limit: WindowLimit, now_ms: i64) -> u64 {
    limit.window(now_ms.div_euclid(1000))
}

impl Scripts {
    fn new() -> Self {
        Self {
            allocate: script!(
                "allocate",
                writes_log,
                [
                    Line,
                    Visitors,
                    Log,
                    Seen,
                    PrequeueIds,
                    Left,
                    Active,
                    Draw,
                    UsedChallenges,
                    AddressPlaces
                ]
            ),
            commit_joins: script!(
                "commit_joins",
                writes_log,
                [Line, Visitors, Left, Log, Active]
            ),
            abort_joins: script!("abort_joins", [Failed, UsedChallenges, AddressPlaces]),
            leave: script!(
                "leave",
                writes_log,
                [Line, Active, Left, Log, UnknownPasses, HonouredPasses]
            ),
            freeze: script!("freeze", writes_log, [Line, Log, Failed]),
            publish_draw: script!("publish_draw", writes_log, [Draw, Log]),
            probe_gaps: script!("probe_gaps", [Line, Failed, Seen]),
            admit: script!(
                "admit",
                writes_log,
                [
                    Line,
                    Active,
                    Left,
                    Seen,
                    Log,
                    SeatCounts,
                    UnknownPasses,
                    Failed,
                    SeatsReady
                ]
            ),
            hold: script!(
                "hold",
                changes_seats,
                [
                    Seats,
                    Holders,
                    SeatCounts,
                    SeatsReady,
                    Active,
                    Holds,
                    HoldSeats,
                    Line,
                    UnknownPasses,
                    HonouredPasses,
                    SeatVersion,
                    SeatLog
                ]
            ),
            release: script!(
                "release",
                changes_seats,
                [
                    Seats,
                    Holders,
                    SeatCounts,
                    SeatsReady,
                    Holds,
                    HoldSeats,
                    SeatVersion,
                    SeatLog
                ]
            ),
            sell: script!(
                "sell",
                changes_seats,
                [
                    Seats,
                    SeatCounts,
                    SeatsReady,
                    Holds,
                    HoldSeats,
                    SeatVersion,
                    SeatLog
                ]
            ),
            rebuild: script!(
                "rebuild",
                changes_seats,
                [
                    Seats,
                    Holders,
                    SeatCounts,
                    SeatsReady,
                    Holds,
                    HoldSeats,
                    SeatVersion,
                    SeatLog
                ]
            ),
            start_line: script!(
                "start_line",
                writes_log,
                [Line, Log, Draw, UnknownPasses, Active, HonouredPasses]
            ),
            extend_reservation: script!("extend_reservation", [Line]),
            read_log: script!("read_log", [Line, Log]),
            seats_ready: script!("seats_ready", [SeatsReady]),
            seat_changes: script!("seat_changes", [Seats, SeatsReady, SeatVersion, SeatLog]),
            counters: script!("counters", [Line, Active, UnknownPasses]),
        }
    }

    /// Every script, for the tests that check them all. The pattern names every
    /// field, so a new script that is not listed here does not compile.
    #[cfg(test)]
    fn all(&self) -> [&LuaScript; 18] {
        let Scripts {
            allocate,
            commit_joins,
            abort_joins,
            leave,
            freeze,
            publish_draw,
            probe_gaps,
            admit,
            hold,
            release,
            sell,
            rebuild,
            start_line,
            extend_reservation,
            read_log,
            seats_ready,
            seat_changes,
            counters,
        } = self;
        [
            allocate,
            commit_joins,
            abort_joins,
            leave,
            freeze,
            publish_draw,
            probe_gaps,
            admit,
            hold,
            release,
            sell,
            rebuild,
            start_line,
            extend_reservation,
            read_log,
            seats_ready,
            seat_changes,
            counters,
        ]
    }
}

pub struct RedisStore {
    kv: Kv,
    namespace: String,
    scripts: Scripts,
}

/// A command Redis refused as malformed, or a reply that does not convert,
/// is ours to fix; anything else (connection, timeout, failover) passes.
fn redis_error(e: fred::error::Error) -> BackendError {
    use fred::error::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidCommand
        | ErrorKind::InvalidArgument
        | ErrorKind::Parse
        | ErrorKind::NotFound => BackendError::bug_caused_by("redis refused a command", e),
        _ => BackendError::unavailable("redis", e),
    }
}

/// Data in the store that no version of Anteroom writes.
fn malformed(what: impl std::fmt::Display) -> BackendError {
    BackendError::bug(format!("malformed data in redis: {what}"))
}

/// One key of an event's line, by the name the scripts' `-- KEYS:` headers use
/// (also the key's suffix in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyName {
    Line,
    Visitors,
    Seen,
    Left,
    Failed,
    Active,
    Log,
    /// Stand-ins for the passes a restored line could not name: how many expire when.
    UnknownPasses,
    /// Passes from before a restore that have been honoured once.
    HonouredPasses,
    Draw,
    PrequeueIds,
    Seats,
    Holders,
    SeatCounts,
    SeatsReady,
    Holds,
    HoldSeats,
    /// The seat state's version (lua/seat_log.lua).
    SeatVersion,
    /// The seats that changed in the last versions, by version.
    SeatLog,
    /// The join challenges that have bought a place, until they expire.
    UsedChallenges,
    /// New places per client address in the current window of the event's address limit.
    AddressPlaces,
    /// How many joins each defence of the door refused.
    Refusals,
}

impl KeyName {
    const ALL: [KeyName; 22] = [
        KeyName::Line,
        KeyName::Visitors,
        KeyName::Seen,
        KeyName::Left,
        KeyName::Failed,
        KeyName::Active,
        KeyName::Log,
        KeyName::UnknownPasses,
        KeyName::HonouredPasses,
        KeyName::Draw,
        KeyName::PrequeueIds,
        KeyName::Seats,
        KeyName::Holders,
        KeyName::SeatCounts,
        KeyName::SeatsReady,
        KeyName::Holds,
        KeyName::HoldSeats,
        KeyName::SeatVersion,
        KeyName::SeatLog,
        KeyName::UsedChallenges,
        KeyName::AddressPlaces,
        KeyName::Refusals,
    ];

    fn name(self) -> &'static str {
        match self {
            KeyName::Line => "line",
            KeyName::Visitors => "visitors",
            KeyName::Seen => "seen",
            KeyName::Left => "left",
            KeyName::Failed => "failed",
            KeyName::Active => "active",
            KeyName::Log => "log",
            KeyName::UnknownPasses => "unknown_passes",
            KeyName::HonouredPasses => "honoured_passes",
            KeyName::Draw => "draw",
            KeyName::PrequeueIds => "prequeue_ids",
            KeyName::Seats => "seats",
            KeyName::Holders => "holders",
            KeyName::SeatCounts => "seat_counts",
            KeyName::SeatsReady => "seats_ready",
            KeyName::Holds => "holds",
            KeyName::HoldSeats => "hold_seats",
            KeyName::SeatVersion => "seat_version",
            KeyName::SeatLog => "seat_log",
            KeyName::UsedChallenges => "used_challenges",
            KeyName::AddressPlaces => "address_places",
            KeyName::Refusals => "refusals",
        }
    }
}

/// The keys of one event's line, all in the `{namespace:event}` hash slot.
struct Keys(String);

impl Keys {
    fn get(&self, key: KeyName) -> String {
        format!("{}:{}", self.0, key.name())
    }
    fn line(&self) -> String {
        self.get(KeyName::Line)
    }
    fn seen(&self) -> String {
        self.get(KeyName::Seen)
    }
    fn draw(&self) -> String {
        self.get(KeyName::Draw)
    }
    fn prequeue_ids(&self) -> String {
        self.get(KeyName::PrequeueIds)
    }
    fn seats(&self) -> String {
        self.get(KeyName::Seats)
    }
    fn seat_counts(&self) -> String {
        self.get(KeyName::SeatCounts)
    }
    fn holds(&self) -> String {
        self.get(KeyName::Holds)
    }
    fn hold_seats(&self) -> String {
        self.get(KeyName::HoldSeats)
    }
    fn all(&self) -> Vec<String> {
        KeyName::ALL.iter().map(|&key| self.get(key)).collect()
    }
}

impl RedisStore {
    pub async fn connect(url: &str, namespace: &str) -> BackendResult<Self> {
        let servers = Servers::connect(url).await.map_err(redis_error)?;
        Ok(Self::over(Kv::Redis(servers), namespace))
    }

    /// Closes the connections to Redis; the embedded keyspace closes when dropped.
    pub async fn close(&self) {
        if let Kv::Redis(servers) = &self.kv {
            servers.close().await;
        }
    }

    /// The store over the embedded keyspace (embedded mode).
    pub fn embedded(keyspace: Arc<Keyspace>, namespace: &str) -> Self {
        Self::over(Kv::Embedded(keyspace), namespace)
    }

    fn over(kv: Kv, namespace: &str) -> Self {
        Self {
            kv,
            namespace: namespace.to_owned(),
            scripts: Scripts::new(),
        }
    }

    /// Removes every key of the given events' lines (test and demo clean-up).
    pub async fn delete_lines(&self, events: &[EventId]) -> BackendResult<()> {
        for event in events {
            let k = self.keys(event);
            let _: i64 = self.kv.call("DEL", strings(k.all())).await?;
        }
        Ok(())
    }

    fn keys(&self, event: &EventId) -> Keys {
        Keys(format!("{{{}:{}}}", self.namespace, event))
    }

    /// Runs a script on one event's line, with the keys its key list names.
    async fn run<R, V>(&self, script: &LuaScript, event: &EventId, args: Vec<V>) -> BackendResult<R>
    where
        R: FromValue,
        V: Into<Value> + Send,
    {
        let k = self.keys(event);
        let keys = script.keys.iter().map(|&key| k.get(key)).collect();
        self.kv
            .eval(script, keys, args.into_iter().map(Into::into).collect())
            .await
    }

    /// Whether the event's seat state can be read as it is (lua/seats_ready.lua).
    async fn seats_ready(&self, event: &EventId) -> BackendResult<bool> {
        let ready: i64 = self
            .run(&self.scripts.seats_ready, event, Vec::<Value>::new())
            .await?;
        Ok(ready == 1)
    }
}

fn parse_entry(raw: &str) -> BackendResult<Option<LineMessage>> {
    if raw.is_empty() {
        return Ok(None);
    }
    LineMessage::decode(raw.as_bytes())
        .map(Some)
        .ok_or_else(|| malformed(format!("line entry {raw:?}")))
}

/// An allocation's answer for one visitor id: its live entry, `~` and its
/// ended entry, nothing, or the door's refusal.
fn parse_visitor_place(raw: &str) -> BackendResult<VisitorPlace> {
    Ok(match raw {
        "!required" => VisitorPlace::Refused(DoorRefusal::ChallengeRequired),
        "!used" => VisitorPlace::Refused(DoorRefusal::ChallengeUsed),
        "!address" => VisitorPlace::Refused(DoorRefusal::TooManyPlaces),
        _ => match raw.strip_prefix('~') {
            Some(ended) => parse_entry(ended)?.map_or(VisitorPlace::None, VisitorPlace::Ended),
            None => parse_entry(raw)?.map_or(VisitorPlace::None, VisitorPlace::Live),
        },
    })
}

fn parse_num<T: std::str::FromStr>(raw: &str) -> BackendResult<T> {
    raw.parse()
        .map_err(|_| malformed(format!("expected a number, got {raw:?}")))
}

#[async_trait]
impl AdmissionStore for RedisStore {
    async fn start_line(
        &self,
        event: &EventId,
        start: &LineStart,
        now_ms: i64,
    ) -> BackendResult<bool> {
        let (mode, record, passes, ended) = match start {
            LineStart::Open { reserved } => (
                "open",
                LineRecord {
                    reserved: *reserved,
                    ..Default::default()
                },
                &[][..],
                &[][..],
            ),
            LineStart::Restore {
                record,
                passes,
                ended,
            } => (
                "restore",
                record.clone(),
                passes.as_slice(),
                ended.as_slice(),
            ),
        };
        let mut args: Vec<Value> = strings([
            mode.to_owned(),
            now_ms.to_string(),
            record.reserved.regular.to_string(),
            record.reserved.prequeue.to_string(),
            record.prequeue.map(|p| p.to_string()).unwrap_or_default(),
        ]);
        args.push(
            record
                .draw
                .as_deref()
                .map(draw_to_bytes)
                .map_or(Value::from(""), |b| Value::Bytes(b.into())),
        );
        args.push(Value::from(ended.len().to_string()));
        args.extend(ended.iter().map(|key| Value::from(key.to_string())));
        for (expires_at_ms, count) in passes {
            args.extend(strings([expires_at_ms.to_string(), count.to_string()]));
        }
        let script = &self.scripts.start_line;
        let started: i64 = self.run(script, event, args).await?;
        match started {
            1 => Ok(true),
            0 => Ok(false),
            other => Err(script.unexpected(other)),
        }
    }

    async fn extend_reservation(
        &self,
        event: &EventId,
        kind: TokenKind,
        reserved: u64,
    ) -> BackendResult<()> {
        let field = if kind == TokenKind::PreQueue {
            "prelimit"
        } else {
            "limit"
        };
        let args = vec![field.to_owned(), reserved.to_string()];
        let script = &self.scripts.extend_reservation;
        let extended: i64 = self.run(script, event, args).await?;
        match extended {
            1 => Ok(()),
            0 => Err(LineLost {
                event: event.clone(),
            }
            .into()),
            other => Err(script.unexpected(other)),
        }
    }

    async fn allocate(
        &self,
        event: &EventId,
        open: bool,
        requests: &[AllocateRequest<'_>],
        address_limit: Option<WindowLimit>,
        now_ms: i64,
    ) -> BackendResult<AllocateOutcome> {
        let address_limit = address_limit.map_or_else(String::new, |limit| {
            format!("{}:{}", limit.per_window, address_window(limit, now_ms))
        });
        let mut args = vec![
            if open { "1" } else { "0" }.to_owned(),
            now_ms.to_string(),
            address_limit,
        ];
        for request in requests {
            args.push(request.visitor.unwrap_or_default().to_owned());
            args.push(request.token_id.to_string());
            args.push(match request.ticket {
                Ticket::NotAsked => String::new(),
                Ticket::Unsolved => "-".to_owned(),
                Ticket::Solved(solved) => format!("{}@{}", solved.id, solved.expires_at_ms),
            });
            args.push(request.address.unwrap_or_default().to_owned());
        }
        let script = &self.scripts.allocate;
        let reply: Vec<String> = self.run(script, event, args).await?;
        let kind_of = |tag: &str| match tag {
            "p" => Ok(TokenKind::PreQueue),
            "r" => Ok(TokenKind::Regular),
            _ => Err(script.unexpected(&reply)),
        };
        match reply.as_slice() {
            [lost] if lost == "lost" => Err(LineLost {
                event: event.clone(),
            }
            .into()),
            [reserve, kind, needed] if reserve == "reserve" => Ok(AllocateOutcome::Reserve {
                kind: kind_of(kind)?,
                at_least: parse_num(needed)?,
            }),
            // One place per request, no more, no fewer: the caller indexes its requests by them.
            [kind, first_seq, prequeue, existing @ ..] if existing.len() == requests.len() => {
                Ok(AllocateOutcome::Allocated(Allocation {
                    kind: kind_of(kind)?,
                    first_seq: parse_num(first_seq)?,
                    prequeue: if prequeue.is_empty() {
                        None
                    } else {
                        Some(parse_num(prequeue)?)
                    },
                    existing: existing
                        .iter()
                        .map(|e| parse_visitor_place(e))
                        .collect::<BackendResult<_>>()?,
                }))
            }
            _ => Err(script.unexpected(&reply)),
        }
    }

    async fn commit_joins(
        &self,
        event: &EventId,
        joins: &[JoinCommit<'_>],
    ) -> BackendResult<Vec<Option<LineMessage>>> {
        let mut args = Vec::with_capacity(joins.len() * 3);
        for join in joins {
            args.push(join.message.encode());
            args.push(join.visitor.unwrap_or_default().to_owned());
            args.push(join.replaces.map(|m| m.encode()).unwrap_or_default());
        }
        let script = &self.scripts.commit_joins;
        let reply: Vec<String> = self.run(script, event, args).await?;
        if reply.len() != joins.len() {
            return Err(script.unexpected(&reply));
        }
        reply.iter().map(|e| parse_entry(e)).collect()
    }

    async fn abort_joins(
        &self,
        event: &EventId,
        joins: &[AbortedJoin<'_>],
        address_limit: Option<WindowLimit>,
        now_ms: i64,
    ) -> BackendResult<()> {
        if joins.is_empty() {
            return Ok(());
        }
        let mut args = Vec::with_capacity(1 + joins.len() * 3);
        args.push(address_limit.map_or_else(String::new, |limit| {
            address_window(limit, now_ms).to_string()
        }));
        for join in joins {
            args.push(join.key.to_string());
            args.push(match join.request.ticket {
                Ticket::Solved(solved) => solved.id.clone(),
                Ticket::NotAsked | Ticket::Unsolved => String::new(),
            });
            args.push(join.request.address.unwrap_or_default().to_owned());
        }
        let _: i64 = self.run(&self.scripts.abort_joins, event, args).await?;
        Ok(())
    }

    async fn heartbeat(&self, event: &EventId, keys: &[TokenKey], now_s: i64) -> BackendResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = now_s.to_string();
        let fields = keys.iter().flat_map(|k| [k.to_string(), now.clone()]);
        let _: i64 = self
            .kv
            .call(
                "HSET",
                strings(std::iter::once(self.keys(event).seen()).chain(fields)),
            )
            .await?;
        Ok(())
    }

    async fn leave(
        &self,
        event: &EventId,
        key: TokenKey,
        rank: Option<u64>,
        pass: Option<PassTerms>,
        now_ms: i64,
    ) -> BackendResult<Leaving> {
        let rank = rank.map(|r| r.to_string()).unwrap_or_default();
        let (issued_at_ms, expires_at_ms) = pass.map_or_else(Default::default, |pass| {
            (
                pass.issued_at_ms.to_string(),
                pass.expires_at_ms.to_string(),
            )
        });
        let args = vec![
            key.to_string(),
            rank,
            issued_at_ms,
            expires_at_ms,
            now_ms.to_string(),
        ];
        let script = &self.scripts.leave;
        let reply: Vec<String> = self.run(script, event, args).await?;
        let [outcome, epoch, entries] = reply.as_slice() else {
            return Err(script.unexpected(&reply));
        };
        let outcome = match outcome.as_str() {
            "left" => LeaveOutcome::Left,
            "ended" => LeaveOutcome::PassEnded,
            "gone" => LeaveOutcome::AlreadyGone,
            _ => return Err(script.unexpected(&reply)),
        };
        let logged_at = match epoch.as_str() {
            "" => None,
            _ => Some(
                LogPosition::from_parts(entries, epoch).ok_or_else(|| script.unexpected(&reply))?,
            ),
        };
        Ok(Leaving { outcome, logged_at })
    }

    async fn read_log(&self, event: &EventId, from: u64) -> BackendResult<LogRead> {
        let start = i64::try_from(from)
            .map_err(|e| BackendError::bug_caused_by("a log position beyond i64", e))?;
        let range = vec![start.to_string(), (start + LOG_PAGE - 1).to_string()];
        let script = &self.scripts.read_log;
        let reply: Vec<String> = self.run(script, event, range).await?;
        let [epoch, lost, restored, entries @ ..] = reply.as_slice() else {
            return Err(script.unexpected(&reply));
        };
        let flag = |raw: &str, set: &str| match raw {
            "" => Ok(false),
            _ if raw == set => Ok(true),
            _ => Err(script.unexpected(&reply[..3])),
        };
        Ok(LogRead {
            epoch: epoch.clone(),
            lost: flag(lost, "lost")?,
            restored: flag(restored, "restored")?,
            entries: entries
                .iter()
                .map(|r| r.parse::<LogEntry>().map_err(malformed))
                .collect::<BackendResult<_>>()?,
        })
    }

    async fn read_draw(&self, event: &EventId) -> BackendResult<Option<Vec<u32>>> {
        let raw: Option<Vec<u8>> = self
            .kv
            .call("GET", strings([self.keys(event).draw()]))
            .await?;
        Ok(raw.map(|bytes| draw_from_bytes(&bytes)))
    }

    async fn counters(&self, event: &EventId, now_ms: i64) -> BackendResult<LineCounters> {
        let script = &self.scripts.counters;
        let reply: Vec<u64> = self.run(script, event, vec![now_ms]).await?;
        let [joined, admitted, abandoned, left_waiting, active] = reply[..] else {
            return Err(script.unexpected(&reply));
        };
        Ok(LineCounters {
            joined,
            admitted,
            abandoned,
            left_waiting,
            active,
        })
    }

    async fn freeze_prequeue(&self, event: &EventId) -> BackendResult<(u64, Vec<TokenKey>)> {
        let script = &self.scripts.freeze;
        let reply: Vec<String> = self.run(script, event, Vec::<String>::new()).await?;
        let (size, failed) = reply
            .split_first()
            .ok_or_else(|| script.unexpected(&reply))?;
        if size == "lost" {
            return Err(LineLost {
                event: event.clone(),
            }
            .into());
        }
        let size = size.parse().map_err(|_| script.unexpected(&reply))?;
        let failed = failed
            .iter()
            .map(|f| TokenKey::parse(f).ok_or_else(|| script.unexpected(&reply)))
            .collect::<BackendResult<_>>()?;
        Ok((size, failed))
    }

    async fn publish_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>> {
        let blob = draw_to_bytes(draw);
        let reply: Vec<u8> = self
            .run(
                &self.scripts.publish_draw,
                event,
                vec![Value::Bytes(blob.into())],
            )
            .await?;
        Ok(draw_from_bytes(&reply))
    }

    async fn consumed(&self, event: &EventId) -> BackendResult<u64> {
        let v: Option<u64> = self
            .kv
            .call(
                "HGET",
                strings([self.keys(event).line(), "consumed".into()]),
            )
            .await?;
        Ok(v.unwrap_or(0))
    }

    async fn probe_gaps(&self, event: &EventId, keys: &[TokenKey]) -> BackendResult<Vec<GapProbe>> {
        let args: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let script = &self.scripts.probe_gaps;
        let reply: Vec<String> = self.run(script, event, args).await?;
        if reply.len() != keys.len() {
            return Err(script.unexpected(&reply));
        }
        reply
            .iter()
            .map(|probe| match probe.split_once(':') {
                None if probe == "unallocated" => Ok(GapProbe::NotAllocated),
                None if probe == "failed" => Ok(GapProbe::Failed),
                Some(("pending", since)) => Ok(GapProbe::Pending {
                    since_s: since.parse().map_err(|_| script.unexpected(probe))?,
                }),
                _ => Err(script.unexpected(probe)),
            })
            .collect()
    }

    async fn prequeue_entrants(&self, event: &EventId) -> BackendResult<Vec<(u64, Uuid)>> {
        let ids: HashMap<String, String> = self
            .kv
            .call("HGETALL", strings([self.keys(event).prequeue_ids()]))
            .await?;
        ids.into_iter()
            .map(|(seq, id)| Ok((parse_num(&seq)?, Uuid::parse_str(&id).map_err(malformed)?)))
            .collect()
    }

    async fn admit(
        &self,
        event: &EventId,
        candidates: &[Candidate],
        r: AdmitRequest,
    ) -> BackendResult<AdmitOutcome> {
        let first_rank = candidates.first().map_or(0, Candidate::rank);
        // The script reads each candidate's rank from its position.
        let contiguous = candidates
            .iter()
            .zip(first_rank..)
            .all(|(c, rank)| c.rank() == rank);
        if !contiguous {
            return Err(BackendError::bug(
                "admission candidates with a gap in their ranks",
            ));
        }
        let mut args = Vec::with_capacity(8 + candidates.len());
        args.extend([
            r.now_ms.to_string(),
            r.pass_ms.to_string(),
            r.max_active.to_string(),
            r.seen_cutoff_s.to_string(),
            r.max_admit.to_string(),
            r.seats_total.to_string(),
            r.consumed_floor.to_string(),
            first_rank.to_string(),
        ]);
        args.extend(candidates.iter().map(|c| match c {
            Candidate::Arrived { key, .. } => key.to_string(),
            Candidate::Absent { key: Some(key), .. } => format!("!{key}"),
            Candidate::Absent { key: None, .. } => String::new(),
        }));
        let script = &self.scripts.admit;
        let k = self.keys(event);
        let keys = script.keys.iter().map(|&key| k.get(key)).collect();
        // A step that stored nothing ("lost") has nothing to replicate; any
        // other reply is checked in full below.
        let replicas = |reply: &Vec<String>| match reply.as_slice() {
            [_, _, _, replicas] => parse_num(replicas),
            _ => Ok(0),
        };
        // The worker acknowledges the step's deliveries to RabbitMQ once this
        // returns: from then on the step is only in Redis, so a replica must
        // have it to survive a failover.
        let (reply, replication) = self
            .kv
            .eval_replicated(script, keys, strings(args), replicas, REPLICA_WAIT)
            .await?;
        if replication == Replication::NotReplicated {
            metrics::counter!("anteroom_admission_steps_unreplicated_total", "event" => event.to_string())
                .increment(1);
            tracing::warn!(%event, within = ?REPLICA_WAIT, "an admission step reached no replica in time; acknowledged on the primary's word");
        }
        match reply.as_slice() {
            [lost] if lost == "lost" => Err(LineLost {
                event: event.clone(),
            }
            .into()),
            [consumed, admitted, room, _replicas] => Ok(AdmitOutcome {
                consumed: parse_num(consumed)?,
                admitted: parse_num(admitted)?,
                room: parse_num(room)?,
            }),
            _ => Err(script.unexpected(&reply)),
        }
    }

    async fn ping(&self) -> BackendResult<()> {
        self.kv.ping().await
    }
}

fn seat_args(order: Uuid, holder: &Holder, seats: &[String]) -> Vec<String> {
    let mut args = Vec::with_capacity(2 + seats.len());
    args.extend([order.to_string(), holder.as_str().to_owned()]);
    args.extend(seats.iter().cloned());
    args
}

#[async_trait]
impl SeatStore for RedisStore {
    async fn hold_group(
        &self,
        event: &EventId,
        asks: &[HoldAsk],
    ) -> BackendResult<Vec<HoldOutcome>> {
        let mut args = Vec::with_capacity(asks.iter().map(|a| 8 + a.seats.len()).sum());
        for ask in asks {
            args.extend([
                ask.order.to_string(),
                ask.holder.as_str().to_owned(),
                ask.pass.key.to_string(),
                ask.max_per_holder.to_string(),
                ask.now_ms.to_string(),
                ask.pass.issued_at_ms.to_string(),
                ask.pass.expires_at_ms.to_string(),
                ask.seats.len().to_string(),
            ]);
            args.extend(ask.seats.iter().cloned());
        }
        let script = &self.scripts.hold;
        let reply: Vec<String> = self.run(script, event, args).await?;
        match reply.as_slice() {
            [tag] if tag == "rebuild" => return Ok(vec![HoldOutcome::NeedsRebuild; asks.len()]),
            [tag] if tag == "lost" => {
                return Err(LineLost {
                    event: event.clone(),
                }
                .into());
            }
            _ => {}
        }
        let unexpected = || script.unexpected(&reply);
        let [held, sold, answers @ ..] = reply.as_slice() else {
            return Err(unexpected());
        };
        let counts = SeatCounts {
            held: parse_num(held)?,
            sold: parse_num(sold)?,
        };
        let mut answers = answers.iter();
        let mut outcomes = Vec::with_capacity(asks.len());
        while let Some(tag) = answers.next() {
            let listed: usize = parse_num(answers.next().ok_or_else(unexpected)?)?;
            let seats: Vec<String> = answers.by_ref().take(listed).cloned().collect();
            if seats.len() != listed {
                return Err(unexpected());
            }
            outcomes.push(match (tag.as_str(), seats.is_empty()) {
                ("held", true) => HoldOutcome::Held(counts),
                ("taken", false) => HoldOutcome::Taken(seats),
                ("limit", true) => HoldOutcome::LimitExceeded,
                ("pass", true) => HoldOutcome::PassEnded,
                _ => return Err(unexpected()),
            });
        }
        if outcomes.len() != asks.len() {
            return Err(unexpected());
        }
        Ok(outcomes)
    }

    async fn release(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<()> {
        // The reply is how many seats were freed; none is as good as any.
        let _: i64 = self
            .run(
                &self.scripts.release,
                event,
                seat_args(order, holder, seats),
            )
            .await?;
        Ok(())
    }

    async fn sell(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<SellOutcome> {
        let script = &self.scripts.sell;
        let reply: String = self
            .run(script, event, seat_args(order, holder, seats))
            .await?;
        match reply.as_str() {
            "sold" => Ok(SellOutcome::Sold),
            "lost" => Ok(SellOutcome::Lost),
            "rebuild" => Ok(SellOutcome::NeedsRebuild),
            _ => Err(script.unexpected(reply)),
        }
    }

    async fn rebuild(
        &self,
        event: &EventId,
        live: &[LiveSeat],
        force: bool,
        now_ms: i64,
    ) -> BackendResult<()> {
        let mut args = Vec::with_capacity(2 + live.len() * 4);
        args.push(if force { "1" } else { "0" }.to_owned());
        args.push(now_ms.to_string());
        for seat in live {
            args.extend([
                seat.seat.clone(),
                if seat.sold { "s" } else { "h" }.to_owned(),
                seat.order.to_string(),
                seat.holder.as_str().to_owned(),
            ]);
        }
        let script = &self.scripts.rebuild;
        // 1 when rebuilt, 0 when the seat state was there already: both are fine.
        let rebuilt: i64 = self.run(script, event, args).await?;
        match rebuilt {
            0 | 1 => Ok(()),
            other => Err(script.unexpected(other)),
        }
    }

    async fn holds_before(&self, event: &EventId, before_ms: i64) -> BackendResult<Vec<HeldOrder>> {
        let k = self.keys(event);
        let orders: Vec<String> = self
            .kv
            .call(
                "ZRANGEBYSCORE",
                strings([k.holds(), "-inf".into(), before_ms.to_string()]),
            )
            .await?;
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let details: Vec<Option<String>> = self
            .kv
            .call(
                "HMGET",
                strings(std::iter::once(k.hold_seats()).chain(orders.iter().cloned())),
            )
            .await?;
        orders
            .iter()
            .zip(details)
            .filter_map(|(order, detail)| Some((order, detail?)))
            .map(|(order, detail)| {
                let (holder, seats) = detail
                    .split_once('|')
                    .ok_or_else(|| malformed("a hold record"))?;
                Ok(HeldOrder {
                    order: Uuid::parse_str(order).map_err(malformed)?,
                    holder: Holder::from_stored(holder.to_owned()),
                    seats: seats.split(',').map(str::to_owned).collect(),
                })
            })
            .collect()
    }

    async fn seat_states(
        &self,
        event: &EventId,
    ) -> BackendResult<Option<HashMap<String, SeatState>>> {
        let k = self.keys(event);
        if !self.seats_ready(event).await? {
            return Ok(None);
        }
        let taken: HashMap<String, String> = self.kv.call("HGETALL", strings([k.seats()])).await?;
        let states = taken
            .into_iter()
            .map(|(seat, value)| {
                (
                    seat,
                    if value.starts_with("s:") {
                        SeatState::Sold
                    } else {
                        SeatState::Held
                    },
                )
            })
            .collect();
        Ok(Some(states))
    }

    async fn seat_counts(&self, event: &EventId) -> BackendResult<Option<SeatCounts>> {
        let k = self.keys(event);
        if !self.seats_ready(event).await? {
            return Ok(None);
        }
        let counts: Vec<Option<i64>> = self
            .kv
            .call(
                "HMGET",
                strings([k.seat_counts(), "held".into(), "sold".into()]),
            )
            .await?;
        let field = |i: usize| counts.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
        Ok(Some(SeatCounts {
            held: field(0),
            sold: field(1),
        }))
    }

    async fn seats_since(
        &self,
        event: &EventId,
        since: Option<u64>,
        max_changes: u64,
    ) -> BackendResult<Option<SeatsAt>> {
        let since = since.map(|v| v.to_string()).unwrap_or_default();
        let script = &self.scripts.seat_changes;
        let reply: Vec<String> = self
            .run(script, event, vec![since, max_changes.to_string()])
            .await?;
        let (version, listed, pairs) = match reply.as_slice() {
            [rebuild] if rebuild == "rebuild" => return Ok(None),
            [version, listed, pairs @ ..] if pairs.len() % 2 == 0 => (version, listed, pairs),
            _ => return Err(script.unexpected(&reply)),
        };
        let version = parse_num(version)?;
        let seats = pairs
            .chunks_exact(2)
            .map(|pair| {
                let state =
                    SeatState::from_code(&pair[1]).ok_or_else(|| script.unexpected(pair))?;
                Ok((pair[0].clone(), state))
            })
            .collect::<BackendResult<Vec<_>>>()?;
        match listed.as_str() {
            "changes" => Ok(Some(SeatsAt::Changed { version, seats })),
            "taken" => Ok(Some(SeatsAt::Taken { version, seats })),
            _ => Err(script.unexpected(&reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Departure;
    use crate::domain::challenge::Solved;
    use crate::ports::Reserved;

    /// The key names of a script's `-- KEYS: a, b, c` header line, in order.
    fn header_keys(source: &str) -> Option<Vec<&str>> {
        let line = source
            .lines()
            .find_map(|line| line.strip_prefix("-- KEYS:"))?;
        Some(line.split(',').map(str::trim).collect())
    }

    /// The indices `n` of every `<table>[n]` with a literal number in `line`.
    fn numbered(line: &str, table: &str) -> Vec<usize> {
        line.match_indices(&format!("{table}["))
            .filter_map(|(at, found)| {
                let rest = &line[at + found.len()..];
                rest[..rest.find(']')?].parse().ok()
            })
            .collect()
    }

    #[test]
    fn every_script_header_names_the_keys_its_rust_call_passes_in_order() {
        for script in Scripts::new().all() {
            let header = header_keys(&script.source)
                .unwrap_or_else(|| panic!("{}.lua has no `-- KEYS:` line", script.name));
            let passed: Vec<&str> = script.keys.iter().map(|key| key.name()).collect();
            assert_eq!(
                header, passed,
                "{}.lua: header against the Rust call",
                script.name
            );
        }
    }

    #[test]
    fn every_script_uses_numbered_keys_and_arguments_only_in_its_local_bindings() {
        for script in Scripts::new().all() {
            let code = script.source.lines().filter(|line| !line.starts_with("--"));
            let mut bound_keys = Vec::new();
            for line in code {
                let keys = numbered(line, "KEYS");
                let args = numbered(line, "ARGV");
                if !keys.is_empty() || !args.is_empty() {
                    assert!(
                        line.starts_with("local "),
                        "{}.lua uses a numbered KEYS/ARGV outside its bindings: {line}",
                        script.name
                    );
                }
                bound_keys.extend(keys);
            }
            let expected: Vec<usize> = (1..=script.keys.len()).collect();
            assert_eq!(
                bound_keys, expected,
                "{}.lua binds KEYS[1..] in order, one name each",
                script.name
            );
        }
    }

    #[test]
    fn every_script_starts_with_the_fence_and_uses_it() {
        let fence = include_str!("lua/fence.lua");
        for script in Scripts::new().all() {
            let own = script.source.strip_prefix(fence);
            assert!(own.is_some(), "{}.lua starts with the fence", script.name);
        }
        // The scripts that read or move the line or the seat state ask it, never the keys alone.
        for script in Scripts::new().all() {
            assert!(
                !script.source.contains("'HEXISTS', line_key, 'limit'")
                    && !script.source.contains("'EXISTS', seats_ready_key"),
                "{}.lua checks the line or the seat state without the fence",
                script.name
            );
        }
    }

    #[test]
    fn a_script_that_writes_log_entries_has_the_log_entry_helper_and_no_other_does() {
        let fence = include_str!("lua/fence.lua");
        let helper = include_str!("lua/log_entry.lua");
        for script in Scripts::new().all() {
            let source = script.source.strip_prefix(fence).unwrap_or(&script.source);
            let own = source.strip_prefix(helper).unwrap_or(source);
            assert_eq!(
                own.contains("log_entry."),
                source.starts_with(helper),
                "{}.lua: uses log_entry exactly when it is prepended",
                script.name
            );
            assert!(
                !own.contains("'RPUSH', log_key, '"),
                "{}.lua writes a log entry by hand",
                script.name
            );
        }
    }

    #[test]
    fn the_log_entries_the_scripts_write_are_the_ones_the_view_reads() {
        let lua = mlua::Lua::new();
        let written: Vec<String> = lua
            .load(format!(
                "{}\nreturn {{ log_entry.frozen('7'), log_entry.drawn(), \
                 log_entry.consumed(tonumber('3') + 1, tonumber('9'), 4, tonumber('1764547200000')), \
                 log_entry.consumed(1, tonumber('5'), 0, 0), log_entry.left('r12'), \
                 log_entry.pass_ended('p3'), log_entry.abandoned(string.sub('!r40', 2)) }}",
                include_str!("lua/log_entry.lua")
            ))
            .eval()
            .expect("the helper runs");
        let key = |raw: &str| TokenKey::parse(raw).expect("a token key");
        let expected = [
            LogEntry::Frozen { prequeue: 7 },
            LogEntry::Drawn,
            LogEntry::Consumed {
                from: 4,
                to: 9,
                admitted: 4,
                at_ms: 1_764_547_200_000,
            },
            LogEntry::Consumed {
                from: 1,
                to: 5,
                admitted: 0,
                at_ms: 0,
            },
            LogEntry::Departed {
                key: key("r12"),
                why: Departure::Left,
            },
            LogEntry::Departed {
                key: key("p3"),
                why: Departure::PassEnded,
            },
            LogEntry::Departed {
                key: key("r40"),
                why: Departure::Abandoned,
            },
        ];
        assert_eq!(written.len(), expected.len());
        for (raw, entry) in written.iter().zip(expected) {
            assert_eq!(raw.parse::<LogEntry>().ok(), Some(entry), "{raw:?}");
            assert_eq!(&entry.to_string(), raw);
        }
    }

    #[test]
    fn every_script_that_changes_a_seat_versions_the_change_in_the_same_step() {
        let fence = include_str!("lua/fence.lua");
        let helper = include_str!("lua/seat_log.lua");
        for script in Scripts::new().all() {
            let source = script.source.strip_prefix(fence).unwrap_or(&script.source);
            let own = source.strip_prefix(helper).unwrap_or(source);
            let changes_seats = ["'HSET', seats_key", "'HDEL', seats_key", "'DEL', seats_key"]
                .iter()
                .any(|write| own.contains(write));
            let versions = own.contains("seat_log.changed(") || own.contains("seat_log.restarted(");
            assert_eq!(
                changes_seats, versions,
                "{}.lua: versions a change of a seat's state exactly when it makes one",
                script.name
            );
            assert_eq!(
                versions,
                source.starts_with(helper),
                "{}.lua: calls seat_log exactly when it is prepended",
                script.name
            );
        }
    }

    /// The store over a fresh embedded keyspace, which runs the same scripts.
    async fn embedded_store() -> RedisStore {
        let path =
            std::env::temp_dir().join(format!("anteroom-seat-log-{}.db", Uuid::new_v4().simple()));
        let pool =
            crate::adapters::embedded::open_database(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
        let journal = crate::adapters::embedded::writer::Writer::start(
            pool.clone(),
            &crate::tasks::Tasks::new(),
        );
        let keyspace = Keyspace::open(pool, journal).await.unwrap();
        RedisStore::embedded(keyspace, "t")
    }

    /// Opens `event`'s line with `places` regular places at `now_ms`, as a
    /// new event's is: started, then rebuilt from an empty record. Returns
    /// what it reserved.
    async fn open_line(store: &RedisStore, event: &EventId, places: u64, now_ms: i64) -> Reserved {
        let reserved = Reserved {
            regular: places,
            prequeue: 0,
        };
        let open = LineStart::Open { reserved };
        assert!(store.start_line(event, &open, now_ms).await.unwrap());
        store.rebuild(event, &[], true, now_ms).await.unwrap();
        reserved
    }

    /// Admits the first `places` ranks of `event`'s open line, each seen at
    /// `now_ms`, with passes of 600 s and room for no more at once.
    async fn admit_first(store: &RedisStore, event: &EventId, places: u64, now_ms: i64) {
        let keys: Vec<TokenKey> = (1..=places).map(TokenKey::regular).collect();
        store.heartbeat(event, &keys, now_ms / 1_000).await.unwrap();
        let candidates: Vec<Candidate> = keys
            .iter()
            .map(|&key| Candidate::Arrived { rank: key.seq, key })
            .collect();
        let admit = AdmitRequest {
            now_ms,
            pass_ms: 600_000,
            max_active: places,
            seen_cutoff_s: now_ms / 1_000 - 60,
            max_admit: places,
            seats_total: 10,
            consumed_floor: 0,
        };
        let admitted = store.admit(event, &candidates, admit).await.unwrap();
        assert_eq!(admitted.admitted, places);
    }

    fn seats(pairs: &[(&str, SeatState)]) -> Vec<(String, SeatState)> {
        pairs.iter().map(|&(id, s)| (id.to_owned(), s)).collect()
    }

    /// Every taken seat in id order, whatever order the hash gave them in.
    fn sorted(at: Option<SeatsAt>) -> Option<SeatsAt> {
        at.map(|at| match at {
            SeatsAt::Taken { version, mut seats } => {
                seats.sort_by(|a, b| a.0.cmp(&b.0));
                SeatsAt::Taken { version, seats }
            }
            changed => changed,
        })
    }

    #[tokio::test]
    async fn the_seat_log_answers_the_changes_since_a_version_only_as_far_back_as_it_reaches() {
        use SeatState::{Free, Held, Sold};
        let store = embedded_store().await;
        let event = EventId::parse("ev").unwrap();
        let holder = Holder::from_stored("r1:holder".to_owned());
        let (o1, o2, o3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let live = |seat: &str, order| LiveSeat {
            seat: seat.to_owned(),
            order,
            holder: holder.clone(),
            sold: false,
        };
        let since = async |version: u64, max_changes: u64| {
            sorted(
                store
                    .seats_since(&event, Some(version), max_changes)
                    .await
                    .unwrap(),
            )
        };
        let changed = |version, pairs: &[(&str, SeatState)]| {
            Some(SeatsAt::Changed {
                version,
                seats: seats(pairs),
            })
        };
        let taken = |version, pairs: &[(&str, SeatState)]| {
            Some(SeatsAt::Taken {
                version,
                seats: seats(pairs),
            })
        };
        assert_eq!(store.seats_since(&event, None, 10).await.unwrap(), None);

        // A rebuild starts a history at now_ms * 1000.
        let rebuilt = [live("A-1-1", o1), live("A-1-2", o2), live("A-1-3", o3)];
        store.rebuild(&event, &rebuilt, true, 1_000).await.unwrap();
        let start = 1_000_000;
        let all_held = [("A-1-1", Held), ("A-1-2", Held), ("A-1-3", Held)];
        assert_eq!(
            sorted(store.seats_since(&event, None, 10).await.unwrap()),
            taken(start, &all_held)
        );
        assert_eq!(since(start, 10).await, changed(start, &[]));
        assert_eq!(since(start - 1, 10).await, taken(start, &all_held));

        // Each change is one version; a release that frees nothing is none.
        let sold = store.sell(&event, o1, &holder, &["A-1-1".into()]).await;
        assert_eq!(sold.unwrap(), SellOutcome::Sold);
        for _ in 0..2 {
            store
                .release(&event, o2, &holder, &["A-1-2".into()])
                .await
                .unwrap();
        }
        let now = [("A-1-1", Sold), ("A-1-3", Held)];
        assert_eq!(
            since(start, 10).await,
            changed(start + 2, &[("A-1-1", Sold), ("A-1-2", Free)])
        );
        assert_eq!(
            since(start + 1, 10).await,
            changed(start + 2, &[("A-1-2", Free)])
        );
        assert_eq!(since(start + 2, 10).await, changed(start + 2, &[]));
        assert_eq!(
            since(start + 3, 10).await,
            taken(start + 2, &now),
            "from the future"
        );
        assert_eq!(
            since(start, 1).await,
            taken(start + 2, &now),
            "too many changes"
        );

        // The log keeps the changes of its last versions only.
        let trimmed = LuaScript::new(
            "trimmed",
            concat!(
                include_str!("lua/fence.lua"),
                include_str!("lua/seat_log.lua"),
                "local seat_version_key, seat_log_key = KEYS[1], KEYS[2]
                 seat_log.kept_versions = 2
                 for i = 4, 6 do seat_log.changed(seat_version_key, seat_log_key, { 'A-1-' .. i }) end
                 return 1"
            ),
            &[KeyName::SeatVersion, KeyName::SeatLog],
        );
        let _: i64 = store
            .run(&trimmed, &event, Vec::<Value>::new())
            .await
            .unwrap();
        assert_eq!(since(start + 2, 10).await, taken(start + 5, &now));
        assert_eq!(
            since(start + 3, 10).await,
            changed(start + 5, &[("A-1-5", Free), ("A-1-6", Free)])
        );

        // A rebuild is a new history, above every earlier version even on a clock that is behind.
        store.rebuild(&event, &[], true, 500).await.unwrap();
        assert_eq!(since(start + 5, 10).await, taken(start + 6, &[]));
        store.rebuild(&event, &[], true, 2_000).await.unwrap();
        assert_eq!(since(start + 6, 10).await, taken(2_000_000, &[]));
    }

    /// A group of holds is one step and one new version of the seat map, in
    /// which each hold is decided in turn as it would be alone: it finds the
    /// seats and the limit its group's earlier holds took.
    #[tokio::test]
    async fn a_group_of_holds_decides_each_in_turn_after_the_ones_before_it() {
        use SeatState::Held;
        let store = embedded_store().await;
        let event = EventId::parse("grouped").unwrap();
        let now_ms = 1_764_547_200_000;
        open_line(&store, &event, 4, now_ms).await;
        admit_first(&store, &event, 3, now_ms).await;
        let key = TokenKey::regular;
        let ask = |rank: u64, seats: &[&str]| HoldAsk {
            order: Uuid::new_v4(),
            holder: Holder::new(key(rank), Uuid::new_v4()),
            pass: PassTerms::new(key(rank), now_ms + 600_000, 600),
            seats: seats.iter().map(|&s| s.to_owned()).collect(),
            max_per_holder: 3,
            now_ms,
        };
        let first = ask(1, &["A-1-1", "A-1-2"]);
        let mut over_the_limit = ask(1, &["A-1-3", "A-1-4"]);
        over_the_limit.holder = first.holder.clone();
        let asks = [
            first,
            ask(2, &["A-1-2"]),
            over_the_limit,
            ask(4, &["A-1-4"]),
            ask(3, &["A-1-3"]),
            ask(2, &["A-1-4", "A-1-1", "A-1-5"]),
        ];
        let counts = SeatCounts { held: 3, sold: 0 };
        let outcomes = store.hold_group(&event, &asks).await.unwrap();
        assert_eq!(
            outcomes,
            [
                HoldOutcome::Held(counts),
                HoldOutcome::Taken(vec!["A-1-2".to_owned()]),
                HoldOutcome::LimitExceeded,
                HoldOutcome::PassEnded,
                HoldOutcome::Held(counts),
                HoldOutcome::Taken(vec!["A-1-1".to_owned()]),
            ]
        );
        let rebuilt_at = u64::try_from(now_ms).unwrap() * 1_000;
        let held_by_the_group = Some(SeatsAt::Changed {
            version: rebuilt_at + 1,
            seats: seats(&[("A-1-1", Held), ("A-1-2", Held), ("A-1-3", Held)]),
        });
        let since_rebuilt = async || {
            sorted(
                store
                    .seats_since(&event, Some(rebuilt_at), 10)
                    .await
                    .unwrap(),
            )
        };
        assert_eq!(
            since_rebuilt().await,
            held_by_the_group,
            "the group's holds are one version"
        );
        let refused = store.hold_group(&event, &[ask(2, &["A-1-3"])]).await;
        let taken = HoldOutcome::Taken(vec!["A-1-3".to_owned()]);
        assert_eq!(refused.unwrap(), [taken]);
        assert_eq!(
            since_rebuilt().await,
            held_by_the_group,
            "a group that held nothing is no version"
        );
        let counted = store.seat_counts(&event).await.unwrap();
        assert_eq!(counted, Some(counts));
        let held = store.holds_before(&event, now_ms + 1).await.unwrap();
        let mut orders: Vec<Uuid> = held.iter().map(|h| h.order).collect();
        orders.sort();
        let mut expected = [asks[0].order, asks[4].order];
        expected.sort();
        assert_eq!(orders, expected, "only the holds made are recorded");
    }

    /// A join whose publish failed gives back its challenge and its place in
    /// the address window: the client's retry with the same solution joins.
    #[tokio::test]
    async fn an_aborted_join_gives_back_its_challenge_and_its_address_place() {
        let store = embedded_store().await;
        let event = EventId::parse("aborted").unwrap();
        let now_ms = 1_764_547_200_000;
        let start = LineStart::Open {
            reserved: Reserved {
                regular: 100,
                prequeue: 0,
            },
        };
        assert!(store.start_line(&event, &start, now_ms).await.unwrap());
        let limit = Some(WindowLimit {
            per_window: 1,
            window_seconds: 60,
        });
        let ticket = Ticket::Solved(Solved {
            id: "challenge-1".into(),
            expires_at_ms: now_ms + 60_000,
        });
        let request = AllocateRequest {
            visitor: None,
            token_id: Uuid::new_v4(),
            ticket: &ticket,
            address: Some("192.0.2.7"),
        };
        let allocate =
            || store.allocate(&event, true, std::slice::from_ref(&request), limit, now_ms);
        let places = |outcome| match outcome {
            AllocateOutcome::Allocated(allocation) => allocation,
            other => panic!("not allocated: {other:?}"),
        };
        let first = places(allocate().await.unwrap());
        assert_eq!(first.existing, [VisitorPlace::None]);
        // Without the abort, the same challenge and address are refused.
        let again = places(allocate().await.unwrap());
        assert_eq!(
            again.existing,
            [VisitorPlace::Refused(DoorRefusal::ChallengeUsed)]
        );
        let aborted = AbortedJoin {
            key: TokenKey {
                kind: first.kind,
                seq: first.first_seq,
            },
            request: &request,
        };
        store
            .abort_joins(&event, &[aborted], limit, now_ms)
            .await
            .unwrap();
        // Past the challenge and the address's one place in the window.
        let retried = places(allocate().await.unwrap());
        assert_eq!(
            retried.existing,
            [VisitorPlace::None],
            "the retry takes a new place"
        );
        assert_eq!(retried.first_seq, first.first_seq + 1);
        // And took that place again: another challenge from the address is one too many.
        let other = Ticket::Solved(Solved {
            id: "challenge-2".into(),
            expires_at_ms: now_ms + 60_000,
        });
        let another = AllocateRequest {
            ticket: &other,
            ..request
        };
        let refused = store
            .allocate(&event, true, &[another], limit, now_ms)
            .await
            .unwrap();
        assert_eq!(
            places(refused).existing,
            [VisitorPlace::Refused(DoorRefusal::TooManyPlaces)]
        );
    }

    /// After a restore over what a node kept (a failover to a replica), each
    /// kept pass counts by itself, and once ended takes no stand-in's place:
    /// a leave repeated, or a hold, by a process that has not yet read the
    /// end (it brings the pass's terms) cannot bring it back.
    #[tokio::test]
    async fn after_a_restore_a_kept_pass_once_ended_stays_ended() {
        let store = embedded_store().await;
        let event = EventId::parse("kept").unwrap();
        let now_ms = 1_764_547_200_000;
        let reserved = open_line(&store, &event, 10, now_ms).await;
        admit_first(&store, &event, 3, now_ms).await;
        let key = TokenKey::regular;

        // The line was written under another node's history: it reads as lost.
        let line = store.keys(&event).line();
        let _: i64 = store
            .kv
            .call(
                "HSET",
                strings([line, "node".to_owned(), "another".to_owned()]),
            )
            .await
            .unwrap();
        let restore = LineStart::Restore {
            record: LineRecord {
                reserved,
                ..LineRecord::default()
            },
            passes: vec![(now_ms + 610_000, 3)],
            ended: Vec::new(),
        };
        let restored_at = now_ms + 1_000;
        assert!(
            store
                .start_line(&event, &restore, restored_at)
                .await
                .unwrap()
        );
        let active = async || store.counters(&event, restored_at).await.unwrap().active;
        assert_eq!(
            active().await,
            3,
            "the three kept passes, no stand-in on top"
        );

        let terms = PassTerms {
            key: key(1),
            issued_at_ms: now_ms,
            expires_at_ms: now_ms + 600_000,
        };
        let leave = || store.leave(&event, key(1), Some(1), Some(terms), restored_at);
        assert_eq!(leave().await.unwrap().outcome, LeaveOutcome::PassEnded);
        assert_eq!(leave().await.unwrap().outcome, LeaveOutcome::AlreadyGone);
        let ask = HoldAsk {
            order: Uuid::new_v4(),
            holder: Holder::new(key(1), Uuid::new_v4()),
            pass: terms,
            seats: vec!["A-1-1".to_owned()],
            max_per_holder: 4,
            now_ms: restored_at,
        };
        let hold = store.hold(&event, &ask);
        assert_eq!(hold.await.unwrap(), HoldOutcome::PassEnded);
        assert_eq!(active().await, 2);
    }

    #[tokio::test]
    async fn a_leave_answers_how_far_into_the_log_a_view_must_read_to_know_it() {
        let store = embedded_store().await;
        let event = EventId::parse("logged").unwrap();
        let now_ms = 1_764_547_200_000;
        open_line(&store, &event, 10, now_ms).await;
        let leave = || store.leave(&event, TokenKey::regular(2), Some(2), None, now_ms);
        let left = leave().await.unwrap();
        let log = store.read_log(&event, 0).await.unwrap();
        let departed = LogEntry::Departed {
            key: TokenKey::regular(2),
            why: Departure::Left,
        };
        assert_eq!(log.entries.last(), Some(&departed));
        let whole_log = LogPosition::from_parts(&log.entries.len().to_string(), &log.epoch);
        assert_eq!(
            (left.outcome, left.logged_at.clone()),
            (LeaveOutcome::Left, whole_log)
        );
        let again = leave().await.unwrap();
        assert_eq!(
            (again.outcome, again.logged_at),
            (LeaveOutcome::AlreadyGone, left.logged_at),
            "nothing more was written"
        );
    }

    /// A step longer than the script's parts (64, 128, … 4,000 places): its
    /// batched reads and writes decide each place as one command each would.
    #[tokio::test]
    async fn a_long_step_skips_and_admits_each_place_as_its_own_facts_say() {
        let store = embedded_store().await;
        let event = EventId::parse("long").unwrap();
        let (now_ms, places) = (1_764_547_200_000, 9_000);
        open_line(&store, &event, places, now_ms).await;
        let key = TokenKey::regular;
        // Either side of the edges of the parts read (after 4,032 and 8,032 places).
        let (left, failed, unseen) = ([4_032, 8_033], 4_033, 8_032);
        for rank in left {
            store
                .leave(&event, key(rank), Some(rank), None, now_ms)
                .await
                .unwrap();
        }
        let nothing_at_the_door = AllocateRequest {
            visitor: None,
            token_id: Uuid::new_v4(),
            ticket: &Ticket::NotAsked,
            address: None,
        };
        let aborted = AbortedJoin {
            key: key(failed),
            request: &nothing_at_the_door,
        };
        store
            .abort_joins(&event, &[aborted], None, now_ms)
            .await
            .unwrap();
        let seen: Vec<TokenKey> = (1..=places).filter(|&r| r != unseen).map(key).collect();
        store
            .heartbeat(&event, &seen, now_ms / 1_000)
            .await
            .unwrap();
        let candidates: Vec<Candidate> = (1..=places)
            .map(|rank| match rank {
                100 => Candidate::Absent { rank, key: None },
                200 => Candidate::Absent {
                    rank,
                    key: Some(key(rank)),
                },
                _ => Candidate::Arrived {
                    rank,
                    key: key(rank),
                },
            })
            .collect();
        let logged_before = store.read_log(&event, 0).await.unwrap().entries.len();
        let request = |max_admit, consumed_floor| AdmitRequest {
            now_ms,
            pass_ms: 600_000,
            max_active: 1_000_000,
            seen_cutoff_s: now_ms / 1_000 - 60,
            max_admit,
            seats_total: 1,
            consumed_floor,
        };

        // 8,000 admitted: ranks 1 to 8,004 less the four skipped among them.
        let first = store.admit(&event, &candidates, request(8_000, 0)).await;
        let expected = AdmitOutcome {
            consumed: 8_004,
            admitted: 8_000,
            room: 992_000,
        };
        assert_eq!(first.unwrap(), expected);
        let rest = store.admit(&event, &candidates[8_004..], request(100_000, 8_004));
        let expected = AdmitOutcome {
            consumed: places,
            admitted: 994,
            room: 991_006,
        };
        assert_eq!(rest.await.unwrap(), expected);

        let log = store.read_log(&event, 0).await.unwrap().entries;
        let abandoned = |rank| LogEntry::Departed {
            key: key(rank),
            why: Departure::Abandoned,
        };
        let consumed = |from, to, admitted| LogEntry::Consumed {
            from,
            to,
            admitted,
            at_ms: now_ms,
        };
        let expected = [
            abandoned(200),
            abandoned(failed),
            consumed(1, 8_004, 8_000),
            abandoned(unseen),
            consumed(8_005, places, 994),
        ];
        assert_eq!(log[logged_before..], expected);
        let counters = store.counters(&event, now_ms).await.unwrap();
        assert_eq!((counters.admitted, counters.abandoned), (8_994, 1));
        assert_eq!(counters.active, 8_994);
    }

    #[test]
    fn a_reply_the_adapter_does_not_know_names_the_script_and_the_reply() {
        let scripts = Scripts::new();
        let error = scripts.sell.unexpected("sold out");
        assert_eq!(
            error.to_string(),
            r#"unexpected reply from sell.lua: "sold out""#
        );
    }
}
