//! Servers of a test's own, on ports of their own, that the test may kill and
//! start again; the shared servers are never touched.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// A redis-server without persistence: killed and started again, it comes back
/// empty, as a Redis that lost its data does — or, with snapshots, as it was at
/// its last snapshot, as one restarted from an older snapshot (or a replica
/// that lagged, promoted) does.
pub struct DisposableRedis {
    port: u16,
    /// Its own working directory: a primary writes a snapshot there to
    /// synchronise a replica, and a replica the one it receives.
    dir: PathBuf,
    /// Whether a restart comes back from the last snapshot, or empty.
    keeps_snapshots: bool,
    /// The primary this server replicates, if it is a replica.
    primary: Option<u16>,
    server: Child,
}

impl DisposableRedis {
    pub async fn start() -> Self {
        let port = free_port();
        let dir = Self::own_dir(port);
        Self {
            port,
            server: Self::spawn(port, &dir, None).await,
            dir,
            keeps_snapshots: false,
            primary: None,
        }
    }

    fn own_dir(port: u16) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("anteroom-redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a data directory");
        dir
    }

    /// A replica of `primary`, once it has synchronised with it.
    pub async fn start_replica_of(primary: &DisposableRedis) -> Self {
        let port = free_port();
        let dir = Self::own_dir(port);
        let replica = Self {
            port,
            server: Self::spawn(port, &dir, Some(primary.port)).await,
            dir,
            keeps_snapshots: false,
            primary: Some(primary.port),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !replica
            .info("replication")
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica never synchronised");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replica
    }

    /// A section of the server's `INFO`.
    pub fn info(&self, section: &str) -> String {
        let info = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", section])
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&info.stdout).into_owned()
    }

    /// Stops the server (SIGSTOP) until the guard is dropped (SIGCONT): a
    /// replica that hangs, still connected, as one on an overloaded or
    /// partitioned host does. A failing test never leaves it stopped.
    pub fn pause(&self) -> Paused<'_> {
        self.signal("-STOP");
        Paused(self)
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.server.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal}");
    }

    /// A server that keeps a snapshot when asked ([`Self::snapshot`]) and loads it when started again.
    pub async fn start_with_snapshots() -> Self {
        let port = free_port();
        let dir = Self::own_dir(port);
        Self {
            port,
            server: Self::spawn(port, &dir, None).await,
            dir,
            keeps_snapshots: true,
            primary: None,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Writes the snapshot a restart comes back to.
    pub fn snapshot(&self) {
        let saved = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "SAVE"])
            .output()
            .expect("redis-cli runs");
        assert_eq!(String::from_utf8_lossy(&saved.stdout).trim(), "OK");
    }

    /// Kills the server at once (SIGKILL): everything after its last snapshot is gone.
    pub fn kill(&mut self) {
        self.server.kill().expect("redis-server is killed");
        self.server.wait().expect("redis-server is reaped");
    }

    /// Starts the server again on the same port, empty or from its snapshot.
    pub async fn restart(&mut self) {
        if !self.keeps_snapshots {
            let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
        }
        self.server = Self::spawn(self.port, &self.dir, self.primary).await;
    }

    async fn spawn(port: u16, dir: &std::path::Path, primary: Option<u16>) -> Child {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        command.arg("--dir").arg(dir);
        if let Some(primary) = primary {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let server = command
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (infra/local-services.sh installs it)");
        until_listening("redis-server", port, Duration::from_secs(10)).await;
        server
    }
}

/// A stopped server, let go on when dropped.
pub struct Paused<'a>(&'a DisposableRedis);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.signal("-CONT");
    }
}

impl Drop for DisposableRedis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RabbitMQ node of its own (its own node name, ports and data directory):
/// killed with SIGKILL and started again, it keeps what it made durable, as a
/// crashed broker does.
pub struct DisposableRabbit {
    port: u16,
    dir: PathBuf,
    node: Child,
}

/// The node's start script (Debian's `rabbitmq-server` wrapper would switch user).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

impl DisposableRabbit {
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("anteroom-rabbit-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a data directory");
        std::fs::write(dir.join("enabled_plugins"), "[].").expect("the plugins file");
        let config = format!("listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n");
        std::fs::write(dir.join("rabbitmq.conf"), config).expect("the config file");
        let node = Self::spawn(port, &dir).await;
        Self { port, dir, node }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Kills the node and everything it started at once (SIGKILL to its process group).
    pub fn kill(&mut self) {
        let group = format!("-{}", self.node.id());
        let killed = Command::new("kill")
            .args(["-9", "--", &group])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "the node's process group is killed");
        self.node.wait().expect("the node is reaped");
    }

    /// Starts the node again on its data directory.
    pub async fn restart(&mut self) {
        self.node = Self::spawn(self.port, &self.dir).await;
    }

    async fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let node = Command::new(RABBITMQ_SERVER)
            .env(
                "RABBITMQ_NODENAME",
                format!("anteroom-test-{port}@localhost"),
            )
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server is installed (infra/local-services.sh installs it)");
        until_answering_amqp(port, Duration::from_secs(60)).await;
        node
    }
}

impl Drop for DisposableRabbit {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.node.id())])
            .status();
        let _ = self.node.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn until_listening(what: &str, port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until the node greets an AMQP client: it listens a moment before it has
/// booted, and a client that connects then reads a closed or garbled answer.
async fn until_answering_amqp(port: u16, within: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let greets = async || {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"AMQP\x00\x00\x09\x01").await.ok()?;
        let mut frame_type = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut frame_type))
            .await
            .ok()?
            .ok()?;
        // A method frame: connection.start.
        (frame_type[0] == 1).then_some(())
    };
    let deadline = Instant::now() + within;
    while greets().await.is_none() {
        assert!(
            Instant::now() < deadline,
            "rabbitmq-server did not answer on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
