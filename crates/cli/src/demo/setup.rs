//! Steps 1 and 2 of the demo: the regions' servers, then the agent's trust
//! from a mirror and the account signed in.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use cloudsync::{Agent, ConfigInfo};
use cloudsync_devserver::mirror::Mirror;
use cloudsync_devserver::world::{standard_regions, World};

use super::checks::Checks;
use super::files::io;
use super::tokens::{Tokens, ACCOUNT};
use crate::cmds::time_text;
use crate::store::Failure;

/// Step 1: one tus server per region on loopback, each requiring its own
/// bearer token from the account service.
pub(super) fn start_regions(dir: &Path) -> Result<(Arc<Tokens>, World), Failure> {
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
    Ok((tokens, world))
}

/// Step 2: the agent starts from a firmware root v1 that lists a mirror,
/// fetches the root rotation and the config from it, and signs the account
/// in. Returns the agent, the approved region's id and whether the trust
/// checks held.
pub(super) fn trust_from_mirror(
    dir: &Path,
    world: &World,
    tokens: &Arc<Tokens>,
    country: &str,
    checks: &mut Checks,
) -> Result<(Agent, String, bool), Failure> {
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
    agent.set_account(Some(ACCOUNT), Some(country))?;
    let (trust, info) = refresh_twice(&agent, &mirror, checks)?;
    let region = agent.approved_region()?.ok_or(cloudsync::Error::NoRegion)?;
    outln!(
        "  config v{} expires {}, next refresh due {}; country {} -> approved region {}",
        info.config_version.unwrap_or(0),
        time_text(info.expires_at_ms).as_deref().unwrap_or("-"),
        time_text(info.refresh_due_at_ms).as_deref().unwrap_or("-"),
        country.to_ascii_uppercase(),
        region.id()
    );
    outln!("  account {ACCOUNT} signed in; the app's credential provider is set");
    Ok((agent, region.id().to_string(), trust))
}

/// Step 2's refreshes: the first steps the root and fetches the config, the
/// second is a conditional request answered unchanged; the mirror never sees
/// the account. Returns whether those checks held, and the config's info.
fn refresh_twice(
    agent: &Agent,
    mirror: &Mirror,
    checks: &mut Checks,
) -> Result<(bool, ConfigInfo), Failure> {
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
    Ok((trust, info))
}
