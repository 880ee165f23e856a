//! # cloudsync
//!
//! An on-device backup sync agent for MIUI phones: it verifies a signed
//! regional config, picks the account's approved region, keeps a durable
//! upload queue in SQLite, and uploads with tus only to hosts of that region.
//!
//! ```
//! use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
//! use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
//! use cloudsync::{Agent, ErrorKind};
//!
//! # fn main() -> Result<(), cloudsync::Error> {
//! // The publisher's keys (normally offline; the phone only holds public keys).
//! let (root_key, config_key) = (SigningKey::generate()?, SigningKey::generate()?);
//! let root = sign_envelope(
//!     ROOT_PAYLOAD_TYPE,
//!     &root_payload(1, "2100-01-01T00:00:00Z", &[&root_key], 1, &[&config_key], 1),
//!     &[&root_key],
//! );
//! let config = sign_envelope(CONFIG_PAYLOAD_TYPE, br#"{
//!     "version": 1, "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
//!     "countries": {"IN": "in"},
//!     "regions": {"in": {"services": {"backup": {"url": "https://backup.in.example.net/files/",
//!                                                "protocol": "tus"}},
//!                        "allowed_hosts": ["backup.in.example.net"]}}}"#, &[&config_key]);
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let agent = Agent::open(dir.path().join("cloudsync.db"), &root)?;
//! agent.install(&config)?;
//! agent.set_account_country("IN")?;
//! let region = agent.approved_region()?.expect("IN maps to a region");
//! assert_eq!(region.id(), "in");
//!
//! // The residency guard: only the region's own hosts pass.
//! assert!(region.guard("https://backup.in.example.net/files/abc").is_ok());
//! let refused = region.guard("https://backup.sg.example.net/files/abc").unwrap_err();
//! assert_eq!(refused.kind(), ErrorKind::Residency);
//! # Ok(()) }
//! ```
//!
//! The three invariants — residency (R), nothing lost (N), host app survives
//! (S) — are described in `docs/DESIGN.md` §2, with the tests that defend them.

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod codes;

pub mod agent;
pub mod auth;
pub mod config;
pub mod error;
pub mod net;
pub mod queue;
pub mod region;
pub mod upload;

#[allow(unsafe_code)]
#[warn(clippy::undocumented_unsafe_blocks)]
pub mod ffi;

/// The runner lock's `flock`: the only `unsafe`
/// outside `ffi` (see the module's comment).
#[allow(unsafe_code)]
#[warn(clippy::undocumented_unsafe_blocks)]
#[doc(hidden)]
pub mod platform;

pub use agent::{
    AccountState, Agent, AgentOptions, ConfigInfo, EventKind, Installed, Refreshed, RunEvent,
    RunReport, StopReason,
};

/// The library's version (`CARGO_PKG_VERSION`), as the Java and C APIs report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use error::{Error, ErrorKind, JavaException, Result};
pub use queue::{BackupRule, HeldReason, Network, NetworkRule, State, WaitReason};
pub use upload::Progress;
