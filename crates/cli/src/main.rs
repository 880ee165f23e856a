//! `cloudsync`: the command-line tool for QA engineers and emulator tests.
//! Exit codes: 0 ok, 1 rejected input or failed operation, 2 usage error;
//! `run` stopped by SIGINT or SIGTERM: 130 or 143 (128 + the signal).

// No `unsafe` here: the signal handlers are signal-hook's.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// `println!` for the CLI's output: a closed stdout (`cloudsync list --json |
/// head`) ends the process quietly with status 141, as a shell reports a
/// process killed by SIGPIPE (Rust ignores SIGPIPE, so `println!` would panic).
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

mod cmds;
mod demo;
mod devserver;
mod interrupt;
mod out;
mod results;
mod run;
mod store;

/// On-device backup sync agent: signed regional config, durable queue, region-locked uploads.
#[derive(Parser)]
#[command(name = "cloudsync", version, about)]
struct Cli {
    /// Database file (queue + trust store). Required by the stateful commands
    /// (given here, before the command, or after it).
    #[arg(long, value_name = "DB")]
    db: Option<PathBuf>,
    /// The firmware root (root envelope JSON): the anchor of every trust
    /// decision. Needed by `init`, `verify`, and every command that uploads
    /// or changes trust (`run`, `config install|refresh`, `account set|sign-out`,
    /// `region set-country`, `rehome`); the other commands read without it.
    /// A root stored in the database is never its own anchor. Given here,
    /// before the command, or after it (which wins).
    #[arg(long, value_name = "ROOT", env = "CLOUDSYNC_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `--db` and `--root` after a command that uses a database (not global:
/// `keygen`, `sign`, `demo` and `dev-server` take neither, and their help
/// does not show them). Before the command they are the top level's.
#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// Database file (queue + trust store); also accepted before the command.
    #[arg(long, value_name = "DB")]
    db: Option<PathBuf>,
    /// The firmware root (root envelope JSON) anchoring trust; also accepted
    /// before the command, or from CLOUDSYNC_ROOT (this one wins).
    #[arg(long, value_name = "ROOT")]
    root: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DocType {
    Root,
    Config,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a new Ed25519 private key file (mode 0600); print its keyid and public key.
    Keygen {
        /// Output key file (must not exist).
        out: PathBuf,
    },
    /// Sign a root or config payload; print the DSSE envelope JSON.
    Sign {
        /// Payload type to sign as.
        #[arg(long = "type", value_enum)]
        doc_type: DocType,
        /// Private key file (repeat for several signatures).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Payload JSON file.
        payload: PathBuf,
    },
    /// Offline check of an envelope against a root; print its version or the error kind.
    Verify {
        /// The root to check against (also accepted before the command, or
        /// from CLOUDSYNC_ROOT).
        #[arg(long, value_name = "ROOT")]
        root: Option<PathBuf>,
        /// Envelope to check (a root rotation or a config).
        envelope: PathBuf,
    },
    /// Create the database, trusting --root ROOT (the firmware's root).
    Init {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Install, refresh or show the signed config.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Set or show the account country / approved region.
    #[command(subcommand)]
    Region(RegionCmd),
    /// Sign an account in or out (items belong to the account signed in when enqueued).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Enqueue files; print one id per line.
    Enqueue {
        #[command(flatten)]
        store: StoreArgs,
        /// Service name in the config.
        #[arg(long, default_value = "backup")]
        service: String,
        /// Higher runs first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Files to enqueue.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Counts per state and pending bytes (`--json` adds the audit retention).
    Status {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List queue items (finished uploads only with `--state done`).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Only items in this state: pending, uploading, failed, dead, held,
        /// or done (finished uploads, read from the audit trail: item id,
        /// region, service and size; the path is not kept after an upload).
        #[arg(long)]
        state: Option<String>,
        /// Only items with an id above this one: for the next page, the last
        /// id shown (with `--state done`, the last `audit_id`).
        #[arg(long, value_name = "ID", default_value_t = 0)]
        after: i64,
        /// At most this many (one page).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Restamp held items to the approved region (requires the user's consent).
    Rehome {
        #[command(flatten)]
        store: StoreArgs,
        /// Only if this is still the approved region (the one the user agreed to);
        /// otherwise fail with `residency` and change nothing.
        #[arg(long, value_name = "REGION")]
        to: Option<String>,
    },
    /// Delete held items (nothing is sent anywhere).
    Discard {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revive dead items.
    RetryDead {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove one item.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        /// Item id.
        id: i64,
    },
    /// Upload due items of the approved region.
    ///
    /// Exit 1, with `error: <kind>: <message>` on stderr, if items remain
    /// failed or pending afterwards (kind: a remaining item's last error, or
    /// `incomplete` when items only wait).
    ///
    /// `busy` says what holds the queue and until when, e.g. `another runner
    /// holds the queue (a live process; its lease ends in 42 s)`. A runner
    /// that was killed holds nothing: the next run takes its items over at
    /// once, resuming from their offsets.
    ///
    /// Ctrl-C (SIGINT) or SIGTERM stops the run within about a second, as an
    /// app's cancel() does: `interrupted (SIGINT): stopping; progress is kept`
    /// on stderr, the item in flight back to pending with its offset kept,
    /// the summary on stdout, and exit status 130 (SIGINT) or 143 (SIGTERM),
    /// as a shell reports a process ended by that signal. A second signal
    /// exits at once (the next run takes the item over at once too).
    Run {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable report on stdout.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds.
        #[arg(long)]
        max_seconds: Option<u64>,
        /// Trust this extra CA (PEM) for every region: for loopback test servers only.
        #[arg(long, hide = true)]
        test_ca: Option<PathBuf>,
        /// Bytes per PATCH.
        #[arg(long, hide = true)]
        chunk_size: Option<u64>,
        /// Runner lease lifetime in seconds (tests that kill runners use a short one).
        #[arg(long, hide = true)]
        lease_secs: Option<u64>,
        /// Bearer token for services that require one: the file's first line (read
        /// at the start and again when the server refuses it). Never printed.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Finished uploads.
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Only rows with an id above this one: for the next page, the last id shown.
        #[arg(long, value_name = "ID", default_value_t = 0)]
        after: i64,
        /// At most this many (one page).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Show or set how many days finished uploads stay in the audit trail
    /// (default 400: a year plus a margin for an annual residency review).
    AuditRetention {
        #[command(flatten)]
        store: StoreArgs,
        /// Keep this many days (1..=36500), for every handle and process on the
        /// database; rows past it are pruned at once.
        #[arg(long)]
        days: Option<u32>,
        /// Prune rows past the retention now (runs also do, at their end).
        #[arg(long)]
        prune: bool,
        /// Machine-readable output: `{"audit_retention_days": N, "pruned": N}`.
        #[arg(long)]
        json: bool,
    },
    /// End-to-end demo on loopback: signed config, an account's token-bearing uploads, residency proof.
    ///
    /// Starts four regional tus servers over TLS (in, sg, us, br on
    /// 127.0.0.2-5) and a config mirror (127.0.0.6) with throwaway keys and a
    /// throwaway CA; the agent fetches root v2 and the config from the mirror,
    /// uploads as a signed-in account to the region of --country, then the
    /// account moves to --switch-to and the old region's items are held.
    /// Exit 0 only if every check held.
    Demo(demo::DemoArgs),
    /// Serve TLS tus servers (and a config mirror) for QA and emulators, with
    /// a signed root and config any client can use as they are.
    DevServer(devserver::DevServerArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Install a root or config envelope (told apart by payloadType).
    Install {
        #[command(flatten)]
        store: StoreArgs,
        /// Envelope file.
        envelope: PathBuf,
    },
    /// Show version, expiry, region ids and when the next refresh is due.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Fetch the next roots and the current config from the root's mirrors
    /// (`sources`); print what was installed, or `unchanged`.
    Refresh {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Sign in account ID; other accounts' items are held until they sign in again.
    ///
    /// A country belongs to an account: without --country the account keeps the
    /// country it had when last signed in, or has none (`region none`: `run`
    /// fails with `no_region` and sends nothing) until it is given one.
    Set {
        #[command(flatten)]
        store: StoreArgs,
        /// Account id (as the account service knows it).
        #[arg(long)]
        id: String,
        /// Also set the account's country (ISO 3166-1 alpha-2), in the same step;
        /// remembered for this account.
        #[arg(long)]
        country: Option<String>,
    },
    /// Sign out: `run` and `enqueue` fail with `no_account`; the queue is kept;
    /// no country is in force until an account signs in (its own comes back).
    SignOut {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print `signed in`, `signed out` or `none` (no account was ever set).
    Show {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum RegionCmd {
    /// Set the signed-in account's country (ISO 3166-1 alpha-2); fails with
    /// `no_account` when signed out (a country belongs to an account).
    SetCountry {
        #[command(flatten)]
        store: StoreArgs,
        /// Country code.
        country: String,
    },
    /// Print the approved region id, or `none` (with the reason, e.g. `none (expired)`).
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Machine-readable output: `{"region": ID or null, "reason": KIND or null}`.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The database the command used, named in its storage errors.
    let used = std::cell::RefCell::new(None);
    let code = match dispatch(cli, &used) {
        Ok(code) => code,
        Err(f) => {
            let (line, code) = f.on_db(used.borrow().as_deref()).report();
            eprintln!("{line}");
            ExitCode::from(code)
        }
    };
    out::flush();
    code
}

// Long: one arm per command, each a call; splitting would scatter the table.
/// Runs the parsed command; `used` is set to the database it opens (named in
/// its storage errors).
fn dispatch(
    cli: Cli,
    used: &std::cell::RefCell<Option<PathBuf>>,
) -> Result<ExitCode, store::Failure> {
    let top_root = cli.root;
    let top_db = cli.db;
    // After the command wins over before it (and over CLOUDSYNC_ROOT).
    let root_of = |s: &StoreArgs| s.root.clone().or_else(|| top_root.clone());
    let need_root = |root: Option<PathBuf>| {
        root.ok_or(store::Failure::Usage(
            "--root ROOT (or CLOUDSYNC_ROOT) is required for this command".into(),
        ))
    };
    let db = |s: StoreArgs| {
        let root = root_of(&s);
        let path =
            s.db.or_else(|| top_db.clone())
                .ok_or(store::Failure::Usage(
                    "--db DB is required for this command".into(),
                ))?;
        *used.borrow_mut() = Some(path.clone());
        Ok::<_, store::Failure>(store::Store::new(path, root))
    };
    match cli.cmd {
        Cmd::Keygen { out } => cmds::keygen(&out),
        Cmd::Sign {
            doc_type,
            keys,
            payload,
        } => cmds::sign(matches!(doc_type, DocType::Root), &keys, &payload),
        Cmd::Verify { root, envelope } => {
            cmds::verify(&need_root(root.or(top_root.clone()))?, &envelope)
        }
        Cmd::Init { store } => {
            let root = need_root(root_of(&store))?;
            cmds::init(&db(store)?, &root)
        }
        Cmd::Config(ConfigCmd::Install { store, envelope }) => {
            cmds::config_install(&db(store)?, &envelope)
        }
        Cmd::Config(ConfigCmd::Show { store, json }) => cmds::config_show(&db(store)?, json),
        Cmd::Config(ConfigCmd::Refresh { store, json }) => cmds::config_refresh(&db(store)?, json),
        Cmd::Region(RegionCmd::SetCountry { store, country }) => {
            cmds::set_country(&db(store)?, &country)
        }
        Cmd::Region(RegionCmd::Show { store, json }) => cmds::region_show(&db(store)?, json),
        Cmd::Account(AccountCmd::Set { store, id, country }) => {
            cmds::account_set(&db(store)?, Some(&id), country.as_deref())
        }
        Cmd::Account(AccountCmd::SignOut { store }) => cmds::account_set(&db(store)?, None, None),
        Cmd::Account(AccountCmd::Show { store }) => cmds::account_show(&db(store)?),
        Cmd::Enqueue {
            store,
            service,
            priority,
            files,
        } => cmds::enqueue(&db(store)?, &service, priority, &files),
        Cmd::Status { store, json } => cmds::status(&db(store)?, json),
        Cmd::List {
            store,
            json,
            state,
            after,
            limit,
        } => cmds::list(&db(store)?, json, state.as_deref(), after, limit),
        Cmd::Rehome { store, to } => cmds::rehome(&db(store)?, to.as_deref()),
        Cmd::Discard { store } => cmds::discard(&db(store)?),
        Cmd::RetryDead { store } => cmds::retry_dead(&db(store)?),
        Cmd::Remove { store, id } => cmds::remove(&db(store)?, id),
        Cmd::Run {
            store,
            json,
            max_seconds,
            test_ca,
            chunk_size,
            lease_secs,
            token_file,
        } => run::run(
            &db(store)?,
            run::RunFlags {
                json,
                max_seconds,
                test_ca,
                chunk_size,
                lease_secs,
                token_file,
            },
        ),
        Cmd::Audit {
            store,
            json,
            after,
            limit,
        } => cmds::audit(&db(store)?, json, after, limit),
        Cmd::AuditRetention {
            store,
            days,
            prune,
            json,
        } => cmds::audit_retention(&db(store)?, days, prune, json),
        Cmd::Demo(args) => demo::run(args),
        Cmd::DevServer(args) => devserver::run(args),
    }
}
