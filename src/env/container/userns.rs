//! User-namespace id maps: who the container's users are on this machine.
//!
//! As root, the session's user namespace maps every id to itself: files keep their owners,
//! and capabilities held inside count only inside. Rootless, the container's root is the
//! caller; with `newuidmap`/`newgidmap` (package uidmap) and ranges in /etc/subuid and
//! /etc/subgid, ids 1..=N map to the caller's subordinate range, so `chown` inside works.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::env::find_program;

/// One line of a uid_map or gid_map: inside, outside, count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The maps to write for a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<Range>,
    pub gid: Vec<Range>,
    /// Written through the setuid helpers `newuidmap` and `newgidmap` (subordinate ranges),
    /// found here, rather than directly.
    pub helpers: Option<(PathBuf, PathBuf)>,
}

impl IdMaps {
    /// Every id to itself (labrun runs as root).
    pub fn identity() -> IdMaps {
        let all = vec![Range {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        }];
        IdMaps {
            uid: all.clone(),
            gid: all,
            helpers: None,
        }
    }

    /// The caller as root, plus its subordinate ranges when the helpers can map them.
    pub fn rootless(uid: u32, gid: u32, user: &str) -> IdMaps {
        let own = |id| {
            vec![Range {
                inside: 0,
                outside: id,
                count: 1,
            }]
        };
        let sub_uid = subordinate("/etc/subuid", user, uid);
        let sub_gid = subordinate("/etc/subgid", user, gid);
        let helpers = find_program("newuidmap").zip(find_program("newgidmap"));
        match (sub_uid, sub_gid, helpers) {
            (Some(su), Some(sg), Some(helpers)) => {
                let with = |id, (start, count): (u32, u32)| {
                    vec![
                        Range {
                            inside: 0,
                            outside: id,
                            count: 1,
                        },
                        Range {
                            inside: 1,
                            outside: start,
                            count,
                        },
                    ]
                };
                IdMaps {
                    uid: with(uid, su),
                    gid: with(gid, sg),
                    helpers: Some(helpers),
                }
            }
            _ => IdMaps {
                uid: own(uid),
                gid: own(gid),
                helpers: None,
            },
        }
    }

    /// Writes the maps of process `pid`'s user namespace.
    pub fn write(&self, pid: i32) -> io::Result<()> {
        if let Some((newuidmap, newgidmap)) = &self.helpers {
            for (tool, ranges) in [(newuidmap, &self.uid), (newgidmap, &self.gid)] {
                let mut cmd = Command::new(tool);
                cmd.arg(pid.to_string());
                for r in ranges {
                    cmd.args([
                        r.inside.to_string(),
                        r.outside.to_string(),
                        r.count.to_string(),
                    ]);
                }
                let out = cmd.output()?;
                if !out.status.success() {
                    return Err(io::Error::other(format!(
                        "{} failed: {}",
                        tool.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
            }
            return Ok(());
        }
        let text = |ranges: &[Range]| -> String {
            ranges
                .iter()
                .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
                .collect()
        };
        if self
            .gid
            .iter()
            .any(|r| r.outside != 0 || r.count != u32::MAX)
        {
            // Without CAP_SETGID over the parent namespace, setgroups must be denied first.
            let _ = fs::write(format!("/proc/{pid}/setgroups"), "deny");
        }
        fs::write(format!("/proc/{pid}/uid_map"), text(&self.uid))
            .map_err(|e| io::Error::new(e.kind(), format!("writing the uid map: {e}")))?;
        fs::write(format!("/proc/{pid}/gid_map"), text(&self.gid))
            .map_err(|e| io::Error::new(e.kind(), format!("writing the gid map: {e}")))?;
        Ok(())
    }
}

/// The first range of `user` (or of its uid) in a subordinate-id file.
fn subordinate(file: &str, user: &str, id: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (who, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if who != user && who != id.to_string() {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_every_id() {
        let m = IdMaps::identity();
        assert_eq!(m.uid[0].count, u32::MAX);
        assert!(m.helpers.is_none());
    }

    #[test]
    fn subordinate_ranges_are_found_by_name_or_id() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        fs::write(&f, "alice:100000:65536\n1001:200000:1000\n").unwrap();
        let f = f.to_str().unwrap();
        assert_eq!(subordinate(f, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subordinate(f, "bob", 1001), Some((200000, 1000)));
        assert_eq!(subordinate(f, "carol", 1002), None);
    }
}
