//! anteroom-bench: the load generator and the benchmarks of docs/benchmarks.md.

mod api;
mod challenge;
mod client;
mod micro;
mod report;
mod service_metrics;
mod spike;
mod waiting;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use api::{Admin, EventShape};

const USAGE: &str = "usage: anteroom-bench <command> [--option value …]

  floor  --addr A                 serve the cheapest axum GET (/) on A: the floor of the HTTP ratios
  spike  --url U --admin-token T  the million-person spike (load generator); checks the books
         [--people 1000000] [--seats 10000] [--connections 256] [--arrival-seconds 20]
         [--per-second 200] [--max-active 2000] [--hold-seconds 10] [--max-seats 4]
         [--abandon-seconds 120] [--challenge-bits 0]
                                  (each join solves the event's proof-of-work challenge when it asks)
  drain  --url U --admin-token T  admission worker drain with no rate limit [--people 200000] [--connections 64]
  hold   --url U --admin-token T --database-url D
                                  holds over HTTP vs bare sqlx inserts [--holds 20000] [--connections 64]
  waiting --url U --admin-token T a line of each size at once, everyone polling as told; polls/s, poll
         latency, service CPU per poll and memory per waiting person at each size
         [--sizes 10000,100000,1000000] [--connections 256] [--measure-seconds 35]
         [--redis-url R --namespace N] (Redis and RabbitMQ memory) [--service-pid P] (CPU, RSS)

Every command takes --json FILE to write its figures as JSON.";

struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(key) = it.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| format!("expected an --option, got {key:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| format!("--{name}: not a number: {raw:?}")),
        }
    }

    /// `--url http://host:port` as a socket address.
    async fn addr(&self) -> Result<SocketAddr, String> {
        let url = self.text("url")?;
        let host = url
            .strip_prefix("http://")
            .ok_or("--url must start with http://")?
            .trim_end_matches('/');
        tokio::net::lookup_host(host)
            .await
            .map_err(|e| format!("--url {url}: {e}"))?
            .next()
            .ok_or_else(|| format!("--url {url}: no address"))
    }

    fn admin(&self) -> Result<Admin, String> {
        Ok(Admin::new(self.text("admin-token")?))
    }

    fn write_json(&self, value: &impl serde::Serialize) -> Result<(), String> {
        let Some(path) = self.0.get("json") else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("--json {path}: {e}"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let outcome = match Args::parse(rest) {
        Ok(args) => run(command, args).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("anteroom-bench: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs `command`; `Ok(false)` when it ran but a check failed.
async fn run(command: &str, args: Args) -> Result<bool, String> {
    match command {
        "floor" => {
            let addr: SocketAddr = args
                .text("addr")?
                .parse()
                .map_err(|e| format!("--addr: {e}"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--addr {addr}: {e}"))?;
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
            println!("floor listening on http://{addr}/");
            axum::serve(listener, app)
                .await
                .map_err(|e| e.to_string())?;
            Ok(true)
        }
        "spike" => {
            let options = spike::SpikeOptions {
                addr: args.addr().await?,
                admin_token: args.text("admin-token")?,
                people: args.number("people", 1_000_000)?,
                connections: args.number("connections", 256)?,
                arrival: Duration::from_secs_f64(args.number("arrival-seconds", 20.0)?),
                shape: EventShape {
                    seats: args.number("seats", 10_000)?,
                    per_second: args.number("per-second", 200.0)?,
                    max_active: args.number("max-active", 2_000)?,
                    hold_seconds: args.number("hold-seconds", 10)?,
                    max_seats_per_user: args.number("max-seats", 4)?,
                    abandon_seconds: args.number("abandon-seconds", 120)?,
                    paused: false,
                    challenge_bits: args.number("challenge-bits", 0)?,
                },
            };
            let report = spike::run(options).await.map_err(|e| e.to_string())?;
            spike::print(&report);
            args.write_json(&report)?;
            Ok(report.passed())
        }
        "drain" => {
            let people = args.number("people", 200_000)?;
            let report = micro::drain(
                args.addr().await?,
                args.admin()?,
                people,
                args.number("connections", 64)?,
            )
            .await
            .map_err(|e| e.to_string())?;
            println!(
                "drain: {} admitted in {:.2} s: {:.0} admitted/s",
                report.people, report.seconds, report.admitted_per_second
            );
            args.write_json(&report)?;
            Ok(true)
        }
        "hold" => {
            let report = micro::hold(
                args.addr().await?,
                args.admin()?,
                &args.text("database-url")?,
                args.number("holds", 20_000)?,
                args.number("connections", 64)?,
            )
            .await
            .map_err(|e| e.to_string())?;
            println!(
                "hold: {:.0} holds/s over HTTP vs {:.0} bare inserts/s: ratio {:.2}",
                report.holds_per_second, report.inserts_per_second, report.ratio
            );
            report::print_latencies(
                &report.hold_latency,
                report.holds as f64 / report.holds_per_second,
            );
            args.write_json(&report)?;
            Ok(true)
        }
        "waiting" => {
            let sizes = args
                .0
                .get("sizes")
                .map_or("10000,100000,1000000", String::as_str)
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("--sizes: not a number: {n:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if sizes.is_empty() || sizes.windows(2).any(|w| w[0] >= w[1]) {
                return Err("--sizes: one or more sizes, smallest first".into());
            }
            let report = waiting::run(waiting::WaitingOptions {
                addr: args.addr().await?,
                admin: args.admin()?,
                sizes,
                connections: args.number("connections", 256)?,
                measure: Duration::from_secs(args.number("measure-seconds", 35)?),
                redis_url: args.0.get("redis-url").cloned(),
                namespace: args.0.get("namespace").cloned(),
                service_pid: args
                    .0
                    .get("service-pid")
                    .map(|p| p.parse())
                    .transpose()
                    .map_err(|_| "--service-pid: not a number")?,
            })
            .await
            .map_err(|e| e.to_string())?;
            waiting::print(&report);
            args.write_json(&report)?;
            Ok(true)
        }
        other => Err(format!("unknown command {other:?}")),
    }
}
