use std::process::ExitCode;

use anteroom::app::{self, App};
use anteroom::config::Config;
use anteroom::telemetry;

// glibc's allocator spent a fifth of the status poll's time under load; mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: anteroom [serve | worker | migrate]

  serve    run the HTTP server and the workers (default)
  worker   run only the workers (admission, expiry, sweeper)
  migrate  apply database migrations and exit

Configuration comes from the environment; see README.md.";

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_logs();
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("anteroom: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command.as_str() {
        "serve" => serve(config).await,
        "worker" => app::run_workers(config, app::shutdown_signal()).await,
        "migrate" => app::Backends::connect(&config).await.map(|_| println!("migrations applied")),
        other => {
            eprintln!("anteroom: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anteroom: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), app::StartError> {
    // An operator's own token stays out of the output (and so out of collected logs).
    let generated_admin_token = config.admin_token.is_none();
    let app = App::build(config).await?;
    let addr = app.local_addr()?;
    println!("Anteroom is listening on http://{addr}");
    if let Some(demo) = app.demo_event() {
        println!(
            "A demo event is on sale: http://{addr}/api/events/{demo} (waiting room: http://{addr}/events/{demo})"
        );
    }
    if generated_admin_token {
        println!("Admin token: {}", app.admin_token().expose());
    } else {
        println!("Admin token: the one in ANTEROOM_ADMIN_TOKEN");
    }
    app.run_until(app::shutdown_signal()).await?;
    Ok(())
}
