//! A redis-server of the test's own, on a port of its own, without persistence:
//! a test may kill and restart it, and it comes back empty, as a Redis that
//! lost its data does. The shared server is never touched.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

pub struct DisposableRedis {
    port: u16,
    server: Child,
}

impl DisposableRedis {
    pub async fn start() -> Self {
        let port = free_port();
        Self { port, server: Self::spawn(port).await }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL): everything it held is gone.
    pub fn kill(&mut self) {
        self.server.kill().expect("redis-server is killed");
        self.server.wait().expect("redis-server is reaped");
    }

    /// Starts an empty server on the same port.
    pub async fn restart(&mut self) {
        self.server = Self::spawn(self.port).await;
    }

    async fn spawn(port: u16) -> Child {
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (infra/local-services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }
}

impl Drop for DisposableRedis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
