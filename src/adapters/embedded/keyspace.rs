//! An in-process key-value store that speaks the subset of Redis the Redis
//! adapter uses, and runs the adapter's own Lua scripts with the same
//! atomicity (one lock over the whole script). Every change is journaled to
//! SQLite before the caller is answered, and the journal is replayed at start,
//! so embedded mode keeps what it acknowledged across a `kill -9`. The journal
//! is compacted as it grows (a snapshot of the keyspace replaces the entries
//! before it), so a restart reads about as much as the keyspace holds, not
//! the whole history of the sale.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fred::types::Value;
use mlua::{Lua, Variadic};
use sqlx::SqlitePool;

use super::writer::{Durable, Write, Writer};
use crate::ports::{AnyError, BackendError, BackendResult};

fn failed(e: impl Into<AnyError>) -> BackendError {
    BackendError::unavailable("embedded store", e)
}

enum Entry {
    Str(Vec<u8>),
    Hash(HashMap<String, Vec<u8>>),
    Set(HashSet<String>),
    ZSet(HashMap<String, f64>),
    List(Vec<Vec<u8>>),
}

/// The keys and their values; the commands live here.
#[derive(Default)]
struct Data(HashMap<String, Entry>);

/// The journal is compacted once the entries written since its last snapshot
/// add up to this many bytes at least…
const COMPACT_AFTER_BYTES: usize = 8 << 20;
/// …and to this share of that snapshot: a snapshot costs as much as the
/// keyspace is big, so a big keyspace is written again only after as much
/// again has been journaled (replaying a script costs more than reading a
/// snapshot of what it wrote, hence less than the whole).
const COMPACT_AFTER_SHARE: f64 = 0.5;

struct Script {
    /// A source that does not compile fails the same way every time it runs.
    function: Result<mlua::Function, String>,
    /// What the journal names it by.
    id: String,
}

struct State {
    data: Data,
    lua: Lua,
    /// Each script compiled once, by its source: compiling is most of the cost
    /// of running a small script.
    compiled: HashMap<String, Script>,
    /// Bytes journaled since the last snapshot (or, at start, replayed).
    journaled: usize,
    /// When `journaled` reaches this, the keyspace is snapshotted.
    compact_at: usize,
}

impl State {
    fn exec(&mut self, name: &str, args: &[Vec<u8>]) -> Result<Value, String> {
        self.data.exec(name, args)
    }

    /// The script of `source`, compiled the first time it runs, and its journal id.
    fn script(&mut self, source: &str) -> (Result<mlua::Function, String>, String) {
        if let Some(script) = self.compiled.get(source) {
            return (script.function.clone(), script.id.clone());
        }
        let script = Script {
            function: self
                .lua
                .load(source)
                .into_function()
                .map_err(|e| e.to_string()),
            id: script_id(source),
        };
        let compiled = (script.function.clone(), script.id.clone());
        self.compiled.insert(source.to_owned(), script);
        compiled
    }

    /// Runs a compiled script with `redis.call` bound to this state's commands;
    /// `wrote` tells whether it called any command that is not read-only.
    fn run(
        &mut self,
        script: &mlua::Function,
        keys: &[Vec<u8>],
        args: &[Vec<u8>],
        wrote: &mut bool,
    ) -> Result<Value, String> {
        let State { data, lua, .. } = self;
        lua.scope(|scope| {
            let call = scope.create_function_mut(|lua, parts: Variadic<mlua::Value>| {
                let mut parts = parts.into_iter().map(|p| lua_bytes(&p));
                let name = parts
                    .next()
                    .flatten()
                    .ok_or_else(|| mlua::Error::runtime("redis.call needs a command"))?;
                let name = String::from_utf8_lossy(&name).to_ascii_uppercase();
                *wrote |= !READ_ONLY.contains(&name.as_str());
                let args: Vec<Vec<u8>> = parts.map(Option::unwrap_or_default).collect();
                let reply = data.exec(&name, &args).map_err(mlua::Error::runtime)?;
                to_lua(lua, reply)
            })?;
            let redis = lua.create_table()?;
            redis.set("call", call)?;
            lua.globals().set("redis", redis)?;
            let strings = |items: &[Vec<u8>]| -> mlua::Result<mlua::Table> {
                let t = lua.create_table()?;
                for (i, item) in items.iter().enumerate() {
                    t.set(i + 1, lua.create_string(item)?)?;
                }
                Ok(t)
            };
            lua.globals().set("KEYS", strings(keys)?)?;
            lua.globals().set("ARGV", strings(args)?)?;
            let reply: mlua::Value = script.call(())?;
            from_lua(reply)
        })
        .map_err(|e| e.to_string())
    }
}

pub struct Keyspace {
    state: Mutex<State>,
    journal: Writer,
}

const READ_ONLY: &[&str] = &[
    "PING",
    "INFO",
    "GET",
    "EXISTS",
    "HGET",
    "HEXISTS",
    "HMGET",
    "HGETALL",
    "SCARD",
    "SISMEMBER",
    "SMISMEMBER",
    "SMEMBERS",
    "ZSCORE",
    "ZCARD",
    "ZCOUNT",
    "ZRANGEBYSCORE",
    "LRANGE",
    "LLEN",
];

impl Keyspace {
    /// Opens the store on `pool`, replaying its journal; it journals through `journal`.
    pub async fn open(pool: SqlitePool, journal: Writer) -> BackendResult<Arc<Self>> {
        let started = Instant::now();
        let parts: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT data FROM kv_snapshot ORDER BY part")
            .fetch_all(&pool)
            .await
            .map_err(failed)?;
        let snapshot = parts.into_iter().map(|(p,)| p).collect::<Vec<_>>().concat();
        let data = Data::decode(&snapshot)
            .ok_or_else(|| BackendError::bug("the keyspace's snapshot is corrupt"))?;
        let snapshotted = !snapshot.is_empty();
        let mut state = State {
            data,
            lua: Lua::new(),
            compiled: HashMap::new(),
            journaled: 0,
            compact_at: compact_at(snapshot.len()),
        };
        drop(snapshot);
        let rows: Vec<(i64, String, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT id, name, args, source FROM kv_journal j LEFT JOIN kv_scripts s ON s.sha = j.name ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .map_err(failed)?;
        let replayed = rows.len();
        for (id, name, args, source) in rows {
            state.journaled += args.len();
            let args = decode_args(&args)
                .filter(|args| !args.is_empty())
                .ok_or_else(|| BackendError::bug(format!("journal entry {id} is corrupt")))?;
            let outcome = match source {
                Some(source) => {
                    let keys_len = args
                        .first()
                        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
                        .unwrap_or(0);
                    let (keys, args) = args[1..].split_at(keys_len.min(args.len() - 1));
                    // A script that failed when it ran fails the same way now.
                    let (script, _) = state.script(&source);
                    if let Err(e) =
                        script.and_then(|script| state.run(&script, keys, args, &mut false))
                    {
                        tracing::debug!(id, error = %e, "a journaled script failed, as it did when it ran");
                    }
                    Ok(())
                }
                None => state.exec(&name, &args).map(drop),
            };
            outcome.map_err(|e| failed(format!("replaying journal entry {id}: {e}")))?;
        }
        if replayed > 0 || snapshotted {
            tracing::info!(
                keys = state.data.0.len(),
                entries = replayed,
                took_ms = started.elapsed().as_millis() as u64,
                "the embedded store read its snapshot and replayed its journal"
            );
        }
        Ok(Arc::new(Self {
            state: Mutex::new(state),
            journal,
        }))
    }

    /// Runs one command; a change is durable when this returns.
    pub async fn call(&self, name: &str, args: Vec<Value>) -> BackendResult<Value> {
        let name = name.to_ascii_uppercase();
        let args: Vec<Vec<u8>> = args.iter().map(value_bytes).collect();
        let (reply, durable) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let reply = state.exec(&name, &args).map_err(failed)?;
            let durable = (!READ_ONLY.contains(&name.as_str())).then(|| {
                let args = encode_args(args.iter());
                self.record(&mut state, name, args, None)
            });
            (reply, durable)
        };
        if let Some(durable) = durable {
            durable.wait().await?;
        }
        Ok(reply)
    }

    /// Runs a Lua script atomically, as Redis' EVAL does; durable when this
    /// returns. A script that only read (the stats' counters, every second) is
    /// not journaled, as a read-only command is not.
    pub async fn eval(
        &self,
        source: &Arc<str>,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> BackendResult<Value> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(String::into_bytes).collect();
        let args: Vec<Vec<u8>> = args.iter().map(value_bytes).collect();
        let (reply, durable) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (script, id) = state.script(source);
            let mut wrote = false;
            let reply = script.and_then(|script| state.run(&script, &keys, &args, &mut wrote));
            // Journaled even when it failed: as in Redis, the writes it made before
            // the error stay, and replaying it makes exactly the same ones.
            let durable = wrote.then(|| {
                let count = keys.len().to_string().into_bytes();
                let entry = encode_args(std::iter::once(&count).chain(&keys).chain(&args));
                self.record(&mut state, id, entry, Some(source.clone()))
            });
            (reply, durable)
        };
        if let Some(durable) = durable {
            durable.wait().await?;
        }
        reply.map_err(failed)
    }

    /// Sets every field of every hash whose key ends in `suffix` to `value`,
    /// without journaling: used at start so that a restart abandons nobody.
    pub fn refresh_all(&self, suffix: &str, value: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (key, entry) in state.data.0.iter_mut() {
            if let (true, Entry::Hash(h)) = (key.ends_with(suffix), entry) {
                h.values_mut().for_each(|v| *v = value.to_vec());
            }
        }
    }

    /// Journals a change, called under the state lock so that the journal keeps
    /// execution order; once the journal has grown enough, follows the change
    /// with a snapshot.
    fn record(
        &self,
        state: &mut State,
        name: String,
        args: Vec<u8>,
        script: Option<Arc<str>>,
    ) -> Durable {
        state.journaled += args.len();
        let durable = self.journal.send(Write::Journal { name, args, script });
        if state.journaled >= state.compact_at {
            let started = Instant::now();
            let snapshot = state.data.encode();
            tracing::info!(
                keys = state.data.0.len(),
                bytes = snapshot.len(),
                journaled = state.journaled,
                took_ms = started.elapsed().as_millis() as u64,
                "the embedded store compacts its journal"
            );
            state.compact_at = compact_at(snapshot.len());
            state.journaled = 0;
            // Nobody waits for it: until it is on disk, the entries it replaces stay.
            drop(self.journal.send(Write::Snapshot(snapshot)));
        }
        durable
    }
}

/// Journal bytes after which a snapshot of `snapshot_bytes` is replaced.
fn compact_at(snapshot_bytes: usize) -> usize {
    COMPACT_AFTER_BYTES.max((snapshot_bytes as f64 * COMPACT_AFTER_SHARE) as usize)
}

/// Scripts are journaled once, by the hash of their source.
fn script_id(source: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(source.as_bytes()))
}

/// Appends a length or a collection's size, as `Reader::count` reads it.
fn put_count(out: &mut Vec<u8>, count: usize) {
    out.extend_from_slice(&(count as u32).to_le_bytes());
}

/// Appends `bytes`, preceded by their length.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads what `put` wrote; `None` where the input ends early.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let taken = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(taken)
    }

    fn count(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.count()?;
        self.take(len)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn encode_args<'a>(args: impl Iterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    args.for_each(|arg| put(&mut out, arg));
    out
}

fn decode_args(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut reader = Reader(raw);
    let mut args = Vec::new();
    while !reader.is_empty() {
        args.push(reader.bytes()?.to_vec());
    }
    Some(args)
}

/// A snapshot lists each key as its kind, its name and its contents, every
/// string preceded by its length and every collection by its size.
impl Data {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, entry) in &self.0 {
            let kind = match entry {
                Entry::Str(_) => b's',
                Entry::Hash(_) => b'h',
                Entry::Set(_) => b'S',
                Entry::ZSet(_) => b'z',
                Entry::List(_) => b'l',
            };
            out.push(kind);
            put(&mut out, key.as_bytes());
            match entry {
                Entry::Str(value) => put(&mut out, value),
                Entry::Hash(h) => {
                    put_count(&mut out, h.len());
                    for (field, value) in h {
                        put(&mut out, field.as_bytes());
                        put(&mut out, value);
                    }
                }
                Entry::Set(s) => {
                    put_count(&mut out, s.len());
                    s.iter().for_each(|m| put(&mut out, m.as_bytes()));
                }
                Entry::ZSet(z) => {
                    put_count(&mut out, z.len());
                    for (member, score) in z {
                        put(&mut out, member.as_bytes());
                        out.extend_from_slice(&score.to_le_bytes());
                    }
                }
                Entry::List(l) => {
                    put_count(&mut out, l.len());
                    l.iter().for_each(|item| put(&mut out, item));
                }
            }
        }
        out
    }

    fn decode(raw: &[u8]) -> Option<Data> {
        let mut r = Reader(raw);
        let mut data = HashMap::new();
        while let Some(&[kind]) = r.take(1) {
            let key = r.text()?;
            let entry = match kind {
                b's' => Entry::Str(r.bytes()?.to_vec()),
                b'h' => Entry::Hash(
                    (0..r.count()?)
                        .map(|_| Some((r.text()?, r.bytes()?.to_vec())))
                        .collect::<Option<_>>()?,
                ),
                b'S' => Entry::Set((0..r.count()?).map(|_| r.text()).collect::<Option<_>>()?),
                b'z' => Entry::ZSet(
                    (0..r.count()?)
                        .map(|_| Some((r.text()?, f64::from_le_bytes(r.take(8)?.try_into().ok()?))))
                        .collect::<Option<_>>()?,
                ),
                b'l' => Entry::List(
                    (0..r.count()?)
                        .map(|_| Some(r.bytes()?.to_vec()))
                        .collect::<Option<_>>()?,
                ),
                _ => return None,
            };
            data.insert(key, entry);
        }
        Some(Data(data))
    }
}

fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Bytes(b) => b.to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Integer(i) => i.to_string().into_bytes(),
        Value::Double(f) => format_score(*f).into_bytes(),
        Value::Boolean(b) => {
            if *b {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        }
        _ => Vec::new(),
    }
}

fn format_score(f: f64) -> String {
    if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else if f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn text(arg: &[u8]) -> Result<String, String> {
    String::from_utf8(arg.to_vec()).map_err(|_| "a key, field or member is not UTF-8".to_owned())
}

fn int(arg: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "value is not an integer".to_owned())
}

/// A score bound: `-inf`, `+inf`, `n` or exclusive `(n`.
fn bound(arg: &[u8]) -> Result<(f64, bool), String> {
    let s = std::str::from_utf8(arg).map_err(|_| "bad score")?;
    let (s, exclusive) = s.strip_prefix('(').map_or((s, false), |rest| (rest, true));
    let value = match s {
        "-inf" => f64::NEG_INFINITY,
        "+inf" | "inf" => f64::INFINITY,
        _ => s.parse().map_err(|_| "min or max is not a float")?,
    };
    Ok((value, exclusive))
}

fn within(score: f64, (min, min_ex): (f64, bool), (max, max_ex): (f64, bool)) -> bool {
    (if min_ex { score > min } else { score >= min })
        && (if max_ex { score < max } else { score <= max })
}

fn bulk(v: &[u8]) -> Value {
    match std::str::from_utf8(v) {
        Ok(s) => Value::String(s.into()),
        Err(_) => Value::Bytes(v.to_vec().into()),
    }
}

const WRONG_TYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

impl Data {
    fn hash(&mut self, key: &[u8]) -> Result<&mut HashMap<String, Vec<u8>>, String> {
        match self
            .0
            .entry(text(key)?)
            .or_insert_with(|| Entry::Hash(HashMap::new()))
        {
            Entry::Hash(h) => Ok(h),
            _ => Err(WRONG_TYPE.into()),
        }
    }

    fn set(&mut self, key: &[u8]) -> Result<&mut HashSet<String>, String> {
        match self
            .0
            .entry(text(key)?)
            .or_insert_with(|| Entry::Set(HashSet::new()))
        {
            Entry::Set(s) => Ok(s),
            _ => Err(WRONG_TYPE.into()),
        }
    }

    fn zset(&mut self, key: &[u8]) -> Result<&mut HashMap<String, f64>, String> {
        match self
            .0
            .entry(text(key)?)
            .or_insert_with(|| Entry::ZSet(HashMap::new()))
        {
            Entry::ZSet(z) => Ok(z),
            _ => Err(WRONG_TYPE.into()),
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.0.get(std::str::from_utf8(key).ok()?)
    }

    /// Removes a collection that became empty, as Redis does.
    fn prune(&mut self, key: &[u8]) {
        let empty = match self.get(key) {
            Some(Entry::Hash(h)) => h.is_empty(),
            Some(Entry::Set(s)) => s.is_empty(),
            Some(Entry::ZSet(z)) => z.is_empty(),
            Some(Entry::List(l)) => l.is_empty(),
            _ => false,
        };
        if empty && let Ok(key) = std::str::from_utf8(key) {
            self.0.remove(key);
        }
    }

    fn exec(&mut self, name: &str, args: &[Vec<u8>]) -> Result<Value, String> {
        let arg = |i: usize| {
            args.get(i)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("ERR wrong number of arguments for '{name}'"))
        };
        let reply = match name {
            "PING" => Value::String("PONG".into()),
            // The scripts' fence (lua/fence.lua) asks which node serves them: the
            // embedded store is always the same one, it loses nothing it acknowledged.
            "INFO" => Value::String("# Server\r\nrun_id:embedded\r\n".into()),
            "GET" => match self.get(arg(0)?) {
                Some(Entry::Str(v)) => bulk(v),
                Some(_) => return Err(WRONG_TYPE.into()),
                None => Value::Null,
            },
            "SET" => {
                self.0.insert(text(arg(0)?)?, Entry::Str(arg(1)?.to_vec()));
                Value::String("OK".into())
            }
            "DEL" | "EXISTS" => {
                let mut n = 0;
                for key in args {
                    let key = text(key)?;
                    let hit = if name == "DEL" {
                        self.0.remove(&key).is_some()
                    } else {
                        self.0.contains_key(&key)
                    };
                    n += i64::from(hit);
                }
                Value::Integer(n)
            }
            "HGET" => match self.get(arg(0)?) {
                Some(Entry::Hash(h)) => h.get(&text(arg(1)?)?).map_or(Value::Null, |v| bulk(v)),
                Some(_) => return Err(WRONG_TYPE.into()),
                None => Value::Null,
            },
            "HMGET" => {
                let fields = &args[1..];
                match self.get(arg(0)?) {
                    Some(Entry::Hash(h)) => Value::Array(
                        fields
                            .iter()
                            .map(|f| Ok(h.get(&text(f)?).map_or(Value::Null, |v| bulk(v))))
                            .collect::<Result<_, String>>()?,
                    ),
                    Some(_) => return Err(WRONG_TYPE.into()),
                    None => Value::Array(fields.iter().map(|_| Value::Null).collect()),
                }
            }
            "HGETALL" => match self.get(arg(0)?) {
                Some(Entry::Hash(h)) => Value::Array(
                    h.iter()
                        .flat_map(|(k, v)| [Value::String(k.as_str().into()), bulk(v)])
                        .collect(),
                ),
                Some(_) => return Err(WRONG_TYPE.into()),
                None => Value::Array(Vec::new()),
            },
            "HEXISTS" => Value::Integer(match self.get(arg(0)?) {
                Some(Entry::Hash(h)) => i64::from(h.contains_key(&text(arg(1)?)?)),
                _ => 0,
            }),
            "HSET" => {
                let h = self.hash(arg(0)?)?;
                let mut added = 0;
                for pair in args[1..].chunks(2) {
                    let [field, value] = pair else {
                        return Err("ERR wrong number of arguments for 'HSET'".into());
                    };
                    added += i64::from(h.insert(text(field)?, value.clone()).is_none());
                }
                Value::Integer(added)
            }
            "HSETNX" => {
                let (field, value) = (text(arg(1)?)?, arg(2)?.to_vec());
                match self.hash(arg(0)?)?.entry(field) {
                    std::collections::hash_map::Entry::Occupied(_) => Value::Integer(0),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(value);
                        Value::Integer(1)
                    }
                }
            }
            "HDEL" => {
                let fields: Vec<String> = args[1..]
                    .iter()
                    .map(|f| text(f))
                    .collect::<Result<_, _>>()?;
                let h = self.hash(arg(0)?)?;
                let n = fields.iter().filter(|f| h.remove(*f).is_some()).count() as i64;
                self.prune(arg(0)?);
                Value::Integer(n)
            }
            "HINCRBY" => {
                let (field, by) = (text(arg(1)?)?, int(arg(2)?)?);
                let h = self.hash(arg(0)?)?;
                let now = h.get(&field).map_or(Ok(0), |v| int(v))? + by;
                h.insert(field, now.to_string().into_bytes());
                Value::Integer(now)
            }
            "SADD" => {
                let members: Vec<String> = args[1..]
                    .iter()
                    .map(|m| text(m))
                    .collect::<Result<_, _>>()?;
                let s = self.set(arg(0)?)?;
                Value::Integer(members.into_iter().filter(|m| s.insert(m.clone())).count() as i64)
            }
            "SISMEMBER" => Value::Integer(match self.get(arg(0)?) {
                Some(Entry::Set(s)) => i64::from(s.contains(&text(arg(1)?)?)),
                _ => 0,
            }),
            "SCARD" => Value::Integer(match self.get(arg(0)?) {
                Some(Entry::Set(s)) => s.len() as i64,
                Some(_) => return Err(WRONG_TYPE.into()),
                None => 0,
            }),
            "SMISMEMBER" => {
                arg(1)?;
                let members = &args[1..];
                match self.get(arg(0)?) {
                    Some(Entry::Set(s)) => Value::Array(
                        members
                            .iter()
                            .map(|m| Ok(Value::Integer(i64::from(s.contains(&text(m)?)))))
                            .collect::<Result<_, String>>()?,
                    ),
                    Some(_) => return Err(WRONG_TYPE.into()),
                    None => Value::Array(members.iter().map(|_| Value::Integer(0)).collect()),
                }
            }
            "SMEMBERS" => match self.get(arg(0)?) {
                Some(Entry::Set(s)) => {
                    Value::Array(s.iter().map(|m| Value::String(m.as_str().into())).collect())
                }
                _ => Value::Array(Vec::new()),
            },
            "ZADD" => {
                let mut pairs = Vec::new();
                for pair in args[1..].chunks(2) {
                    let [score, member] = pair else {
                        return Err("ERR syntax error".into());
                    };
                    pairs.push((bound(score)?.0, text(member)?));
                }
                let z = self.zset(arg(0)?)?;
                Value::Integer(
                    pairs
                        .into_iter()
                        .filter(|(s, m)| z.insert(m.clone(), *s).is_none())
                        .count() as i64,
                )
            }
            "ZREM" => {
                let members: Vec<String> = args[1..]
                    .iter()
                    .map(|m| text(m))
                    .collect::<Result<_, _>>()?;
                let z = self.zset(arg(0)?)?;
                let n = members.iter().filter(|m| z.remove(*m).is_some()).count() as i64;
                self.prune(arg(0)?);
                Value::Integer(n)
            }
            "ZSCORE" => match self.get(arg(0)?) {
                Some(Entry::ZSet(z)) => z
                    .get(&text(arg(1)?)?)
                    .map_or(Value::Null, |s| Value::String(format_score(*s).into())),
                _ => Value::Null,
            },
            "ZCARD" => Value::Integer(match self.get(arg(0)?) {
                Some(Entry::ZSet(z)) => z.len() as i64,
                _ => 0,
            }),
            "ZCOUNT" | "ZRANGEBYSCORE" | "ZREMRANGEBYSCORE" => {
                let (min, max) = (bound(arg(1)?)?, bound(arg(2)?)?);
                let mut hits: Vec<(f64, String)> = match self.get(arg(0)?) {
                    Some(Entry::ZSet(z)) => z
                        .iter()
                        .filter(|&(_, s)| within(*s, min, max))
                        .map(|(m, s)| (*s, m.clone()))
                        .collect(),
                    _ => Vec::new(),
                };
                hits.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                match name {
                    "ZCOUNT" => Value::Integer(hits.len() as i64),
                    "ZRANGEBYSCORE" => Value::Array(
                        hits.into_iter()
                            .map(|(_, m)| Value::String(m.into()))
                            .collect(),
                    ),
                    _ => {
                        let z = self.zset(arg(0)?)?;
                        hits.iter().for_each(|(_, m)| {
                            z.remove(m);
                        });
                        self.prune(arg(0)?);
                        Value::Integer(hits.len() as i64)
                    }
                }
            }
            "RPUSH" => {
                let key = text(arg(0)?)?;
                match self.0.entry(key).or_insert_with(|| Entry::List(Vec::new())) {
                    Entry::List(l) => {
                        l.extend(args[1..].iter().cloned());
                        Value::Integer(l.len() as i64)
                    }
                    _ => return Err(WRONG_TYPE.into()),
                }
            }
            "LLEN" => Value::Integer(match self.get(arg(0)?) {
                Some(Entry::List(l)) => l.len() as i64,
                Some(_) => return Err(WRONG_TYPE.into()),
                None => 0,
            }),
            "LRANGE" => match self.get(arg(0)?) {
                Some(Entry::List(l)) => {
                    let len = l.len() as i64;
                    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
                    let (start, stop) = (norm(int(arg(1)?)?), norm(int(arg(2)?)?).min(len - 1));
                    if start > stop {
                        Value::Array(Vec::new())
                    } else {
                        Value::Array(
                            l[start as usize..=stop as usize]
                                .iter()
                                .map(|v| bulk(v))
                                .collect(),
                        )
                    }
                }
                Some(_) => return Err(WRONG_TYPE.into()),
                None => Value::Array(Vec::new()),
            },
            other => return Err(format!("ERR unknown command '{other}'")),
        };
        Ok(reply)
    }
}

fn lua_bytes(v: &mlua::Value) -> Option<Vec<u8>> {
    match v {
        mlua::Value::String(s) => Some(s.as_bytes().to_vec()),
        mlua::Value::Integer(i) => Some(i.to_string().into_bytes()),
        mlua::Value::Number(n) => Some(format_score(*n).into_bytes()),
        _ => None,
    }
}

/// Redis' conversion of a reply into Lua: nil is `false`, arrays are tables.
fn to_lua(lua: &Lua, reply: Value) -> mlua::Result<mlua::Value> {
    Ok(match reply {
        Value::Integer(i) => mlua::Value::Integer(i),
        Value::String(s) => mlua::Value::String(lua.create_string(s.as_bytes())?),
        Value::Bytes(b) => mlua::Value::String(lua.create_string(&b)?),
        Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.into_iter().enumerate() {
                t.set(i + 1, to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
        _ => mlua::Value::Boolean(false),
    })
}

/// Redis' conversion of a script's result: numbers truncate to integers,
/// tables become arrays up to the first nil, `false` and nil are nil.
fn from_lua(v: mlua::Value) -> mlua::Result<Value> {
    Ok(match v {
        mlua::Value::Integer(i) => Value::Integer(i),
        mlua::Value::Number(n) => Value::Integer(n as i64),
        mlua::Value::String(s) => bulk(&s.as_bytes()),
        mlua::Value::Boolean(true) => Value::Integer(1),
        mlua::Value::Table(t) => {
            let mut items = Vec::new();
            for item in t.sequence_values::<mlua::Value>() {
                items.push(from_lua(item?)?);
            }
            Value::Array(items)
        }
        _ => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(path: &std::path::Path) -> Arc<Keyspace> {
        let pool = super::super::open_database(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let journal = Writer::start(pool.clone(), &crate::tasks::Tasks::new());
        Keyspace::open(pool, journal).await.unwrap()
    }

    fn temp_db() -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "anteroom-keyspace-{}.db",
            uuid::Uuid::new_v4().simple()
        ))
    }

    fn args(items: &[&str]) -> Vec<Value> {
        items.iter().map(|s| Value::from(*s)).collect()
    }

    #[tokio::test]
    async fn scripts_see_redis_conversions() {
        let kv = open(&temp_db()).await;
        let script: Arc<str> = Arc::from(
            "local missing = redis.call('HGET', KEYS[1], 'nope')
             local n = redis.call('HINCRBY', KEYS[1], 'n', tonumber(ARGV[1]))
             redis.call('RPUSH', KEYS[2], 'a', 'b', 'c')
             return { tostring(missing), n, redis.call('LRANGE', KEYS[2], -2, -1), 2.9 }",
        );
        let reply = kv
            .eval(&script, vec!["h".into(), "l".into()], args(&["5"]))
            .await
            .unwrap();
        let expected = Value::Array(vec![
            Value::String("false".into()),
            Value::Integer(5),
            Value::Array(vec![Value::String("b".into()), Value::String("c".into())]),
            Value::Integer(2),
        ]);
        assert_eq!(reply, expected);
    }

    #[tokio::test]
    async fn scard_and_smismember_answer_as_redis_does() {
        let kv = open(&temp_db()).await;
        kv.call("SADD", args(&["s", "a", "c"])).await.unwrap();
        assert_eq!(
            kv.call("SCARD", args(&["s"])).await.unwrap(),
            Value::Integer(2)
        );
        assert_eq!(
            kv.call("SCARD", args(&["missing"])).await.unwrap(),
            Value::Integer(0)
        );
        let found: Vec<i64> = kv
            .call("SMISMEMBER", args(&["s", "a", "b", "c", "a"]))
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert_eq!(found, [1, 0, 1, 1]);
        let none: Vec<i64> = kv
            .call("SMISMEMBER", args(&["missing", "a", "b"]))
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert_eq!(none, [0, 0], "a missing set has no members");
        assert!(
            kv.call("SMISMEMBER", args(&["s"])).await.is_err(),
            "at least one member, as Redis asks"
        );
        kv.call("SET", args(&["str", "v"])).await.unwrap();
        for command in [args(&["str"]), args(&["str", "a"])] {
            let name = if command.len() == 1 {
                "SCARD"
            } else {
                "SMISMEMBER"
            };
            assert!(kv.call(name, command).await.is_err(), "{name}: wrong type");
        }
    }

    #[tokio::test]
    async fn sorted_sets_honour_exclusive_bounds_and_order() {
        let kv = open(&temp_db()).await;
        kv.call("ZADD", args(&["z", "3", "c", "1", "a", "2", "b"]))
            .await
            .unwrap();
        let within: Vec<String> = kv
            .call("ZRANGEBYSCORE", args(&["z", "(1", "+inf"]))
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert_eq!(within, ["b", "c"]);
        let removed = kv
            .call("ZREMRANGEBYSCORE", args(&["z", "-inf", "2"]))
            .await
            .unwrap();
        assert_eq!(removed, Value::Integer(2));
        assert_eq!(
            kv.call("ZSCORE", args(&["z", "c"])).await.unwrap(),
            Value::String("3".into())
        );
    }

    #[tokio::test]
    async fn a_script_that_only_reads_is_not_journaled() {
        let kv = open(&temp_db()).await;
        let journaled = || kv.state.lock().unwrap().journaled;
        let write: Arc<str> = Arc::from("return redis.call('HSET', KEYS[1], 'f', ARGV[1])");
        let read: Arc<str> = Arc::from(
            "return { redis.call('HGET', KEYS[1], 'f'), redis.call('ZCOUNT', KEYS[2], '-inf', '+inf') }",
        );
        kv.eval(&write, vec!["h".into()], args(&["v"]))
            .await
            .unwrap();
        let after_write = journaled();
        assert!(after_write > 0, "a write is journaled");
        let reply = kv
            .eval(&read, vec!["h".into(), "z".into()], Vec::new())
            .await
            .unwrap();
        assert_eq!(
            reply,
            Value::Array(vec![Value::String("v".into()), Value::Integer(0)])
        );
        assert_eq!(journaled(), after_write, "the read added nothing");
        kv.eval(&write, vec!["h".into()], args(&["w"]))
            .await
            .unwrap();
        assert!(journaled() > after_write);
    }

    #[tokio::test]
    async fn a_failing_script_keeps_its_earlier_writes_as_redis_does_also_after_a_restart() {
        let path = temp_db();
        let kv = open(&path).await;
        kv.call("SET", args(&["s", "v"])).await.unwrap();
        assert!(
            kv.call("HGET", args(&["s", "f"])).await.is_err(),
            "wrong type"
        );
        assert!(kv.call("NOSUCH", args(&["x"])).await.is_err());
        let failing: Arc<str> =
            Arc::from("redis.call('HSET', KEYS[1], 'f', 'v') return redis.call('NOSUCH')");
        assert!(
            kv.eval(&failing, vec!["h".into()], Vec::new())
                .await
                .is_err()
        );
        assert_eq!(
            kv.call("HGET", args(&["h", "f"])).await.unwrap(),
            Value::String("v".into())
        );
        drop(kv);
        let reopened = open(&path).await;
        assert_eq!(
            reopened.call("HGET", args(&["h", "f"])).await.unwrap(),
            Value::String("v".into())
        );
        assert_eq!(
            reopened.call("GET", args(&["s"])).await.unwrap(),
            Value::String("v".into())
        );
    }

    #[tokio::test]
    async fn the_journal_restores_every_acknowledged_change() {
        let path = temp_db();
        {
            let kv = open(&path).await;
            kv.call("HSET", args(&["h", "a", "1", "b", "2"]))
                .await
                .unwrap();
            let script: Arc<str> = Arc::from("return redis.call('HINCRBY', KEYS[1], 'a', 10)");
            kv.eval(&script, vec!["h".into()], Vec::new())
                .await
                .unwrap();
            kv.call("HDEL", args(&["h", "b"])).await.unwrap();
        }
        let reopened = open(&path).await;
        let fields: std::collections::HashMap<String, String> = reopened
            .call("HGETALL", args(&["h"]))
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert_eq!(
            fields,
            [("a".to_owned(), "11".to_owned())].into_iter().collect()
        );
        remove(&path);
    }

    fn remove(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    async fn count(kv_path: &std::path::Path, query: &'static str) -> i64 {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", kv_path.display()))
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as(query).fetch_one(&pool).await.unwrap();
        n
    }

    #[tokio::test]
    async fn a_snapshot_holds_every_kind_of_value() {
        let kv = open(&temp_db()).await;
        kv.call("SET", args(&["s", "v"])).await.unwrap();
        kv.call("HSET", args(&["h", "a", "1", "b", ""]))
            .await
            .unwrap();
        kv.call("SADD", args(&["set", "x", "y"])).await.unwrap();
        kv.call("ZADD", args(&["z", "1.5", "a", "-inf", "b"]))
            .await
            .unwrap();
        kv.call("RPUSH", args(&["l", "1", "2", "1"])).await.unwrap();
        let state = kv.state.lock().unwrap();
        let snapshot = state.data.encode();
        let restored = Data::decode(&snapshot).unwrap();
        assert_eq!(restored.encode().len(), snapshot.len());
        assert_eq!(restored.0.len(), 5);
        assert!(matches!(restored.get(b"s"), Some(Entry::Str(v)) if v == b"v"));
        assert!(
            matches!(restored.get(b"h"), Some(Entry::Hash(h)) if h.len() == 2 && h["b"].is_empty())
        );
        assert!(matches!(restored.get(b"set"), Some(Entry::Set(s)) if s.contains("y")));
        assert!(
            matches!(restored.get(b"z"), Some(Entry::ZSet(z)) if z["a"] == 1.5 && z["b"] == f64::NEG_INFINITY)
        );
        assert!(
            matches!(restored.get(b"l"), Some(Entry::List(l)) if l == &[b"1".to_vec(), b"2".to_vec(), b"1".to_vec()])
        );
        assert!(
            Data::decode(&snapshot[..snapshot.len() - 1]).is_none(),
            "a cut snapshot is refused, not half read"
        );
    }

    #[tokio::test]
    async fn the_journal_is_compacted_into_a_snapshot_and_restores_from_it() {
        let path = temp_db();
        let big = "x".repeat(1 << 20);
        {
            let kv = open(&path).await;
            kv.call("HSET", args(&["h", "kept", "1"])).await.unwrap();
            // Journal more than the least a compaction waits for.
            for i in 0..=COMPACT_AFTER_BYTES >> 20 {
                kv.call("SET", args(&["big", &format!("{i}{big}")]))
                    .await
                    .unwrap();
            }
            // Written after the snapshot in the journal's order, so on disk with it.
            kv.call("HINCRBY", args(&["h", "kept", "1"])).await.unwrap();
        }
        assert!(
            count(&path, "SELECT count(*) FROM kv_snapshot").await > 0,
            "a snapshot was written"
        );
        assert!(
            count(&path, "SELECT count(*) FROM kv_journal").await <= 2,
            "the entries before the snapshot are gone"
        );
        let reopened = open(&path).await;
        assert_eq!(
            reopened.call("HGET", args(&["h", "kept"])).await.unwrap(),
            Value::String("2".into())
        );
        let last = format!("{}{big}", COMPACT_AFTER_BYTES >> 20);
        assert_eq!(
            reopened.call("GET", args(&["big"])).await.unwrap(),
            Value::String(last.into())
        );
        drop(reopened);
        remove(&path);
    }
}
