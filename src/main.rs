//! The `tillmark` command: parses arguments, starts logging, and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tillmark::config::Config;

#[derive(Parser)]
#[command(
    name = "tillmark",
    version,
    about = "Links cash-register events to camera footage."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// Config file (TOML). Without one, tillmark runs on its embedded defaults.
    #[arg(long, short, env = "TILLMARK_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(ConfigArg),
    /// Validate a config file and print every error in it.
    CheckConfig(ConfigArg),
    /// List rejected messages with their reasons.
    DeadLetters {
        #[command(flatten)]
        config: ConfigArg,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put failed bookmarks back in the queue, after fixing what made them fail.
    RetryFailed {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this camera system's.
        #[arg(long)]
        system: Option<String>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(arg.config.as_deref()).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(1)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let command = cli.command.unwrap_or(Command::Run(ConfigArg {
        config: std::env::var_os("TILLMARK_CONFIG").map(PathBuf::from),
    }));
    let result = match command {
        Command::Run(arg) => match load(&arg) {
            Ok(config) => tillmark::cli::run(config).await,
            Err(code) => return code,
        },
        Command::CheckConfig(arg) => match load(&arg) {
            Ok(config) => {
                println!(
                    "{}",
                    tillmark::cli::describe(&config, arg.config.as_deref())
                );
                Ok(())
            }
            Err(code) => return code,
        },
        Command::DeadLetters { config, limit } => match load(&config) {
            Ok(config) => tillmark::cli::dead_letters(&config, limit).await,
            Err(code) => return code,
        },
        Command::RetryFailed { config, system } => match load(&config) {
            Ok(config) => tillmark::cli::retry_failed(&config, system.as_deref()).await,
            Err(code) => return code,
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
