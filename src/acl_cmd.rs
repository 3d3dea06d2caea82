//! `portico acl list|add|remove`: the host's ACL without editing files by hand.
//!
//! Entries live in `DATA/acl.toml` (next to any in the host's config file). A running host
//! applies changes at once (sessions no longer allowed end); when the host is registered,
//! `user:`/`group:` names are checked against the server first.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use portico_actors::console::ConsoleFile;
use portico_actors::host::ManagedAcl;
use portico_core::identity::Identity;
use portico_core::policy::{AclEntry, Approval, Principal};
use portico_core::wire::signal::{CheckPrincipals, SignalRequest, SignalResponse};

use crate::registration;

/// Tells a running host about the new list; says so when none runs.
fn push(data: &Path, acl: &ManagedAcl) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(data.join(portico_core::data_dir::CONSOLE)) else {
        println!("(no running host with a console here: the change applies when the host starts)");
        return Ok(());
    };
    let c: ConsoleFile = serde_json::from_str(&text)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    match agent
        .put(&format!("{}/api/acl", c.url))
        .header("Authorization", &format!("Bearer {}", c.token))
        .send_json(&acl.acl)
    {
        Ok(_) => println!("applied to the running host"),
        Err(ureq::Error::ConnectionFailed | ureq::Error::Io(_)) => {
            println!("(the host is not running: the change applies when it starts)")
        }
        Err(e) => bail!("the running host refused the ACL: {e}"),
    }
    Ok(())
}

async fn check_at_server(
    data: &Path,
    identity: &Identity,
    principal: &Principal,
) -> anyhow::Result<()> {
    if matches!(principal, Principal::Peer(_)) {
        return Ok(());
    }
    let Some(reg) = registration::read(data)? else {
        println!("note: this host is not registered with a server, so {principal} was not checked");
        return Ok(());
    };
    let (client, _) = crate::signin::connect(data, identity, &reg.server).await?;
    match client.request(SignalRequest::CheckPrincipals(CheckPrincipals { principals: vec![principal.to_string()] })).await? {
        SignalResponse::Principals(p) if p.known.first() == Some(&true) => Ok(()),
        SignalResponse::Principals(_) => bail!("{principal} does not exist at {}; create it there first (`portico-signal user add` / `group add`)", reg.server_name),
        SignalResponse::Error(e) => bail!("the server could not check {principal}: {}", e.message),
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

/// `portico acl list`.
pub(crate) fn list(data: &Path) -> anyhow::Result<()> {
    let acl = ManagedAcl::read(data)?;
    if acl.acl.is_empty() {
        println!("no managed entries (add one with `portico acl add group:NAME view,control`)");
    }
    for e in &acl.acl {
        println!(
            "{}\t{}\tapproval={}",
            e.principal,
            e.permissions,
            if e.approval == Approval::Always {
                "always"
            } else {
                "never"
            }
        );
    }
    Ok(())
}

/// `portico acl add PRINCIPAL PERMISSIONS [--approval]`.
pub(crate) fn add(
    data: &Path,
    identity: &Identity,
    principal: &str,
    permissions: &str,
    approval: Approval,
) -> anyhow::Result<()> {
    let principal: Principal = principal.parse()?;
    let permissions = permissions.parse()?;
    crate::runtime()?
        .block_on(check_at_server(data, identity, &principal))
        .context("checking the name at the server")?;
    let mut acl = ManagedAcl::read(data)?;
    acl.upsert(AclEntry {
        principal: principal.clone(),
        permissions,
        approval,
        expires_at: None,
    });
    acl.write(data)?;
    println!("{principal}: {permissions}");
    push(data, &acl)
}

/// `portico acl remove PRINCIPAL`.
pub(crate) fn remove(data: &Path, principal: &str) -> anyhow::Result<()> {
    let principal: Principal = principal.parse()?;
    let mut acl = ManagedAcl::read(data)?;
    let before = acl.acl.len();
    acl.acl.retain(|e| e.principal != principal);
    if acl.acl.len() == before {
        bail!("{principal} is not in the managed ACL (`portico acl list` shows it)");
    }
    acl.write(data)?;
    println!("removed {principal}");
    push(data, &acl)
}
