//! A test world with an agent in it: a temporary directory, loopback TLS tus
//! servers (one per region), a queue database trusting the world's signed
//! root, a config installed and an account in a country. [`AgentEnv::new`]
//! is the common shape; [`AgentEnv::builder`] changes one part of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloudsync::auth::CredentialProvider;
use cloudsync::queue::ItemInfo;
use cloudsync::{Agent, AgentOptions, RunReport};
use cloudsync_devserver::world::{standard_regions, RegionSetup, World};
use cloudsync_devserver::{TusServer, UploadInfo};

use crate::timeouts;

/// How long one `run_once` may take (its own `max`).
pub const RUN_MAX: Duration = Duration::from_secs(30);
/// The watchdog of [`AgentEnv::run`]: a run still going after it is a hang.
pub const RUN_WATCHDOG: Duration = Duration::from_secs(60);

/// Fields drop in order: the agent, then the servers, then their directory.
pub struct AgentEnv {
    pub agent: Arc<Agent>,
    pub world: World,
    /// The queue database, `dir/q.db`.
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

type Tweak<'a, T> = Box<dyn FnOnce(&mut T) + 'a>;
type ConfigTweak<'a> = Box<dyn FnOnce(&World, &mut serde_json::Value) + 'a>;

/// How an [`AgentEnv`] is made; every part has the common default.
pub struct Builder<'a> {
    regions: Vec<String>,
    setup: Option<Tweak<'a, Vec<RegionSetup>>>,
    options: Option<Tweak<'a, AgentOptions>>,
    config: Option<ConfigTweak<'a>>,
    account: Option<String>,
    country: String,
    provider: Option<Arc<dyn CredentialProvider>>,
}

impl AgentEnv {
    /// [`standard_regions`] `regions`, config v1 installed, country `IN`
    /// (no account).
    pub fn new(regions: &[&str]) -> AgentEnv {
        AgentEnv::builder(regions).build()
    }

    /// The server of region `in`, where the default country `IN` sends
    /// uploads.
    pub fn server(&self) -> &TusServer {
        &self.world.servers["in"]
    }

    /// `run_once` (60 s) on this thread, which must not fail; for a test
    /// body that is itself under [`crate::timeouts::within`].
    pub fn run(&self, progress: &mut dyn FnMut(cloudsync::Progress) -> bool) -> RunReport {
        self.agent
            .run_once(Duration::from_secs(60), progress)
            .unwrap()
    }

    /// The uploads the `in` server made for item `id`.
    pub fn uploads_of(&self, id: i64) -> Vec<UploadInfo> {
        uploads_of(&self.world, "in", id)
    }

    /// The queued item `id`, as the app lists it.
    pub fn item(&self, id: i64) -> ItemInfo {
        item(&self.agent, id)
    }

    pub fn builder<'a>(regions: &[&str]) -> Builder<'a> {
        Builder {
            regions: regions.iter().map(|r| r.to_string()).collect(),
            setup: None,
            options: None,
            config: None,
            account: None,
            country: "IN".into(),
            provider: None,
        }
    }
}

impl<'a> Builder<'a> {
    /// Changes the regions' setups (bearer tokens, faults, body limits).
    pub fn setup(mut self, f: impl FnOnce(&mut Vec<RegionSetup>) + 'a) -> Self {
        self.setup = Some(Box::new(f));
        self
    }

    /// Changes the agent's options (from `world.agent_options()`).
    pub fn options(mut self, f: impl FnOnce(&mut AgentOptions) + 'a) -> Self {
        self.options = Some(Box::new(f));
        self
    }

    /// Changes config v1's payload before it is signed and installed.
    pub fn config(mut self, f: impl FnOnce(&World, &mut serde_json::Value) + 'a) -> Self {
        self.config = Some(Box::new(f));
        self
    }

    /// The account's country (default `IN`).
    pub fn country(mut self, country: &str) -> Self {
        self.country = country.into();
        self
    }

    /// Signs `account` in (with the country) instead of a country alone.
    pub fn account(mut self, account: &str) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The credential provider, set after the account.
    pub fn provider(mut self, p: Arc<dyn CredentialProvider>) -> Self {
        self.provider = Some(p);
        self
    }

    pub fn build(self) -> AgentEnv {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<&str> = self.regions.iter().map(String::as_str).collect();
        let mut setups = standard_regions(&names);
        if let Some(f) = self.setup {
            f(&mut setups);
        }
        let world = World::start(&dir.path().join("servers"), setups).unwrap();
        let mut opts = world.agent_options();
        if let Some(f) = self.options {
            f(&mut opts);
        }
        let db = dir.path().join("q.db");
        let agent = Agent::open_with(&db, Some(&world.root_envelope), opts).unwrap();
        match self.config {
            None => agent.install(&world.config_envelope(1)).unwrap(),
            Some(f) => {
                let mut cfg = world.config_json(1);
                f(&world, &mut cfg);
                agent.install(&world.sign_config(&cfg)).unwrap()
            }
        };
        match &self.account {
            None => agent.set_account_country(&self.country).unwrap(),
            Some(a) => agent.set_account(Some(a), Some(&self.country)).unwrap(),
        }
        if let Some(p) = self.provider {
            agent.set_credential_provider(Some(p));
        }
        AgentEnv {
            agent: Arc::new(agent),
            world,
            db,
            dir,
        }
    }
}

/// `run_once(RUN_MAX)` on its own thread, under [`RUN_WATCHDOG`].
pub fn run(agent: &Arc<Agent>) -> cloudsync::Result<RunReport> {
    run_with(agent, RUN_MAX, |_| true)
}

/// `run_once(max, progress)` on its own thread, under [`RUN_WATCHDOG`].
pub fn run_with(
    agent: &Arc<Agent>,
    max: Duration,
    mut progress: impl FnMut(cloudsync::Progress) -> bool + Send + 'static,
) -> cloudsync::Result<RunReport> {
    let a = agent.clone();
    timeouts::bounded(RUN_WATCHDOG, "run_once", move || {
        a.run_once(max, &mut progress)
    })
}

/// The queued item `id`, as the app lists it.
pub fn item(agent: &Agent, id: i64) -> ItemInfo {
    agent
        .list(None, 0, 1000)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .expect("item still queued")
}

/// The uploads `region`'s server made for item `id` (its `item` metadata).
pub fn uploads_of(world: &World, region: &str, id: i64) -> Vec<UploadInfo> {
    world.servers[region]
        .uploads()
        .into_iter()
        .filter(|u| u.metadata_value("item") == Some(id.to_string().as_bytes()))
        .collect()
}

/// The bearer token `account` has for `region` in a world made with
/// [`require_tokens`]: `tok-<account>-<region>`.
pub fn token(account: &str, region: &str) -> String {
    format!("tok-{account}-{region}")
}

/// Every region requires `account`'s own [`token`] for it.
pub fn require_tokens(setups: &mut [RegionSetup], account: &str) {
    for s in setups {
        s.bearer_token = Some(token(account, &s.id));
    }
}
