//! Admin commands for host enrollment: tokens (`node enroll`, `node enrollments`,
//! `node revoke-enrollment`) and the waiting list (`host pending|approve|reject`).

use super::{AdminCommand, AdminContext, AdminError, Outcome};
use crate::store::NodePath;

/// Runs one enrollment command (the caller routes only these here).
pub(super) fn run(ctx: &AdminContext<'_>, cmd: AdminCommand) -> Result<Outcome, AdminError> {
    let s = ctx.store;
    let text = match cmd {
        AdminCommand::NodeEnroll { path, uses, hours } => {
            let folder = NodePath::parse(&path)?;
            if hours == 0 {
                return Err(AdminError::Invalid(
                    "a token valid 0 hours admits nobody; give --hours N (N ≥ 1)".into(),
                ));
            }
            let expires_at = ctx.now.saturating_add(hours.saturating_mul(3600));
            let (token, id) = s.create_enrollment(&folder, uses, expires_at, ctx.now)?;
            ctx.audit(
                "node.enroll",
                format!("{folder} enrollment {id} for {uses} host(s), {hours} h"),
            )?;
            format!(
                "enrollment {id}: {uses} host(s) into {folder}, valid {hours} h (shown once):\n\
                 {token}\n\
                 on each host: portico host --server ADDR --enroll {token}"
            )
        }
        AdminCommand::EnrollList => {
            let mut out = String::new();
            for (id, e) in s.enrollments()? {
                let state = if e.expires_at < ctx.now {
                    "expired".to_string()
                } else {
                    format!("{} h left", (e.expires_at - ctx.now).div_ceil(3600))
                };
                out.push_str(&format!(
                    "{id}  {:<32} {:>4} use(s) left  {state}\n",
                    e.folder.as_str(),
                    e.uses_left
                ));
            }
            if out.is_empty() {
                "no enrollment tokens; make one with `portico-signal node enroll FOLDER`".into()
            } else {
                out.trim_end().into()
            }
        }
        AdminCommand::EnrollRevoke { id } => {
            let n = s.revoke_enrollment(&id)?;
            if n == 0 {
                return Err(AdminError::Invalid(format!(
                    "no enrollment {id}; `portico-signal node enrollments` lists them"
                )));
            }
            ctx.audit("node.revoke_enrollment", id.clone())?;
            format!("revoked enrollment {id}")
        }
        AdminCommand::HostPending => {
            let mut out = String::new();
            for p in s.pending()? {
                out.push_str(&format!(
                    "{}  from {}  wants {}  {}  waiting since {}\n",
                    p.peer,
                    p.ip,
                    p.wanted
                        .as_ref()
                        .map(NodePath::to_string)
                        .unwrap_or_else(|| "/unassigned/".into()),
                    p.agent,
                    p.first_seen
                ));
            }
            if out.is_empty() {
                "no hosts wait for approval".into()
            } else {
                out.trim_end().into()
            }
        }
        AdminCommand::HostApprove { peer, path } => {
            let path = path.as_deref().map(NodePath::parse).transpose()?;
            let h = s.approve_host(&peer, path, ctx.now)?;
            ctx.audit(
                "host.approve",
                format!("{peer} {} {}", h.internet_id, h.node_path),
            )?;
            format!(
                "approved {peer}: Internet-ID {} at {} (it registers at its next attempt)",
                h.internet_id, h.node_path
            )
        }
        AdminCommand::HostReject { peer } => {
            s.reject_host(&peer, ctx.now)?;
            ctx.audit("host.reject", peer.clone())?;
            format!("rejected {peer}")
        }
        other => {
            return Err(AdminError::Invalid(format!(
                "not an enrollment command: {other:?}"
            )))
        }
    };
    Ok((text, Vec::new(), None))
}
