//! `cloudsync demo`: the product end to end on loopback, with proof of
//! residency from the servers' own byte counters, and uploads on behalf of
//! a signed-in account (bearer tokens, a refresh, a sign-out). The agent
//! starts from a firmware root v1 and fetches a root rotation and the config
//! from the root's mirror itself.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudsync::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret};
use cloudsync::{Agent, ErrorKind, State};
use cloudsync_devserver::world::{standard_regions, World};

/// The demo's signed-in account.
const ACCOUNT: &str = "demo-user";

use crate::store::Failure;

/// Flags of `cloudsync demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Account country for the first part (ISO 3166-1 alpha-2).
    #[arg(long, default_value = "IN")]
    country: String,
    /// Country the account moves to in the second part.
    #[arg(long, default_value = "SG")]
    switch_to: String,
    /// Size of the largest generated file, in MiB.
    #[arg(long, default_value_t = 48)]
    big_mib: u64,
    /// Work directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Checks {
    ok: bool,
    /// Whether every residency check held: the summary claims R only then.
    residency: bool,
}

impl Checks {
    fn check(&mut self, what: &str, pass: bool) -> bool {
        outln!("  [{}] {what}", if pass { "ok" } else { "FAIL" });
        self.ok &= pass;
        pass
    }

    /// A check that the residency claim of the summary rests on.
    fn residency(&mut self, what: &str, pass: bool) -> bool {
        self.residency &= self.check(what, pass);
        pass
    }
}

fn write_file(path: &Path, size: u64, seed: u8) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 64 * 1024];
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    let mut left = size;
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// The account service and the app's side of it: the token each region's
/// server accepts now, and the one the app cached (what it hands out until a
/// server refuses it). Tokens are never printed.
#[derive(Default)]
struct Tokens {
    /// Region -> the token its server accepts.
    issued: Mutex<BTreeMap<String, String>>,
    /// Region -> the token the app hands out.
    cached: Mutex<BTreeMap<String, String>>,
    serial: AtomicU32,
    /// `account/region/service` of the last request.
    last: Mutex<String>,
    asked: AtomicU32,
    refreshed: AtomicU32,
}

impl Tokens {
    /// A new token for `region` from the account service.
    fn issue(&self, region: &str) -> String {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        let t = format!("demo-token-{region}-{n}");
        self.issued.lock().unwrap().insert(region.into(), t.clone());
        t
    }
}

impl CredentialProvider for Tokens {
    fn credential(&self, req: &CredentialRequest<'_>) -> Result<Option<Secret>, ProviderError> {
        *self.last.lock().unwrap() = format!("{}/{}/{}", req.account, req.region, req.service);
        if req.account != ACCOUNT {
            return Ok(None);
        }
        let counter = if req.refresh {
            &self.refreshed
        } else {
            &self.asked
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let mut cached = self.cached.lock().unwrap();
        if req.refresh || !cached.contains_key(req.region) {
            let fresh = self.issued.lock().unwrap().get(req.region).cloned();
            let fresh = fresh.ok_or_else(|| ProviderError::new("no token for the region"))?;
            cached.insert(req.region.into(), fresh);
        }
        Ok(Some(Secret::new(cached[req.region].clone())))
    }
}

fn io(e: std::io::Error) -> Failure {
    Failure::Usage(format!("demo setup failed: {e}"))
}

pub fn run(args: DemoArgs) -> Result<ExitCode, Failure> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(io)?;
            tmp.path().to_path_buf()
        }
    };
    let mut checks = Checks {
        ok: true,
        residency: true,
    };

    outln!("== 1. Regional endpoints on loopback (TLS, throwaway CA, bearer token required)");
    let tokens = Arc::new(Tokens::default());
    let mut setups = standard_regions(&["in", "sg", "us", "br"]);
    for s in &mut setups {
        s.bearer_token = Some(tokens.issue(&s.id));
    }
    let world = World::start(&dir.join("servers"), setups).map_err(io)?;
    for id in world.servers.keys() {
        outln!("  region {id:<3} tus server at {}", world.host_port(id));
    }

    outln!("== 2. Signed trust from a mirror (throwaway root and config keys, DSSE + Ed25519)");
    let mirror = world
        .start_mirror(Ipv4Addr::new(127, 0, 0, 6), "mirror")
        .map_err(io)?;
    let (urls, pins) = ([mirror.url()], [mirror.pin.clone()]);
    let firmware_root = world.root_with_sources(1, &urls, &pins);
    mirror
        .publish("root/2.json", &world.root_with_sources(2, &urls, &pins))
        .map_err(io)?;
    mirror
        .publish("config.json", &world.config_envelope(1))
        .map_err(io)?;
    outln!("  firmware root v1 lists the mirror {} (pinned)", urls[0]);
    outln!("  published there: root/2.json (a key rotation) and config.json (config v1)");
    let agent = Agent::open_with(
        dir.join("queue.db"),
        Some(&firmware_root),
        world.agent_options(),
    )?;
    agent.set_credential_provider(Some(tokens.clone()));
    agent.set_account(Some(ACCOUNT), Some(&args.country))?;
    let fetched = agent.refresh_config()?;
    let again = agent.refresh_config()?;
    let info = agent.config_info()?;
    outln!(
        "  refresh_config: root {} -> {}, config {}, from {}; again: {}",
        fetched.roots.first().map_or(info.root_version, |v| v - 1),
        info.root_version,
        fetched
            .config
            .map_or("unchanged".into(), |v| format!("v{v}")),
        fetched.mirror,
        if again.unchanged() {
            "unchanged"
        } else {
            "CHANGED"
        }
    );
    let mut trust = checks.check(
        "the agent stepped root v1 -> v2 and fetched config v1 from the mirror",
        fetched.roots == [2] && fetched.config == Some(1) && info.root_version == 2,
    );
    let seen = mirror.server.source_requests();
    let conditional = seen.last().is_some_and(|r| {
        r.path.ends_with("/config.json") && r.headers.iter().any(|(n, _)| n == "if-none-match")
    });
    trust &= checks.check(
        "a second refresh is unchanged: a conditional request (If-None-Match)",
        again.unchanged() && conditional,
    );
    let private = seen.iter().flat_map(|r| &r.headers).any(|(n, v)| {
        n == "authorization" || n == "cookie" || v.contains(ACCOUNT) || v.contains("demo-token")
    });
    trust &= checks.check(
        "the mirror saw no token, cookie or account in any request",
        !private,
    );
    let region = agent.approved_region()?.ok_or(cloudsync::Error::NoRegion)?;
    outln!(
        "  config v{} expires {}, next refresh due {}; country {} -> approved region {}",
        info.config_version.unwrap_or(0),
        info.expires_at.as_deref().unwrap_or("-"),
        info.refresh_due_at.as_deref().unwrap_or("-"),
        args.country.to_ascii_uppercase(),
        region.id()
    );
    outln!("  account {ACCOUNT} signed in; the app's credential provider is set");

    outln!("== 3. Enqueue generated files");
    let files_dir = dir.join("files");
    std::fs::create_dir_all(&files_dir).map_err(io)?;
    let sizes = [
        0u64,
        1,
        1000,
        100 * 1024,
        1024 * 1024 + 7,
        args.big_mib * 1024 * 1024,
    ];
    let mut paths = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let p = files_dir.join(format!("photo-{i}.bin"));
        write_file(&p, *size, i as u8).map_err(io)?;
        paths.push(p);
    }
    let ids = agent.enqueue_all(&paths, "backup", 0)?;
    outln!(
        "  enqueued {} files ({} bytes) as ids {:?}",
        ids.len(),
        sizes.iter().sum::<u64>(),
        ids
    );

    outln!("== 4. Upload to the approved region");
    let before = world.bytes_by_region();
    let report = if std::io::stdout().is_terminal() {
        let bar = indicatif::ProgressBar::new(sizes.iter().sum());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "  [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        let mut done_before = 0u64;
        let mut current = (0i64, 0u64);
        let r = agent.run_once(Duration::from_secs(600), &mut |p| {
            if p.item_id != current.0 {
                done_before += current.1;
                current = (p.item_id, 0);
            }
            current.1 = p.sent;
            bar.set_position(done_before + p.sent);
            true
        });
        bar.finish_and_clear();
        r?
    } else {
        agent.run_once(Duration::from_secs(600), &mut |_| true)?
    };
    outln!(
        "  uploaded {} items, {} bytes, failed {}, stopped: {}",
        report.uploaded,
        report.bytes,
        report.failed,
        crate::results::snake(&report.stopped)
    );
    outln!(
        "  credential provider asked {} time(s), for {}",
        tokens.asked.load(Ordering::SeqCst),
        tokens.last.lock().unwrap()
    );

    outln!("== 5. Audit trail");
    let audit = agent.audit(0, 1000)?;
    outln!(
        "  {:<4} {:<5} {:<6} {:<22} {:<12} {:>10} {:>10}  sha256",
        "row",
        "item",
        "region",
        "host",
        "peer",
        "bytes",
        "sent"
    );
    for r in &audit {
        outln!(
            "  {:<4} {:<5} {:<6} {:<22} {:<12} {:>10} {:>10}  {}…",
            r.id,
            r.item_id,
            r.region,
            r.host,
            r.peer_ip.as_deref().unwrap_or("-"),
            r.bytes,
            r.sent_bytes.map_or("-".to_string(), |n| n.to_string()),
            &r.sha256[..16]
        );
    }

    outln!("== 6. Checks");
    checks.check(
        &format!("all {} items uploaded", ids.len()),
        report.uploaded == ids.len() as u64 && report.failed == 0,
    );
    checks.residency(
        "every audit row names the approved region",
        audit.iter().all(|r| r.region == region.id()),
    );
    checks.residency(
        "every audit host is the approved region's server",
        audit.iter().all(|r| r.host == world.host_port(region.id())),
    );
    let server = &world.servers[region.id()];
    let stored_ok = ids.iter().zip(&paths).all(|(id, path)| {
        let want = std::fs::read(path).unwrap_or_default();
        server
            .uploads()
            .iter()
            .find(|u| u.metadata_value("item") == Some(id.to_string().as_bytes()))
            .and_then(|u| server.upload_bytes(&u.id).ok())
            .map(|got| got == want)
            .unwrap_or(false)
    });
    checks.check(
        "the server's copies are byte-identical to the sources",
        stored_ok,
    );
    let after = world.bytes_by_region();
    for (id, bytes) in &after {
        let got = bytes - before[id];
        outln!("  server {id:<3} received {got:>10} bytes");
        if id != region.id() {
            checks.residency(&format!("region {id} received zero bytes"), got == 0);
        }
    }
    let home = server.stats();
    let mut creds = checks.check(
        "every request to the approved region carried the account's token (no 401)",
        home.authorization_headers > 0 && home.unauthorized == 0,
    );

    outln!("== 7. The token expires: the server rotates it, the app still holds the old one");
    let batch = |name: &str, n: usize, seed: u8| -> Result<Vec<PathBuf>, Failure> {
        (0..n)
            .map(|i| {
                let p = files_dir.join(format!("{name}-{i}.bin"));
                write_file(&p, 64 * 1024, seed + i as u8).map(|_| p)
            })
            .collect::<Result<_, _>>()
            .map_err(io)
    };
    agent.enqueue_all(&batch("refresh", 2, 50)?, "backup", 0)?;
    server.set_token(Some(tokens.issue(region.id())));
    let (asked, refreshed, refused) = (
        tokens.asked.load(Ordering::SeqCst),
        tokens.refreshed.load(Ordering::SeqCst),
        home.unauthorized,
    );
    let r = agent.run_once(Duration::from_secs(60), &mut |_| true)?;
    let (asked, refreshed, refused) = (
        tokens.asked.load(Ordering::SeqCst) - asked,
        tokens.refreshed.load(Ordering::SeqCst) - refreshed,
        server.stats().unauthorized - refused,
    );
    outln!(
        "  run: server answered 401 x{refused}; provider asked x{asked}, refresh x{refreshed}; uploaded {}",
        r.uploaded
    );
    creds &= checks.check(
        "a 401 is followed by one refresh and the upload succeeds",
        refused == 1 && refreshed == 1 && r.uploaded == 2 && r.failed == 0,
    );

    outln!("== 8. Sign-out stops uploads, keeps the queue; sign-in drains it");
    agent.enqueue_all(&batch("signout", 3, 60)?, "backup", 0)?;
    agent.set_account(None, None)?;
    let before = world.bytes_by_region();
    let kind = agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .err()
        .map(|e| e.kind());
    let extra = files_dir.join("signout-0.bin");
    let enqueue_kind = agent.enqueue(&extra, "backup", 0).err().map(|e| e.kind());
    let kept = agent.stats()?;
    outln!(
        "  signed out: run -> {}, enqueue -> {}; queue kept: pending {} ({} bytes)",
        kind.map_or("ok".into(), |k| k.to_string()),
        enqueue_kind.map_or("ok".into(), |k| k.to_string()),
        kept.pending,
        kept.pending_bytes
    );
    creds &= checks.check(
        "signed out: uploads stop with no_account, nothing sent, nothing lost",
        kind == Some(ErrorKind::NoAccount)
            && enqueue_kind == Some(ErrorKind::NoAccount)
            && kept.pending == 3
            && world.bytes_by_region() == before,
    );
    agent.set_account(Some(ACCOUNT), None)?;
    let r = agent.run_once(Duration::from_secs(60), &mut |_| true)?;
    let drained = agent.stats()?;
    outln!(
        "  signed in again: uploaded {}, pending {}",
        r.uploaded,
        drained.pending
    );
    creds &= checks.check(
        "signed in again: the kept items upload",
        r.uploaded == 3 && drained.pending == 0,
    );

    outln!(
        "== 9. The account moves: {} -> {}",
        args.country.to_ascii_uppercase(),
        args.switch_to.to_ascii_uppercase()
    );
    let later: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = files_dir.join(format!("later-{i}.bin"));
            write_file(&p, 200 * 1024, 100 + i as u8).map(|_| p)
        })
        .collect::<Result<_, _>>()
        .map_err(io)?;
    let later_ids = agent.enqueue_all(&later, "backup", 0)?;
    outln!(
        "  enqueued {} more items under region {} (not yet uploaded)",
        later_ids.len(),
        region.id()
    );
    agent.set_account_country(&args.switch_to)?;
    let new_region = agent.approved_region()?.ok_or(cloudsync::Error::NoRegion)?;
    outln!("  approved region is now {}", new_region.id());
    let held_now = agent.stats()?.held;
    checks.check(
        "the old region's items are held at once, before any run",
        held_now == later_ids.len() as u64,
    );
    let before = world.bytes_by_region();
    let report2 = agent.run_once(Duration::from_secs(60), &mut |_| true)?;
    let held = agent.list(Some(State::Held), 0, 100)?;
    outln!(
        "  run: uploaded {}, held {}",
        report2.uploaded,
        report2.held
    );
    for h in &held {
        outln!(
            "  held item {} (stamped {})",
            h.id,
            h.region.as_deref().unwrap_or("-")
        );
    }
    let after = world.bytes_by_region();
    checks.residency(
        "old-region items are held, not uploaded anywhere",
        report2.uploaded == 0 && held.len() == later_ids.len(),
    );
    checks.residency(
        "no server received a byte after the switch",
        after == before,
    );
    let foreign_auth: u64 = world
        .servers
        .iter()
        .filter(|(id, _)| *id != region.id())
        .map(|(_, s)| s.stats().authorization_headers)
        .sum();
    creds &= checks.residency(
        "no other region's server ever saw an Authorization header",
        foreign_auth == 0,
    );

    outln!("== Summary");
    if checks.residency {
        outln!(
            "  residency (R): uploads reached only region {}; others: 0 bytes",
            region.id()
        );
    } else {
        outln!("  residency (R): NOT shown: a residency check failed (see above)");
    }
    if trust {
        outln!(
            "  trust: the agent fetched root v2 and config v1 from its mirror itself; \
             an unchanged config cost a 304"
        );
    } else {
        outln!("  trust: NOT shown: a refresh check failed (see above)");
    }
    outln!(
        "  nothing lost (N): {} items audited, {} held awaiting consent (rehome) or discard",
        agent.audit(0, 1000)?.len(),
        held.len()
    );
    if creds {
        outln!(
            "  credentials: tokens reached only region {}; one refresh after a 401; \
             the sign-out lost nothing",
            region.id()
        );
    } else {
        outln!("  credentials: NOT shown: a credential check failed (see above)");
    }
    outln!(
        "  result: {}",
        if checks.ok {
            "ALL CHECKS PASSED"
        } else {
            "SOME CHECKS FAILED"
        }
    );
    Ok(if checks.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
