//! Steps 3 to 9 of the demo and its summary: uploads as the account, proof
//! that the other regions got zero bytes, a token refresh, a sign-out and a
//! move of the account to another country.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cloudsync::queue::AuditRecord;
use cloudsync::{Agent, ErrorKind, RunReport, State};
use cloudsync_devserver::world::World;
use cloudsync_devserver::TusServer;

use super::checks::Checks;
use super::files::{generate, io, write_file};
use super::tokens::{Tokens, ACCOUNT};
use crate::store::Failure;

/// What steps 3 to 9 share, once the agent is signed in.
pub(super) struct Demo {
    /// Where the generated files are written.
    pub(super) files_dir: PathBuf,
    pub(super) tokens: Arc<Tokens>,
    pub(super) world: World,
    pub(super) agent: Agent,
    /// The region approved for the account's first country.
    pub(super) region: String,
    pub(super) checks: Checks,
}

impl Demo {
    /// The server of the region approved first.
    fn home(&self) -> &TusServer {
        &self.world.servers[self.region.as_str()]
    }

    /// Step 3: files from empty to `big_mib` MiB, enqueued. Returns their
    /// ids, paths and total size.
    pub(super) fn enqueue_files(
        &self,
        big_mib: u64,
    ) -> Result<(Vec<i64>, Vec<PathBuf>, u64), Failure> {
        outln!("== 3. Enqueue generated files");
        std::fs::create_dir_all(&self.files_dir).map_err(io)?;
        let sizes = [
            0u64,
            1,
            1000,
            100 * 1024,
            1024 * 1024 + 7,
            big_mib * 1024 * 1024,
        ];
        let mut paths = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let p = self.files_dir.join(format!("photo-{i}.bin"));
            write_file(&p, *size, i as u8).map_err(io)?;
            paths.push(p);
        }
        let ids = self.agent.enqueue_all(&paths, "backup", 0)?;
        let total = sizes.iter().sum::<u64>();
        outln!(
            "  enqueued {} files ({} bytes) as ids {:?}",
            ids.len(),
            total,
            ids
        );
        Ok((ids, paths, total))
    }

    /// Step 4: one run uploads the queue (`total` bytes) to the approved
    /// region, with a progress bar on a terminal.
    pub(super) fn upload(&self, total: u64) -> Result<RunReport, Failure> {
        outln!("== 4. Upload to the approved region");
        let report = if std::io::stdout().is_terminal() {
            self.run_with_bar(total)?
        } else {
            self.agent
                .run_once(Duration::from_secs(600), &mut |_| true)?
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
            self.tokens.asked.load(Ordering::SeqCst),
            self.tokens.last.lock().unwrap()
        );
        Ok(report)
    }

    /// A run with a progress bar over all its items (`total` bytes).
    fn run_with_bar(&self, total: u64) -> cloudsync::Result<RunReport> {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "  [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        let mut done_before = 0u64;
        let mut current = (0i64, 0u64);
        let r = self.agent.run_once(Duration::from_secs(600), &mut |p| {
            if p.item_id != current.0 {
                done_before += current.1;
                current = (p.item_id, 0);
            }
            current.1 = p.sent;
            bar.set_position(done_before + p.sent);
            true
        });
        bar.finish_and_clear();
        r
    }

    /// Step 5: the audit trail, one row per upload.
    pub(super) fn print_audit(&self) -> Result<Vec<AuditRecord>, Failure> {
        outln!("== 5. Audit trail");
        let audit = self.agent.audit(0, 1000)?;
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
        Ok(audit)
    }

    /// Step 6: everything uploaded, byte for byte, to the approved region
    /// only (the servers' own counters against `before` the run), with the
    /// account's token. Returns whether the token check held.
    pub(super) fn check_first_upload(
        &mut self,
        ids: &[i64],
        paths: &[PathBuf],
        report: &RunReport,
        audit: &[AuditRecord],
        before: &BTreeMap<String, u64>,
    ) -> bool {
        outln!("== 6. Checks");
        self.checks.check(
            &format!("all {} items uploaded", ids.len()),
            report.uploaded == ids.len() as u64 && report.failed == 0,
        );
        self.checks.residency(
            "every audit row names the approved region",
            audit.iter().all(|r| r.region == self.region),
        );
        let host = self.world.host_port(&self.region);
        self.checks.residency(
            "every audit host is the approved region's server",
            audit.iter().all(|r| r.host == host),
        );
        let server = self.home();
        let stored_ok = ids.iter().zip(paths).all(|(id, path)| {
            let want = std::fs::read(path).unwrap_or_default();
            server
                .uploads()
                .iter()
                .find(|u| u.metadata_value("item") == Some(id.to_string().as_bytes()))
                .and_then(|u| server.upload_bytes(&u.id).ok())
                .map(|got| got == want)
                .unwrap_or(false)
        });
        self.checks.check(
            "the server's copies are byte-identical to the sources",
            stored_ok,
        );
        let after = self.world.bytes_by_region();
        for (id, bytes) in &after {
            let got = bytes - before[id];
            outln!("  server {id:<3} received {got:>10} bytes");
            if *id != self.region {
                self.checks
                    .residency(&format!("region {id} received zero bytes"), got == 0);
            }
        }
        let home = self.home().stats();
        self.checks.check(
            "every request to the approved region carried the account's token (no 401)",
            home.authorization_headers > 0 && home.unauthorized == 0,
        )
    }

    /// Step 7: the server rotates the account's token; the app's cached one
    /// is refused once, refreshed once, and the upload goes through. Returns
    /// whether that check held.
    pub(super) fn token_refresh(&mut self) -> Result<bool, Failure> {
        outln!("== 7. The token expires: the server rotates it, the app still holds the old one");
        let files = generate(&self.files_dir, "refresh", 2, 64 * 1024, 50)?;
        self.agent.enqueue_all(&files, "backup", 0)?;
        self.home().set_token(Some(self.tokens.issue(&self.region)));
        let (asked, refreshed, refused) = (
            self.tokens.asked.load(Ordering::SeqCst),
            self.tokens.refreshed.load(Ordering::SeqCst),
            self.home().stats().unauthorized,
        );
        let r = self
            .agent
            .run_once(Duration::from_secs(60), &mut |_| true)?;
        let (asked, refreshed, refused) = (
            self.tokens.asked.load(Ordering::SeqCst) - asked,
            self.tokens.refreshed.load(Ordering::SeqCst) - refreshed,
            self.home().stats().unauthorized - refused,
        );
        outln!(
            "  run: server answered 401 x{refused}; provider asked x{asked}, refresh x{refreshed}; uploaded {}",
            r.uploaded
        );
        Ok(self.checks.check(
            "a 401 is followed by one refresh and the upload succeeds",
            refused == 1 && refreshed == 1 && r.uploaded == 2 && r.failed == 0,
        ))
    }

    /// Step 8: signed out, runs and enqueues fail with `no_account` and the
    /// queue is kept; signed in again, it drains. Returns whether both
    /// checks held.
    pub(super) fn sign_out_and_in(&mut self) -> Result<bool, Failure> {
        outln!("== 8. Sign-out stops uploads, keeps the queue; sign-in drains it");
        let agent = &self.agent;
        agent.enqueue_all(
            &generate(&self.files_dir, "signout", 3, 64 * 1024, 60)?,
            "backup",
            0,
        )?;
        agent.set_account(None, None)?;
        let before = self.world.bytes_by_region();
        let kind = agent
            .run_once(Duration::from_secs(60), &mut |_| true)
            .err()
            .map(|e| e.kind());
        let extra = self.files_dir.join("signout-0.bin");
        let enqueue_kind = agent.enqueue(&extra, "backup", 0).err().map(|e| e.kind());
        let kept = agent.stats()?;
        outln!(
            "  signed out: run -> {}, enqueue -> {}; queue kept: pending {} ({} bytes)",
            kind.map_or("ok".into(), |k| k.to_string()),
            enqueue_kind.map_or("ok".into(), |k| k.to_string()),
            kept.pending,
            kept.pending_bytes
        );
        let mut creds = self.checks.check(
            "signed out: uploads stop with no_account, nothing sent, nothing lost",
            kind == Some(ErrorKind::NoAccount)
                && enqueue_kind == Some(ErrorKind::NoAccount)
                && kept.pending == 3
                && self.world.bytes_by_region() == before,
        );
        agent.set_account(Some(ACCOUNT), None)?;
        let r = agent.run_once(Duration::from_secs(60), &mut |_| true)?;
        let drained = agent.stats()?;
        outln!(
            "  signed in again: uploaded {}, pending {}",
            r.uploaded,
            drained.pending
        );
        creds &= self.checks.check(
            "signed in again: the kept items upload",
            r.uploaded == 3 && drained.pending == 0,
        );
        Ok(creds)
    }

    /// Step 9: the account moves country; the items stamped with the old
    /// region are held at once and no server receives a byte. Returns how
    /// many items are held and whether the Authorization check held.
    pub(super) fn move_account(
        &mut self,
        country: &str,
        switch_to: &str,
    ) -> Result<(usize, bool), Failure> {
        outln!(
            "== 9. The account moves: {} -> {}",
            country.to_ascii_uppercase(),
            switch_to.to_ascii_uppercase()
        );
        let agent = &self.agent;
        let later = generate(&self.files_dir, "later", 3, 200 * 1024, 100)?;
        let later_ids = agent.enqueue_all(&later, "backup", 0)?;
        outln!(
            "  enqueued {} more items under region {} (not yet uploaded)",
            later_ids.len(),
            self.region
        );
        agent.set_account_country(switch_to)?;
        let new_region = agent.approved_region()?.ok_or(cloudsync::Error::NoRegion)?;
        outln!("  approved region is now {}", new_region.id());
        let held_now = agent.stats()?.held;
        self.checks.check(
            "the old region's items are held at once, before any run",
            held_now == later_ids.len() as u64,
        );
        let before = self.world.bytes_by_region();
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
        let after = self.world.bytes_by_region();
        self.checks.residency(
            "old-region items are held, not uploaded anywhere",
            report2.uploaded == 0 && held.len() == later_ids.len(),
        );
        self.checks.residency(
            "no server received a byte after the switch",
            after == before,
        );
        let foreign_auth: u64 = self
            .world
            .servers
            .iter()
            .filter(|(id, _)| **id != self.region)
            .map(|(_, s)| s.stats().authorization_headers)
            .sum();
        let creds = self.checks.residency(
            "no other region's server ever saw an Authorization header",
            foreign_auth == 0,
        );
        Ok((held.len(), creds))
    }

    /// The summary: what was shown (each claim only if its checks held),
    /// and the exit status.
    pub(super) fn summary(
        &self,
        trust: bool,
        creds: bool,
        held: usize,
    ) -> Result<ExitCode, Failure> {
        outln!("== Summary");
        if self.checks.residency {
            outln!(
                "  residency (R): uploads reached only region {}; others: 0 bytes",
                self.region
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
            self.agent.audit(0, 1000)?.len(),
            held
        );
        if creds {
            outln!(
                "  credentials: tokens reached only region {}; one refresh after a 401; \
                 the sign-out lost nothing",
                self.region
            );
        } else {
            outln!("  credentials: NOT shown: a credential check failed (see above)");
        }
        let ok = self.checks.ok;
        outln!(
            "  result: {}",
            if ok {
                "ALL CHECKS PASSED"
            } else {
                "SOME CHECKS FAILED"
            }
        );
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
