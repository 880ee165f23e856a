//! The demo's checks: each printed `[ok]` or `[FAIL]` as it is made.

/// The checks so far.
pub(super) struct Checks {
    /// Whether every check held: the exit status.
    pub(super) ok: bool,
    /// Whether every residency check held: the summary claims R only then.
    pub(super) residency: bool,
}

impl Checks {
    pub(super) fn new() -> Checks {
        Checks {
            ok: true,
            residency: true,
        }
    }

    pub(super) fn check(&mut self, what: &str, pass: bool) -> bool {
        outln!("  [{}] {what}", if pass { "ok" } else { "FAIL" });
        self.ok &= pass;
        pass
    }

    /// A check that the residency claim of the summary rests on.
    pub(super) fn residency(&mut self, what: &str, pass: bool) -> bool {
        self.residency &= self.check(what, pass);
        pass
    }
}
