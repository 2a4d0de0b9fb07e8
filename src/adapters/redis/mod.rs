//! The admission store on Redis: one hash-tagged key family per event, so that
//! every script touches one cluster slot, and every multi-key change is one Lua call.

use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};

use super::embedded::keyspace::Keyspace;

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::prequeue::{draw_from_bytes, draw_to_bytes};
use crate::domain::{EventId, Holder, LogEntry, TokenKey, TokenKind};
use crate::ports::{
    AdmissionStore, AdmitOutcome, AdmitRequest, AllocateOutcome, Allocation, BackendError, BackendResult, Candidate,
    GapProbe, HeldOrder, HoldOutcome, LeaveOutcome, LineCounters, LineMessage, LineRecord, LineStart, LiveSeat,
    LogRead, PassTerms, SeatCounts, SeatState, SeatStore, SellOutcome,
};

/// How long one command may take before the request gets a clear 503.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Log entries read per round trip when a view catches up.
const LOG_PAGE: i64 = 10_000;

/// A Lua script: by SHA on Redis, by source in the embedded keyspace.
struct LuaScript {
    redis: Script,
    source: Arc<str>,
}

impl LuaScript {
    fn new(source: &'static str) -> Self {
        Self { redis: Script::from_lua(source), source: Arc::from(source) }
    }
}

/// Where the keys live: a Redis server, or the embedded keyspace (embedded
/// mode), which runs the same scripts with the same atomicity.
pub enum Kv {
    Redis(Pool),
    Embedded(Arc<Keyspace>),
}

impl Kv {
    async fn call<R: FromValue>(&self, name: &'static str, args: Vec<Value>) -> BackendResult<R> {
        match self {
            Kv::Redis(pool) => pool
                .next()
                .custom(CustomCommand::new_static(name, ClusterHash::FirstKey, false), args)
                .await
                .map_err(unavailable),
            Kv::Embedded(keyspace) => keyspace.call(name, args).await?.convert().map_err(unavailable),
        }
    }

    async fn eval<R: FromValue>(&self, script: &LuaScript, keys: Vec<String>, args: Vec<Value>) -> BackendResult<R> {
        match self {
            Kv::Redis(pool) => script.redis.evalsha_with_reload(pool.next(), keys, args).await.map_err(unavailable),
            Kv::Embedded(keyspace) => keyspace.eval(&script.source, keys, args).await?.convert().map_err(unavailable),
        }
    }
}

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<Value> {
    items.into_iter().map(|s| Value::from(s.into())).collect()
}

struct Scripts {
    allocate: LuaScript,
    commit_joins: LuaScript,
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
}

impl Scripts {
    fn new() -> Self {
        Self {
            allocate: LuaScript::new(include_str!("lua/allocate.lua")),
            commit_joins: LuaScript::new(include_str!("lua/commit_joins.lua")),
            leave: LuaScript::new(include_str!("lua/leave.lua")),
            freeze: LuaScript::new(include_str!("lua/freeze.lua")),
            publish_draw: LuaScript::new(include_str!("lua/publish_draw.lua")),
            probe_gaps: LuaScript::new(include_str!("lua/probe_gaps.lua")),
            admit: LuaScript::new(include_str!("lua/admit.lua")),
            hold: LuaScript::new(include_str!("lua/hold.lua")),
            release: LuaScript::new(include_str!("lua/release.lua")),
            sell: LuaScript::new(include_str!("lua/sell.lua")),
            rebuild: LuaScript::new(include_str!("lua/rebuild.lua")),
            start_line: LuaScript::new(include_str!("lua/start_line.lua")),
            extend_reservation: LuaScript::new(include_str!("lua/extend_reservation.lua")),
            read_log: LuaScript::new(include_str!("lua/read_log.lua")),
        }
    }
}

pub struct RedisStore {
    kv: Kv,
    namespace: String,
    scripts: Scripts,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::new("redis", e)
}

/// The keys of one event's line, all in the `{namespace:event}` hash slot.
struct Keys(String);

impl Keys {
    fn line(&self) -> String {
        format!("{}:line", self.0)
    }
    fn visitors(&self) -> String {
        format!("{}:visitors", self.0)
    }
    fn seen(&self) -> String {
        format!("{}:seen", self.0)
    }
    fn left(&self) -> String {
        format!("{}:left", self.0)
    }
    fn failed(&self) -> String {
        format!("{}:failed", self.0)
    }
    fn active(&self) -> String {
        format!("{}:active", self.0)
    }
    fn log(&self) -> String {
        format!("{}:log", self.0)
    }
    /// Stand-ins for the passes a restored line could not name: how many expire when.
    fn unknown_passes(&self) -> String {
        format!("{}:unknown_passes", self.0)
    }
    /// Passes from before a restore that have been honoured once.
    fn honoured_passes(&self) -> String {
        format!("{}:honoured_passes", self.0)
    }
    fn draw(&self) -> String {
        format!("{}:draw", self.0)
    }
    fn prequeue_ids(&self) -> String {
        format!("{}:prequeue_ids", self.0)
    }
    fn seats(&self) -> String {
        format!("{}:seats", self.0)
    }
    fn holders(&self) -> String {
        format!("{}:holders", self.0)
    }
    fn seat_counts(&self) -> String {
        format!("{}:seat_counts", self.0)
    }
    fn seats_ready(&self) -> String {
        format!("{}:seats_ready", self.0)
    }
    fn holds(&self) -> String {
        format!("{}:holds", self.0)
    }
    fn hold_seats(&self) -> String {
        format!("{}:hold_seats", self.0)
    }
    fn all(&self) -> Vec<String> {
        vec![
            self.line(),
            self.visitors(),
            self.seen(),
            self.left(),
            self.failed(),
            self.active(),
            self.log(),
            self.unknown_passes(),
            self.honoured_passes(),
            self.draw(),
            self.prequeue_ids(),
            self.seats(),
            self.holders(),
            self.seat_counts(),
            self.seats_ready(),
            self.holds(),
            self.hold_seats(),
        ]
    }
}

impl RedisStore {
    pub async fn connect(url: &str, namespace: &str) -> BackendResult<Self> {
        let config = Config::from_url(url).map_err(unavailable)?;
        let pool = Builder::from_config(config)
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(4)
            .map_err(unavailable)?;
        pool.init().await.map_err(unavailable)?;
        Ok(Self::over(Kv::Redis(pool), namespace))
    }

    /// The store over the embedded keyspace (embedded mode).
    pub fn embedded(keyspace: Arc<Keyspace>, namespace: &str) -> Self {
        Self::over(Kv::Embedded(keyspace), namespace)
    }

    fn over(kv: Kv, namespace: &str) -> Self {
        Self { kv, namespace: namespace.to_owned(), scripts: Scripts::new() }
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

    async fn run<R, V>(&self, script: &LuaScript, keys: Vec<String>, args: Vec<V>) -> BackendResult<R>
    where
        R: FromValue,
        V: Into<Value> + Send,
    {
        self.kv.eval(script, keys, args.into_iter().map(Into::into).collect()).await
    }
}

fn parse_entry(raw: &str) -> BackendResult<Option<LineMessage>> {
    if raw.is_empty() {
        return Ok(None);
    }
    LineMessage::decode(raw.as_bytes()).map(Some).ok_or_else(|| unavailable(format!("malformed line entry {raw:?}")))
}

fn parse_num<T: std::str::FromStr>(raw: &str) -> BackendResult<T> {
    raw.parse().map_err(|_| unavailable(format!("expected a number, got {raw:?}")))
}

#[async_trait]
impl AdmissionStore for RedisStore {
    async fn start_line(&self, event: &EventId, start: &LineStart, now_ms: i64) -> BackendResult<bool> {
        let k = self.keys(event);
        let (mode, record, passes) = match start {
            LineStart::Open { reserved } => ("open", LineRecord { reserved: *reserved, ..Default::default() }, &[][..]),
            LineStart::Restore { record, passes } => ("restore", record.clone(), passes.as_slice()),
        };
        let mut args: Vec<Value> = strings([
            mode.to_owned(),
            now_ms.to_string(),
            record.reserved.regular.to_string(),
            record.reserved.prequeue.to_string(),
            record.prequeue.map(|p| p.to_string()).unwrap_or_default(),
        ]);
        args.push(record.draw.as_deref().map(draw_to_bytes).map_or(Value::from(""), |b| Value::Bytes(b.into())));
        for (expires_at_ms, count) in passes {
            args.extend(strings([expires_at_ms.to_string(), count.to_string()]));
        }
        let keys = vec![k.line(), k.log(), k.draw(), k.unknown_passes()];
        let started: i64 = self.run(&self.scripts.start_line, keys, args).await?;
        Ok(started == 1)
    }

    async fn extend_reservation(&self, event: &EventId, kind: TokenKind, reserved: u64) -> BackendResult<()> {
        let field = if kind == TokenKind::PreQueue { "prelimit" } else { "limit" };
        let args = vec![field.to_owned(), reserved.to_string()];
        let extended: i64 = self.run(&self.scripts.extend_reservation, vec![self.keys(event).line()], args).await?;
        if extended == 0 {
            return Err(BackendError::line_lost("redis", event));
        }
        Ok(())
    }

    async fn allocate(
        &self,
        event: &EventId,
        open: bool,
        requests: &[(Option<&str>, Uuid)],
        now_s: i64,
    ) -> BackendResult<AllocateOutcome> {
        let k = self.keys(event);
        let mut args = vec![if open { "1" } else { "0" }.to_owned(), now_s.to_string()];
        for (visitor, token_id) in requests {
            args.push(visitor.unwrap_or_default().to_owned());
            args.push(token_id.to_string());
        }
        let reply: Vec<String> = self
            .run(&self.scripts.allocate, vec![k.line(), k.visitors(), k.log(), k.seen(), k.prequeue_ids()], args)
            .await?;
        let kind_of = |tag: &str| if tag == "p" { TokenKind::PreQueue } else { TokenKind::Regular };
        match reply.as_slice() {
            [lost] if lost == "lost" => Err(BackendError::line_lost("redis", event)),
            [reserve, kind, needed] if reserve == "reserve" => {
                Ok(AllocateOutcome::Reserve { kind: kind_of(kind), at_least: parse_num(needed)? })
            }
            [kind, first_seq, prequeue, existing @ ..] => Ok(AllocateOutcome::Allocated(Allocation {
                kind: kind_of(kind),
                first_seq: parse_num(first_seq)?,
                prequeue: if prequeue.is_empty() { None } else { Some(parse_num(prequeue)?) },
                existing: existing.iter().map(|e| parse_entry(e)).collect::<BackendResult<_>>()?,
            })),
            _ => Err(unavailable("allocate: short reply")),
        }
    }

    async fn commit_joins(
        &self,
        event: &EventId,
        joins: &[(LineMessage, Option<&str>)],
    ) -> BackendResult<Vec<Option<LineMessage>>> {
        let k = self.keys(event);
        let mut args = Vec::with_capacity(joins.len() * 2);
        for (message, visitor) in joins {
            args.push(message.encode());
            args.push(visitor.unwrap_or_default().to_owned());
        }
        let reply: Vec<String> = self
            .run(&self.scripts.commit_joins, vec![k.line(), k.visitors(), k.left(), k.log(), k.active()], args)
            .await?;
        reply.iter().map(|e| parse_entry(e)).collect()
    }

    async fn abort_joins(&self, event: &EventId, keys: &[TokenKey]) -> BackendResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let members = keys.iter().map(ToString::to_string);
        let _: i64 = self.kv.call("SADD", strings(std::iter::once(self.keys(event).failed()).chain(members))).await?;
        Ok(())
    }

    async fn heartbeat(&self, event: &EventId, keys: &[TokenKey], now_s: i64) -> BackendResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = now_s.to_string();
        let fields = keys.iter().flat_map(|k| [k.to_string(), now.clone()]);
        let _: i64 = self.kv.call("HSET", strings(std::iter::once(self.keys(event).seen()).chain(fields))).await?;
        Ok(())
    }

    async fn leave(&self, event: &EventId, key: TokenKey, rank: Option<u64>) -> BackendResult<LeaveOutcome> {
        let k = self.keys(event);
        let rank = rank.map(|r| r.to_string()).unwrap_or_default();
        let reply: String = self
            .run(&self.scripts.leave, vec![k.line(), k.active(), k.left(), k.log()], vec![key.to_string(), rank])
            .await?;
        Ok(match reply.as_str() {
            "left" => LeaveOutcome::Left,
            "ended" => LeaveOutcome::PassEnded,
            _ => LeaveOutcome::AlreadyGone,
        })
    }

    async fn read_log(&self, event: &EventId, from: u64) -> BackendResult<LogRead> {
        let k = self.keys(event);
        let start = i64::try_from(from).map_err(unavailable)?;
        let range = vec![start.to_string(), (start + LOG_PAGE - 1).to_string()];
        let reply: Vec<String> = self.run(&self.scripts.read_log, vec![k.line(), k.log()], range).await?;
        let [epoch, lost, restored, entries @ ..] = reply.as_slice() else {
            return Err(unavailable("read_log: short reply"));
        };
        Ok(LogRead {
            epoch: epoch.clone(),
            lost: lost == "lost",
            restored: restored == "restored",
            entries: entries
                .iter()
                .map(|r| r.parse::<LogEntry>().map_err(unavailable))
                .collect::<BackendResult<_>>()?,
        })
    }

    async fn read_draw(&self, event: &EventId) -> BackendResult<Option<Vec<u32>>> {
        let raw: Option<Vec<u8>> = self.kv.call("GET", strings([self.keys(event).draw()])).await?;
        Ok(raw.map(|bytes| draw_from_bytes(&bytes)))
    }

    async fn counters(&self, event: &EventId, now_ms: i64) -> BackendResult<LineCounters> {
        let k = self.keys(event);
        let fields: Vec<Option<u64>> = self
            .kv
            .call(
                "HMGET",
                strings([k.line(), "joined".into(), "admitted".into(), "abandoned".into(), "left_waiting".into()]),
            )
            .await?;
        let named: u64 = self.kv.call("ZCOUNT", strings([k.active(), format!("({now_ms}"), "+inf".into()])).await?;
        let stand_ins: HashMap<i64, u64> = self.kv.call("HGETALL", strings([k.unknown_passes()])).await?;
        let active = named + stand_ins.iter().filter(|&(&at, _)| at > now_ms).map(|(_, n)| n).sum::<u64>();
        let field = |i: usize| fields.get(i).copied().flatten().unwrap_or(0);
        Ok(LineCounters { joined: field(0), admitted: field(1), abandoned: field(2), left_waiting: field(3), active })
    }

    async fn freeze_prequeue(&self, event: &EventId) -> BackendResult<(u64, Vec<TokenKey>)> {
        let k = self.keys(event);
        let reply: Vec<String> =
            self.run(&self.scripts.freeze, vec![k.line(), k.log(), k.failed()], Vec::<String>::new()).await?;
        let (size, failed) = reply.split_first().ok_or_else(|| unavailable("freeze: empty reply"))?;
        if size == "lost" {
            return Err(BackendError::line_lost("redis", event));
        }
        Ok((parse_num(size)?, failed.iter().filter_map(|f| TokenKey::parse(f)).collect()))
    }

    async fn publish_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>> {
        let k = self.keys(event);
        let blob = draw_to_bytes(draw);
        let reply: Vec<u8> =
            self.run(&self.scripts.publish_draw, vec![k.draw(), k.log()], vec![Value::Bytes(blob.into())]).await?;
        Ok(draw_from_bytes(&reply))
    }

    async fn consumed(&self, event: &EventId) -> BackendResult<u64> {
        let v: Option<u64> = self.kv.call("HGET", strings([self.keys(event).line(), "consumed".into()])).await?;
        Ok(v.unwrap_or(0))
    }

    async fn probe_gaps(&self, event: &EventId, keys: &[TokenKey]) -> BackendResult<Vec<GapProbe>> {
        let k = self.keys(event);
        let args: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let reply: Vec<String> = self.run(&self.scripts.probe_gaps, vec![k.line(), k.failed(), k.seen()], args).await?;
        if reply.len() != keys.len() {
            return Err(unavailable("probe_gaps: a probe per key expected"));
        }
        reply
            .iter()
            .map(|probe| match probe.split_once(':') {
                None if probe == "unallocated" => Ok(GapProbe::NotAllocated),
                None if probe == "failed" => Ok(GapProbe::Failed),
                Some(("pending", since)) => Ok(GapProbe::Pending { since_s: parse_num(since)? }),
                _ => Err(unavailable("probe_gaps: malformed reply")),
            })
            .collect()
    }

    async fn prequeue_entrants(&self, event: &EventId) -> BackendResult<Vec<(u64, Uuid)>> {
        let ids: HashMap<String, String> = self.kv.call("HGETALL", strings([self.keys(event).prequeue_ids()])).await?;
        ids.into_iter().map(|(seq, id)| Ok((parse_num(&seq)?, Uuid::parse_str(&id).map_err(unavailable)?))).collect()
    }

    async fn admit(&self, event: &EventId, candidates: &[Candidate], r: AdmitRequest) -> BackendResult<AdmitOutcome> {
        let k = self.keys(event);
        let mut args = Vec::with_capacity(6 + candidates.len() * 2);
        args.extend([
            r.now_ms.to_string(),
            r.pass_ms.to_string(),
            r.max_active.to_string(),
            r.seen_cutoff_s.to_string(),
            r.max_admit.to_string(),
            r.seats_total.to_string(),
            r.consumed_floor.to_string(),
        ]);
        for c in candidates {
            args.push(c.rank().to_string());
            args.push(match c {
                Candidate::Arrived { key, .. } => key.to_string(),
                Candidate::Absent { key: Some(key), .. } => format!("!{key}"),
                Candidate::Absent { key: None, .. } => String::new(),
            });
        }
        let keys = vec![
            k.line(),
            k.active(),
            k.left(),
            k.seen(),
            k.log(),
            k.seat_counts(),
            k.unknown_passes(),
            k.failed(),
            k.seats_ready(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.admit, keys, args).await?;
        match reply.as_slice() {
            [lost] if lost == "lost" => Err(BackendError::line_lost("redis", event)),
            [consumed, admitted, room] => Ok(AdmitOutcome {
                consumed: parse_num(consumed)?,
                admitted: parse_num(admitted)?,
                room: parse_num(room)?,
            }),
            _ => Err(unavailable("admit: malformed reply")),
        }
    }

    async fn ping(&self) -> BackendResult<()> {
        let _: String = self.kv.call("PING", Vec::new()).await?;
        Ok(())
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
    async fn hold(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        pass: PassTerms,
        seats: &[String],
        max_per_holder: u32,
        now_ms: i64,
    ) -> BackendResult<HoldOutcome> {
        let k = self.keys(event);
        let mut args = vec![
            order.to_string(),
            holder.as_str().to_owned(),
            pass.key.to_string(),
            max_per_holder.to_string(),
            now_ms.to_string(),
            pass.issued_at_ms.to_string(),
            pass.expires_at_ms.to_string(),
        ];
        args.extend(seats.iter().cloned());
        let keys = vec![
            k.seats(),
            k.holders(),
            k.seat_counts(),
            k.seats_ready(),
            k.active(),
            k.holds(),
            k.hold_seats(),
            k.line(),
            k.unknown_passes(),
            k.honoured_passes(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.hold, keys, args).await?;
        Ok(match reply.split_first() {
            Some((tag, [held, sold])) if tag == "held" => {
                HoldOutcome::Held(SeatCounts { held: parse_num(held)?, sold: parse_num(sold)? })
            }
            Some((tag, taken)) if tag == "taken" => HoldOutcome::Taken(taken.to_vec()),
            Some((tag, _)) if tag == "limit" => HoldOutcome::LimitExceeded,
            Some((tag, _)) if tag == "pass" => HoldOutcome::PassEnded,
            Some((tag, _)) if tag == "rebuild" => HoldOutcome::NeedsRebuild,
            Some((tag, _)) if tag == "lost" => return Err(BackendError::line_lost("redis", event)),
            _ => return Err(unavailable("hold: malformed reply")),
        })
    }

    async fn release(&self, event: &EventId, order: Uuid, holder: &Holder, seats: &[String]) -> BackendResult<()> {
        let k = self.keys(event);
        let keys = vec![k.seats(), k.holders(), k.seat_counts(), k.seats_ready(), k.holds(), k.hold_seats()];
        let _: i64 = self.run(&self.scripts.release, keys, seat_args(order, holder, seats)).await?;
        Ok(())
    }

    async fn sell(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<SellOutcome> {
        let k = self.keys(event);
        let keys = vec![k.seats(), k.seat_counts(), k.seats_ready(), k.holds(), k.hold_seats()];
        let reply: String = self.run(&self.scripts.sell, keys, seat_args(order, holder, seats)).await?;
        Ok(match reply.as_str() {
            "sold" => SellOutcome::Sold,
            "lost" => SellOutcome::Lost,
            _ => SellOutcome::NeedsRebuild,
        })
    }

    async fn rebuild(&self, event: &EventId, live: &[LiveSeat], force: bool, now_ms: i64) -> BackendResult<()> {
        let k = self.keys(event);
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
        let keys = vec![k.seats(), k.holders(), k.seat_counts(), k.seats_ready(), k.holds(), k.hold_seats()];
        let _: i64 = self.run(&self.scripts.rebuild, keys, args).await?;
        Ok(())
    }

    async fn holds_before(&self, event: &EventId, before_ms: i64) -> BackendResult<Vec<HeldOrder>> {
        let k = self.keys(event);
        let orders: Vec<String> =
            self.kv.call("ZRANGEBYSCORE", strings([k.holds(), "-inf".into(), before_ms.to_string()])).await?;
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let details: Vec<Option<String>> =
            self.kv.call("HMGET", strings(std::iter::once(k.hold_seats()).chain(orders.iter().cloned()))).await?;
        orders
            .iter()
            .zip(details)
            .filter_map(|(order, detail)| Some((order, detail?)))
            .map(|(order, detail)| {
                let (holder, seats) = detail.split_once('|').ok_or_else(|| unavailable("malformed hold record"))?;
                Ok(HeldOrder {
                    order: Uuid::parse_str(order).map_err(unavailable)?,
                    holder: Holder::from_stored(holder.to_owned()),
                    seats: seats.split(',').map(str::to_owned).collect(),
                })
            })
            .collect()
    }

    async fn seat_states(&self, event: &EventId) -> BackendResult<Option<HashMap<String, SeatState>>> {
        let k = self.keys(event);
        let ready: bool = self.kv.call("EXISTS", strings([k.seats_ready()])).await?;
        if !ready {
            return Ok(None);
        }
        let taken: HashMap<String, String> = self.kv.call("HGETALL", strings([k.seats()])).await?;
        let states = taken
            .into_iter()
            .map(|(seat, value)| (seat, if value.starts_with("s:") { SeatState::Sold } else { SeatState::Held }))
            .collect();
        Ok(Some(states))
    }

    async fn seat_counts(&self, event: &EventId) -> BackendResult<Option<SeatCounts>> {
        let k = self.keys(event);
        let ready: bool = self.kv.call("EXISTS", strings([k.seats_ready()])).await?;
        if !ready {
            return Ok(None);
        }
        let counts: Vec<Option<i64>> =
            self.kv.call("HMGET", strings([k.seat_counts(), "held".into(), "sold".into()])).await?;
        let field = |i: usize| counts.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
        Ok(Some(SeatCounts { held: field(0), sold: field(1) }))
    }
}
