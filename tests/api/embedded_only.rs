//! Embedded mode only: one process per database file.

use std::process::Command;

use crate::helpers::{fresh_namespace, sqlite_path};
use crate::process::{Service, free_port};

#[tokio::test]
async fn a_second_process_on_the_same_database_is_refused() {
    let namespace = fresh_namespace();
    let db = sqlite_path(&namespace);
    let first = Service::start(&namespace, free_port()).await;
    let second = Command::new(env!("CARGO_BIN_EXE_anteroom"))
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("ANTEROOM_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "off")
        .output()
        .expect("the binary runs");
    assert!(
        !second.status.success(),
        "a second process started on the same database"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another anteroom is running"), "{stderr}");
    first.kill9();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
