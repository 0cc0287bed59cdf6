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
    /// Publish a realistic stream of register events, for demos and load tests.
    Simulate {
        /// The broker to publish to, e.g. mqtt://127.0.0.1:1883.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// Number of stores (store-01, store-02, ...).
        #[arg(long, default_value_t = 2)]
        stores: u32,
        /// Registers per store (r1, r2, ...).
        #[arg(long, default_value_t = 2)]
        registers: u32,
        /// Events per second across all registers.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// How long to publish, in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Makes the stream reproducible.
        #[arg(long)]
        seed: Option<u64>,
        /// First topic level: topics are PREFIX/STORE/REGISTER/events.
        #[arg(long, default_value = "pos")]
        topic_prefix: String,
    },
    /// Vendor definitions: check every file in the integrations folder.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// List rejected messages with their reasons.
    DeadLetters {
        #[command(flatten)]
        config: ConfigArg,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// People who sign in to the index: add, change a password, list, remove.
    #[command(subcommand)]
    User(UserCommand),
    /// Personal API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Put failed bookmarks back in the queue, after fixing what made them fail.
    RetryFailed {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this camera system's.
        #[arg(long)]
        system: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. Without --password-stdin a strong password is made up and printed once.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
        /// owner (everything, manages users), manager (their stores), investigator (their stores, cases),
        /// integrator (camera systems and health, no events or footage).
        #[arg(long)]
        role: String,
        /// The stores a manager or investigator sees, by id: --stores shibuya-01,osaka-02.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password. Without --password-stdin a strong one is made up and printed once.
    Passwd {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their roles and stores.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Remove a user and their API tokens.
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a personal API token for a user; it is printed once and scoped like the user.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// The user it belongs to.
        name: String,
        /// What it is for, to recognise it later.
        #[arg(long, default_value = "api")]
        label: String,
    },
}

#[derive(Subcommand)]
enum IntegrationsCommand {
    /// Validate every definition (built in and in the folder) and each camera system's link to one; prints
    /// every error with its file, line and key; exit 1 if anything would not deliver.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// The definitions folder, instead of the config's `[integrations] dir`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Make one real test bookmark on a camera now, and print every request and answer (secrets blanked), to
    /// prove the wiring on site; exit 1 if it was not made.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The camera, by its device id or name.
        #[arg(long)]
        camera: String,
        /// The camera system, when the camera id is on several.
        #[arg(long)]
        system: Option<String>,
        /// The definitions folder, instead of the config's `[integrations] dir`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
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
        Command::Simulate {
            broker,
            stores,
            registers,
            rate,
            duration,
            seed,
            topic_prefix,
        } => {
            let options = tillmark::simulate::SimulateOptions {
                broker,
                stores,
                registers,
                rate,
                duration: std::time::Duration::from_secs(duration),
                seed,
                topic_prefix,
            };
            tillmark::cli::simulate(options).await
        }
        Command::Integrations(IntegrationsCommand::Check { config, dir }) => match load(&config) {
            Ok(config) => {
                let (report, ok) = tillmark::cli::integrations_check(&config, dir.as_deref());
                print!("{report}");
                if ok {
                    Ok(())
                } else {
                    return ExitCode::from(1);
                }
            }
            Err(code) => return code,
        },
        Command::Integrations(IntegrationsCommand::Test {
            config,
            camera,
            system,
            dir,
        }) => match load(&config) {
            Ok(config) => {
                match tillmark::cli::integrations_test(
                    &config,
                    dir.as_deref(),
                    &camera,
                    system.as_deref(),
                )
                .await
                {
                    Ok((report, made)) => {
                        print!("{report}");
                        if made {
                            Ok(())
                        } else {
                            return ExitCode::from(1);
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Err(code) => return code,
        },
        Command::DeadLetters { config, limit } => match load(&config) {
            Ok(config) => tillmark::cli::dead_letters(&config, limit).await,
            Err(code) => return code,
        },
        Command::User(command) => {
            let (config, run) = match command {
                UserCommand::Add {
                    config,
                    name,
                    role,
                    stores,
                    password_stdin,
                } => (config, Account::Add(name, role, stores, password_stdin)),
                UserCommand::Passwd {
                    config,
                    name,
                    password_stdin,
                } => (config, Account::Passwd(name, password_stdin)),
                UserCommand::List { config } => (config, Account::List),
                UserCommand::Remove { config, name } => (config, Account::Remove(name)),
            };
            match load(&config) {
                Ok(config) => run.apply(&config).await,
                Err(code) => return code,
            }
        }
        Command::Token(TokenCommand::Create {
            config,
            name,
            label,
        }) => match load(&config) {
            Ok(config) => Account::Token(name, label).apply(&config).await,
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

/// An account command, once its config is loaded.
enum Account {
    Add(String, String, Vec<String>, bool),
    Passwd(String, bool),
    List,
    Remove(String),
    Token(String, String),
}

impl Account {
    async fn apply(self, config: &Config) -> anyhow::Result<()> {
        use tillmark::cli;
        let out = match self {
            Account::Add(name, role, stores, stdin) => {
                cli::user_add(config, &name, &role, &stores, stdin).await?
            }
            Account::Passwd(name, stdin) => cli::user_passwd(config, &name, stdin).await?,
            Account::List => cli::user_list(config).await?,
            Account::Remove(name) => cli::user_remove(config, &name).await?,
            Account::Token(name, label) => cli::token_create(config, &name, &label).await?,
        };
        print!("{out}");
        Ok(())
    }
}
