//! Dropping root after binding: the `user` and `group` keys.
//!
//! Started as root (to bind port 80 or 443), gatehouse binds its listeners,
//! opens its logs, then becomes `user` (and `group`, else that user's own
//! group) before it starts any CGI program or managed FastCGI backend, so
//! those run unprivileged too: a child inherits the ids of its parent.
//! Supplementary groups are cleared first (a process that kept root's
//! groups could still reach what they own), the group is set before the user
//! (once the user is not root, the group cannot change any more), and the
//! switch is checked by trying to get root back, which must fail
//! (CERT POS37-C).
//!
//! Not root: nothing to drop; when the configuration asks for other ids, a
//! warning says they were not taken (as nginx does).

use nix::unistd::{self, Gid, Group, Uid, User};

use crate::config::RunAs;

/// Become `run_as` when running as root; see the module documentation.
pub fn drop_privileges(run_as: &RunAs) -> Result<(), String> {
    if run_as.user.is_none() && run_as.group.is_none() {
        return Ok(());
    }
    let user = match &run_as.user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| format!("cannot look up user `{name}`: {e}"))?
                .ok_or_else(|| format!("there is no user `{name}`"))?,
        ),
        None => None,
    };
    let group_gid = match &run_as.group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|e| format!("cannot look up group `{name}`: {e}"))?
                .ok_or_else(|| format!("there is no group `{name}`"))?
                .gid,
        ),
        None => None,
    };
    let gid = group_gid.or(user.as_ref().map(|u| u.gid));
    let uid = user.as_ref().map(|u| u.uid);

    if !unistd::geteuid().is_root() {
        let same = uid.is_none_or(|u| u == unistd::geteuid())
            && gid.is_none_or(|g| g == unistd::getegid());
        if !same {
            tracing::warn!(
                "`user`/`group` are only taken when gatehouse starts as root; running as uid {}, gid {}",
                unistd::geteuid(),
                unistd::getegid()
            );
        }
        return Ok(());
    }
    if let Some(gid) = gid {
        unistd::setgroups(&[gid]).map_err(|e| format!("cannot clear supplementary groups: {e}"))?;
        unistd::setgid(gid).map_err(|e| format!("cannot switch to gid {gid}: {e}"))?;
    }
    if let Some(uid) = uid {
        unistd::setuid(uid).map_err(|e| format!("cannot switch to uid {uid}: {e}"))?;
    }
    verify(uid, gid)?;
    tracing::info!(
        "running as uid {}, gid {}",
        unistd::geteuid(),
        unistd::getegid()
    );
    Ok(())
}

/// The ids are what was asked, and root cannot be had back.
fn verify(uid: Option<Uid>, gid: Option<Gid>) -> Result<(), String> {
    if let Some(gid) = gid {
        if unistd::getgid() != gid || unistd::getegid() != gid {
            return Err(format!("still not running as gid {gid}"));
        }
    }
    if let Some(uid) = uid {
        if unistd::getuid() != uid || unistd::geteuid() != uid {
            return Err(format!("still not running as uid {uid}"));
        }
        if !uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err("root privileges could be regained after dropping them".to_owned());
        }
    }
    Ok(())
}
