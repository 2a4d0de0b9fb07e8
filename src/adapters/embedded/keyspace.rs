//! An in-process key-value store that speaks the subset of Redis the Redis
//! adapter uses, and runs the adapter's own Lua scripts with the same
//! atomicity (one lock over the whole script). Every change is journaled to
//! SQLite before the caller is answered, and the journal is replayed at start,
//! so embedded mode keeps what it acknowledged across a `kill -9`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use fred::types::Value;
use mlua::{Lua, Variadic};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::ports::{AnyError, BackendError, BackendResult};
use crate::tasks::Tasks;

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

/// A change to journal: a command, or a script and its keys and arguments.
#[derive(Debug, Clone)]
enum Change {
    Command {
        name: String,
        args: Vec<Vec<u8>>,
    },
    Script {
        source: Arc<str>,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
    },
}

struct State {
    data: Data,
    lua: Lua,
}

impl State {
    fn exec(&mut self, name: &str, args: &[Vec<u8>]) -> Result<Value, String> {
        self.data.exec(name, args)
    }

    /// Runs a script with `redis.call` bound to this state's commands.
    fn eval(
        &mut self,
        source: &str,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
    ) -> Result<Value, String> {
        let State { data, lua } = self;
        lua.scope(|scope| {
            let call = scope.create_function_mut(|lua, parts: Variadic<mlua::Value>| {
                let mut parts = parts.into_iter().map(|p| lua_bytes(&p));
                let name = parts
                    .next()
                    .flatten()
                    .ok_or_else(|| mlua::Error::runtime("redis.call needs a command"))?;
                let name = String::from_utf8_lossy(&name).to_ascii_uppercase();
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
            lua.globals().set("KEYS", strings(&keys)?)?;
            lua.globals().set("ARGV", strings(&args)?)?;
            let reply: mlua::Value = lua.load(source).eval()?;
            from_lua(reply)
        })
        .map_err(|e| e.to_string())
    }
}

pub struct Keyspace {
    state: Mutex<State>,
    journal: mpsc::UnboundedSender<(Change, oneshot::Sender<BackendResult<()>>)>,
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
];

impl Keyspace {
    /// Opens the store on `pool`, replaying its journal.
    /// Its journal writer runs on `tasks` until the last handle on the store is dropped.
    pub async fn open(pool: SqlitePool, tasks: &Tasks) -> BackendResult<Arc<Self>> {
        let mut state = State {
            data: Data::default(),
            lua: Lua::new(),
        };
        let rows: Vec<(i64, String, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT id, name, args, source FROM kv_journal j LEFT JOIN kv_scripts s ON s.sha = j.name ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .map_err(failed)?;
        let replayed = rows.len();
        for (id, name, args, source) in rows {
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
                    if let Err(e) = state.eval(&source, keys.to_vec(), args.to_vec()) {
                        tracing::debug!(id, error = %e, "a journaled script failed, as it did when it ran");
                    }
                    Ok(())
                }
                None => state.exec(&name, &args).map(drop),
            };
            outcome.map_err(|e| failed(format!("replaying journal entry {id}: {e}")))?;
        }
        if replayed > 0 {
            tracing::info!(
                entries = replayed,
                "the embedded store replayed its journal"
            );
        }
        let (journal, changes) = mpsc::unbounded_channel();
        tasks.spawn(write_journal(pool, changes));
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
            let durable = (!READ_ONLY.contains(&name.as_str()))
                .then(|| self.record(Change::Command { name, args }));
            (reply, durable)
        };
        if let Some(durable) = durable {
            durable
                .await
                .map_err(|_| BackendError::bug("the journal writer stopped"))??;
        }
        Ok(reply)
    }

    /// Runs a Lua script atomically, as Redis' EVAL does; durable when this returns.
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
            let reply = state.eval(source, keys.clone(), args.clone());
            // Journaled even when it failed: as in Redis, the writes it made before
            // the error stay, and replaying it makes exactly the same ones.
            (
                reply,
                self.record(Change::Script {
                    source: source.clone(),
                    keys,
                    args,
                }),
            )
        };
        durable
            .await
            .map_err(|_| BackendError::bug("the journal writer stopped"))??;
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

    /// Called under the state lock, so the journal keeps execution order.
    fn record(&self, change: Change) -> oneshot::Receiver<BackendResult<()>> {
        let (done, durable) = oneshot::channel();
        if self.journal.send((change, done)).is_err() {
            tracing::error!("the embedded journal writer is gone");
        }
        durable
    }
}

/// Writes journal entries in order, many per transaction (group commit), and
/// answers each caller once its entry is on disk.
async fn write_journal(
    pool: SqlitePool,
    mut changes: mpsc::UnboundedReceiver<(Change, oneshot::Sender<BackendResult<()>>)>,
) {
    let mut known_scripts: HashSet<String> = HashSet::new();
    while let Some(first) = changes.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = changes.try_recv() {
            batch.push(next);
            if batch.len() >= 1_000 {
                break;
            }
        }
        let outcome = append(&pool, &mut known_scripts, batch.iter().map(|(c, _)| c))
            .await
            .map(|_| ())
            .map_err(failed);
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
    }
}

async fn append<'a>(
    pool: &SqlitePool,
    known_scripts: &mut HashSet<String>,
    changes: impl Iterator<Item = &'a Change>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for change in changes {
        let (name, args) = match change {
            Change::Command { name, args } => (name.clone(), encode_args(args.iter())),
            Change::Script { source, keys, args } => {
                let sha = script_id(source);
                if known_scripts.insert(sha.clone()) {
                    sqlx::query("INSERT OR IGNORE INTO kv_scripts (sha, source) VALUES (?, ?)")
                        .bind(&sha)
                        .bind(source.as_ref())
                        .execute(&mut *tx)
                        .await?;
                }
                let count = keys.len().to_string().into_bytes();
                (
                    sha,
                    encode_args(
                        std::iter::once(&count)
                            .chain(keys.iter())
                            .chain(args.iter()),
                    ),
                )
            }
        };
        sqlx::query("INSERT INTO kv_journal (name, args) VALUES (?, ?)")
            .bind(name)
            .bind(args)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Scripts are journaled once, by the hash of their source.
fn script_id(source: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(source.as_bytes()))
}

fn encode_args<'a>(args: impl Iterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for arg in args {
        out.extend_from_slice(&(arg.len() as u32).to_le_bytes());
        out.extend_from_slice(arg);
    }
    out
}

fn decode_args(mut raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    while !raw.is_empty() {
        let len = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
        args.push(raw.get(4..4 + len)?.to_vec());
        raw = &raw[4 + len..];
    }
    Some(args)
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
        Keyspace::open(pool, &Tasks::new()).await.unwrap()
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
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
