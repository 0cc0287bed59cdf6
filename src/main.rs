//! The `tillmark` command: parses arguments, starts logging, and calls into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tillmark::camera::check_site;
use tillmark::camera::definition::{Set, load_all};
use tillmark::config::{Config, ConfigErrors};

// The allocator decides whether memory comes back after people stop browsing. With glibc's, every 200 KB page
// and every SQLite page read on a worker thread left holes in that thread's arena: 150 renders of the heavy pages
// left the daemon at 52 MB (18 MB idle), and it stayed there. jemalloc (the crate TiKV keeps), built unprefixed so
// SQLite's C code uses it too, hands pages that stayed free for a second back to the system from a background
// thread, even while nothing else runs: 39 MB right after the same browsing, 32 MB ten seconds later
// (`cargo bench --bench memory`). mimalloc measured worse (89 MB, and it kept it).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read once at start (jemalloc looks for this symbol). Pages free for 1 s go back to the
/// system (its default, 10 s, kept a sign-in's 19 MiB password hash resident that long: 40 MB idle); two arenas
/// rather than eight for two cores (44 MB after browsing with eight).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: JemallocConf =
    JemallocConf(c"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer, as jemalloc reads `malloc_conf`.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// Safety: it points to a constant string that nothing writes.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
unsafe impl Sync for JemallocConf {}

#[derive(Parser)]
#[command(
    name = "tillmark",
    version,
    about = "Links cash-register events to camera footage.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Without a command, `tillmark --config FILE` runs the daemon, as `tillmark run --config FILE` does.
    #[command(flatten)]
    run: ConfigArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// Config file (TOML). Without one, tillmark runs on its embedded defaults.
    #[arg(long, short, env = "TILLMARK_CONFIG")]
    config: Option<PathBuf>,
}

/// `--stores`: how many, or which.
#[derive(Debug, Clone)]
enum Stores {
    Count(u32),
    Ids(Vec<String>),
}

fn parse_stores(text: &str) -> Result<Stores, String> {
    if let Ok(n) = text.trim().parse::<u32>() {
        return Ok(Stores::Count(n));
    }
    let ids: Vec<String> = text.split(',').map(|id| id.trim().to_string()).collect();
    if ids.iter().any(String::is_empty) {
        return Err(format!(
            "\"{text}\" is neither a number of stores nor a list of store ids like shibuya-01,ny-01"
        ));
    }
    Ok(Stores::Ids(ids))
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(ConfigArg),
    /// Validate a config file and print every error in it.
    CheckConfig(ConfigArg),
    /// Apply the database's migrations and exit, without starting the daemon: the deployment step that
    /// upgrades the database before the new version starts on it.
    Migrate(ConfigArg),
    /// Publish a realistic stream of register events, for demos and load tests.
    Simulate {
        /// The broker to publish to, e.g. mqtt://127.0.0.1:1883.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// Number of stores (store-01, store-02, ...), or their ids: --stores shibuya-01,ny-01.
        #[arg(long, default_value = "2", value_parser = parse_stores)]
        stores: Stores,
        /// The stores' time zone (IANA): events carry its local time and offset.
        #[arg(long, default_value = "Asia/Tokyo")]
        timezone: chrono_tz::Tz,
        /// ISO 4217 code of the amounts, which are in its minor units.
        #[arg(long, default_value = "JPY")]
        currency: String,
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
        /// Sign every event with the key in this environment variable (the [signing] envelope).
        #[arg(long, value_name = "VAR")]
        sign_key_env: Option<String>,
    },
    /// Vendor definitions: check every file in the integrations folder.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// List rejected messages with their reasons, or remove old ones (purge).
    DeadLetters {
        #[command(flatten)]
        config: ConfigArg,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(subcommand)]
        command: Option<DeadLettersCommand>,
    },
    /// People who sign in to the index: add, change a password, an authenticator code, list, remove.
    #[command(subcommand)]
    User(UserCommand),
    /// Personal API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log: check that no row was altered or removed.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Retention: remove now what [retention] keeps no longer, as the daemon does daily.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Exception rules: list them with their counts, or try one on history before switching it on.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// A data subject's requests: export or erase what is kept about a cashier.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Evidence packages: a case as a signed ZIP, the key that signs them, and checking one.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
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
enum EvidenceCommand {
    /// Write the evidence package of an event's case: its history, the event, the register's timeline, each
    /// bookmark with its footage link, stills and clips where the camera system serves them; signed, and
    /// recorded in the audit log.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// The event whose case it is, by its number in the index (/events/N).
        #[arg(long = "case", value_name = "N")]
        case: i64,
        /// The ZIP file to write; it must not exist yet.
        #[arg(long, value_name = "FILE.zip")]
        out: PathBuf,
    },
    /// Print the installation's public key that signs evidence packages, and its fingerprint.
    Key(ConfigArg),
    /// Check a package: every file against its SHA-256 in the manifest, none missing or extra, and the
    /// manifest's signature; exit 1 naming each thing that fails. Needs no config or database.
    Verify {
        /// The package.
        file: PathBuf,
        /// The installation's public key (hex or base64, from `tillmark evidence key`); without it, the key
        /// inside the package is used, which proves only that the package is as its signer made it.
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain from the first row to the last and name the first row that breaks it; exits 1
    /// when one does.
    Verify(ConfigArg),
    /// Print the log's rows from a time on, oldest first, one JSON object a line (for a SIEM).
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// How far back: 30d, 12h.
        #[arg(long, value_parser = tillmark::cli::parse_age)]
        since: tillmark::config::Millis,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Each [[rules]] section, and how many exceptions it found in the last 30 days.
    List(ConfigArg),
    /// Print the matches a rule would have made on the stored events, each judged against what was stored
    /// before it, as live matching judges it; nothing is recorded. Tune a rule's thresholds with it.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The rule's id.
        #[arg(long)]
        rule: String,
        /// How far back: 30d, 12h.
        #[arg(long, value_parser = tillmark::cli::parse_age, default_value = "30d")]
        since: tillmark::config::Millis,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Remove events, dead letters, sessions and audit rows older than [retention] allows, now, and print
    /// what went; recorded in the audit log.
    Purge(ConfigArg),
}

#[derive(Subcommand)]
enum PersonCommand {
    /// Print every event naming the cashier (as its cashier or anywhere in its payload), one JSON object a
    /// line, with its bookmarks and footage links; recorded in the audit log.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// The cashier id, as the registers send it.
        #[arg(long)]
        cashier: String,
        /// Only this store's events.
        #[arg(long)]
        store: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replace the cashier id by a pseudonym in every event naming it (the events stay), in the search index
    /// and the dead letters; events in an open case are left as they are. Asks first unless --yes; recorded
    /// in the audit log.
    Erase {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cashier: String,
        #[arg(long)]
        store: Option<String>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Print the pseudonym an id has in this database, as the audit log names the person.
    Pseudonym {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cashier: String,
    },
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// Remove dead letters now: by default those beyond the config's bounds ([retention] dead_letters,
    /// [dead_letters] max_total), as the daemon does every hour.
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        /// Instead, remove those received longer ago than this: 7d, 12h.
        #[arg(long, value_parser = tillmark::cli::parse_age)]
        older_than: Option<tillmark::config::Millis>,
        /// Instead, remove every dead letter.
        #[arg(long, conflicts_with = "older_than")]
        all: bool,
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
        /// Keep the person's API tokens; by default a new password revokes them.
        #[arg(long)]
        keep_tokens: bool,
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
    /// Ask a user for a code from an authenticator app after the password (meant for owners and
    /// investigators): prints the otpauth URI and the key once. Run again for a new key; --off removes it.
    Totp {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
        /// Remove the authenticator code: the password alone signs in again.
        #[arg(long)]
        off: bool,
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
        /// How long it works: 90d, 12h, 365d. Default: the config's [web] token_lifetime (90d).
        #[arg(long, value_parser = tillmark::cli::parse_age)]
        expires: Option<tillmark::config::Millis>,
    },
    /// List API tokens, everyone's or one person's: what each is for, when made, last used and expiring.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this person's.
        name: Option<String>,
    },
    /// Revoke an API token by the id `token list` shows: it stops working at once.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
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
    // Colour codes only for a person at a terminal: in a file or a journal they are noise, and an operator's
    // grep must match what a register sent, escaped, not interleaved with escapes of our own.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(arg.config.as_deref()).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(1)
    })
}

/// The config, and the vendor definitions (from `dir`, else the config's folder) its camera systems are held
/// against: for the commands that run, vouch for or test camera systems. The problems read as the file's own.
fn load_site(arg: &ConfigArg, dir: Option<&Path>) -> Result<(Config, Set), ExitCode> {
    let config = load(arg)?;
    let definitions = load_all(dir.unwrap_or(&config.integrations.dir));
    match check_site(&config, &definitions) {
        Ok(()) => Ok((config, definitions)),
        Err(errors) => {
            let file = arg.config.clone();
            eprint!("{}", ConfigErrors { file, errors });
            Err(ExitCode::from(1))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // Before anything can open a TLS connection: rustls panics when a library asks for the process default and
    // none is set while several providers are compiled in.
    tillmark::tls::install_default_provider();
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let result = match command {
        Command::Run(arg) => match load_site(&arg, None) {
            Ok((config, _)) => tillmark::cli::run(config, arg.config.as_deref()).await,
            Err(code) => return code,
        },
        Command::CheckConfig(arg) => match load_site(&arg, None) {
            Ok((config, _)) => {
                println!(
                    "{}",
                    tillmark::cli::describe(&config, arg.config.as_deref())
                );
                Ok(())
            }
            Err(code) => return code,
        },
        Command::Migrate(arg) => match load(&arg) {
            Ok(config) => tillmark::cli::migrate(&config)
                .await
                .map(|out| print!("{out}")),
            Err(code) => return code,
        },
        Command::Simulate {
            broker,
            stores,
            timezone,
            currency,
            registers,
            rate,
            duration,
            seed,
            topic_prefix,
            sign_key_env,
        } => {
            let sign_key = match sign_key_env.map(|var| (std::env::var(&var), var)) {
                None => None,
                Some((Ok(key), _)) if !key.is_empty() => Some(tillmark::secret::Secret::new(key)),
                Some((_, var)) => {
                    eprintln!("error: --sign-key-env: environment variable {var} is not set");
                    return ExitCode::from(2);
                }
            };
            let (stores, store_ids) = match stores {
                Stores::Count(n) => (n, Vec::new()),
                Stores::Ids(ids) => (ids.len() as u32, ids),
            };
            let options = tillmark::simulate::SimulateOptions {
                broker,
                stores,
                store_ids,
                timezone,
                currency,
                registers,
                rate,
                duration: std::time::Duration::from_secs(duration),
                seed,
                topic_prefix,
                sign_key,
            };
            tillmark::cli::simulate(options).await
        }
        Command::Integrations(IntegrationsCommand::Check { config, dir }) => {
            match load_site(&config, dir.as_deref()) {
                Ok((config, definitions)) => {
                    let (report, ok) =
                        tillmark::cli::integrations_check(&config, dir.as_deref(), definitions);
                    print!("{report}");
                    if ok {
                        Ok(())
                    } else {
                        return ExitCode::from(1);
                    }
                }
                Err(code) => return code,
            }
        }
        Command::Integrations(IntegrationsCommand::Test {
            config,
            camera,
            system,
            dir,
        }) => match load_site(&config, dir.as_deref()) {
            Ok((config, _)) => {
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
        Command::DeadLetters {
            config,
            limit,
            command: None,
        } => match load(&config) {
            Ok(config) => tillmark::cli::dead_letters(&config, limit).await,
            Err(code) => return code,
        },
        Command::DeadLetters {
            config: outer,
            command:
                Some(DeadLettersCommand::Purge {
                    config,
                    older_than,
                    all,
                }),
            ..
        } => {
            use tillmark::cli::Purge;
            let purge = match (all, older_than) {
                (true, _) => Purge::All,
                (false, Some(age)) => Purge::OlderThan(age),
                (false, None) => Purge::Configured,
            };
            // `--config` may come before `purge` or after it.
            let config = ConfigArg {
                config: config.config.or(outer.config),
            };
            match load(&config) {
                Ok(config) => tillmark::cli::dead_letters_purge(&config, purge)
                    .await
                    .map(|out| print!("{out}")),
                Err(code) => return code,
            }
        }
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
                    keep_tokens,
                } => (config, Account::Passwd(name, password_stdin, keep_tokens)),
                UserCommand::List { config } => (config, Account::List),
                UserCommand::Remove { config, name } => (config, Account::Remove(name)),
                UserCommand::Totp { config, name, off } => (config, Account::Totp(name, off)),
            };
            match load(&config) {
                Ok(config) => run.apply(&config).await,
                Err(code) => return code,
            }
        }
        Command::Token(command) => {
            let (config, run) = match command {
                TokenCommand::Create {
                    config,
                    name,
                    label,
                    expires,
                } => (config, Account::Token(name, label, expires)),
                TokenCommand::List { config, name } => (config, Account::Tokens(name)),
                TokenCommand::Revoke { config, id } => (config, Account::Revoke(id)),
            };
            match load(&config) {
                Ok(config) => run.apply(&config).await,
                Err(code) => return code,
            }
        }
        Command::Audit(AuditCommand::Verify(config)) => match load(&config) {
            Ok(config) => tillmark::cli::audit_verify(&config).await,
            Err(code) => return code,
        },
        Command::Audit(AuditCommand::Export { config, since }) => match load(&config) {
            Ok(config) => tillmark::cli::audit_export(&config, since).await,
            Err(code) => return code,
        },
        Command::Rules(RulesCommand::List(config)) => match load(&config) {
            Ok(config) => tillmark::cli::rules_list(&config)
                .await
                .map(|out| print!("{out}")),
            Err(code) => return code,
        },
        Command::Rules(RulesCommand::Test {
            config,
            rule,
            since,
        }) => match load(&config) {
            Ok(config) => tillmark::cli::rules_test(&config, &rule, since)
                .await
                .map(|out| print!("{out}")),
            Err(code) => return code,
        },
        Command::Retention(RetentionCommand::Purge(config)) => match load(&config) {
            Ok(config) => tillmark::cli::retention_purge(&config)
                .await
                .map(|out| print!("{out}")),
            Err(code) => return code,
        },
        Command::Person(PersonCommand::Export {
            config,
            cashier,
            store,
            out,
        }) => match load(&config) {
            Ok(config) => {
                tillmark::cli::person_export(&config, &cashier, store.as_deref(), out.as_deref())
                    .await
            }
            Err(code) => return code,
        },
        Command::Person(PersonCommand::Erase {
            config,
            cashier,
            store,
            yes,
        }) => match load(&config) {
            Ok(config) => tillmark::cli::person_erase(&config, &cashier, store.as_deref(), yes)
                .await
                .map(|out| print!("{out}")),
            Err(code) => return code,
        },
        Command::Person(PersonCommand::Pseudonym { config, cashier }) => match load(&config) {
            Ok(config) => tillmark::cli::person_pseudonym(&config, &cashier)
                .await
                .map(|out| println!("{out}")),
            Err(code) => return code,
        },
        // Held against the definitions like the daemon's: a clip comes only from hosts they declare.
        Command::Evidence(EvidenceCommand::Export { config, case, out }) => {
            match load_site(&config, None) {
                Ok((config, _)) => tillmark::cli::evidence_export(&config, case, &out)
                    .await
                    .map(|out| print!("{out}")),
                Err(code) => return code,
            }
        }
        Command::Evidence(EvidenceCommand::Key(config)) => match load(&config) {
            Ok(config) => tillmark::cli::evidence_key(&config)
                .await
                .map(|out| print!("{out}")),
            Err(code) => return code,
        },
        Command::Evidence(EvidenceCommand::Verify { file, key }) => {
            tillmark::cli::evidence_verify(&file, key.as_deref()).map(|out| print!("{out}"))
        }
        Command::RetryFailed { config, system } => match load(&config) {
            Ok(config) => tillmark::cli::retry_failed(&config, system.as_deref())
                .await
                .map(|out| print!("{out}")),
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
    Passwd(String, bool, bool),
    List,
    Remove(String),
    Totp(String, bool),
    Token(String, String, Option<tillmark::config::Millis>),
    Tokens(Option<String>),
    Revoke(i64),
}

impl Account {
    async fn apply(self, config: &Config) -> anyhow::Result<()> {
        use tillmark::cli;
        let out = match self {
            Account::Add(name, role, stores, stdin) => {
                cli::user_add(config, &name, &role, &stores, stdin).await?
            }
            Account::Passwd(name, stdin, keep) => {
                cli::user_passwd(config, &name, stdin, keep).await?
            }
            Account::List => cli::user_list(config).await?,
            Account::Remove(name) => cli::user_remove(config, &name).await?,
            Account::Totp(name, off) => cli::user_totp(config, &name, off).await?,
            Account::Token(name, label, expires) => {
                cli::token_create(config, &name, &label, expires).await?
            }
            Account::Tokens(name) => cli::token_list(config, name.as_deref()).await?,
            Account::Revoke(id) => cli::token_revoke(config, id).await?,
        };
        print!("{out}");
        Ok(())
    }
}
