use std::io::Write;
use std::process::ExitCode;

use anteroom::app::{self, App};
use anteroom::config::{Config, settings_help};
use anteroom::ports::Clock;
use anteroom::telemetry;
use clap::{Parser, Subcommand};

// glibc's allocator spent a fifth of the status poll's time under load; mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A virtual waiting room with seat booking for on-sales. With no settings it
/// runs in embedded mode (one process, one SQLite file) and serves a demo event.
#[derive(Parser)]
#[command(version, about, after_help = settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone, Copy)]
enum Command {
    /// Run the HTTP server and the workers (the default)
    Serve,
    /// Run only the workers: admission, expiry, sweeper
    Worker,
    /// Apply the database migrations and exit
    Migrate,
    /// Print the OpenAPI document (what GET /api/openapi.json serves) and exit
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        // Needs no settings: the document is the same for every deployment.
        return print_openapi();
    }
    telemetry::init_logs();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("anteroom: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Serve => serve(config).await,
        Command::Worker => app::run_workers(config, app::shutdown_signal()).await,
        Command::Migrate => app::Backends::connect(&config, &Clock::system())
            .await
            .map(|_| println!("migrations applied")),
        Command::Openapi => unreachable!("answered before the settings are read"),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anteroom: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the document as `static/openapi.json` holds it: `anteroom openapi > static/openapi.json`.
fn print_openapi() -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(&anteroom::http::openapi_json())
        .and_then(|()| out.flush())
    {
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
    let app = App::build(config, Clock::system()).await?;
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
