//! Where this process's cgroups are: for cgroup v2 and for each v1 hierarchy, the directory of
//! the cgroup we are in and the controllers it offers.
//!
//! Read from `/proc/self/cgroup` (our path in each hierarchy) and `/proc/self/mountinfo`
//! (where each hierarchy is mounted, and which part of it: a container may mount only its own
//! subtree, so the mount's root is taken off our path before joining it to the mountpoint).
//! Nothing is assumed about `/sys/fs/cgroup`.

use std::fs;
use std::path::{Path, PathBuf};

/// Names of the cgroup v2 directories labrun moves its own process into when its cgroup must
/// hand controllers to children (see `v2::enable`). They are not run cgroups.
pub(super) const SUPERVISOR_PREFIX: &str = "labrun-supervisor-";

/// Our cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Base {
    /// The directory of the cgroup this process is in (for v2: the parent of labrun's own
    /// supervisor cgroup if it has moved itself into one).
    pub dir: PathBuf,
    /// v2: the controllers this cgroup can hand to children (`cgroup.controllers`).
    /// v1: the controllers mounted in this hierarchy.
    pub controllers: Vec<String>,
}

/// All the hierarchies this process is in.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Hierarchies {
    pub v2: Option<Base>,
    pub v1: Vec<Base>,
}

/// Where a run's cgroup for one controller goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Place {
    V2,
    /// Index into `Hierarchies::v1`.
    V1(usize),
}

impl Hierarchies {
    /// Reads this process's hierarchies from `/proc`. Unreadable files mean no cgroups.
    pub fn discover() -> Hierarchies {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut found = parse(&mountinfo, &cgroup);
        if let Some(v2) = &mut found.v2 {
            v2.controllers = fs::read_to_string(v2.dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
        }
        found
    }

    /// v2 when our v2 cgroup offers the controller (a v2-only host, or a hybrid one where it
    /// is bound to the unified hierarchy), else the v1 hierarchy that has it, else none.
    pub fn place(&self, controller: &str) -> Option<Place> {
        if let Some(v2) = &self.v2
            && v2.controllers.iter().any(|c| c == controller)
        {
            return Some(Place::V2);
        }
        self.v1
            .iter()
            .position(|b| b.controllers.iter().any(|c| c == controller))
            .map(Place::V1)
    }
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup filesystem.
struct CgroupMount {
    v2: bool,
    /// The part of the hierarchy mounted (`/` for all of it).
    root: PathBuf,
    mountpoint: PathBuf,
    /// Super options: the v1 controllers (and `rw`, `name=…`, …).
    options: Vec<String>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mountpoint options [optional…] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || right.len() < 3 {
            continue;
        }
        let v2 = match right[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        mounts.push(CgroupMount {
            v2,
            root: PathBuf::from(unescape(fields[3])),
            mountpoint: PathBuf::from(unescape(fields[4])),
            options: right[2].split(',').map(String::from).collect(),
        });
    }
    mounts
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
            out.push(n as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Our directory in a hierarchy: the mountpoint of a mount of it whose root holds our path.
fn locate<'a>(mounts: impl Iterator<Item = &'a CgroupMount>, path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let mut best: Option<(usize, PathBuf)> = None;
    for m in mounts {
        let Ok(rest) = path.strip_prefix(&m.root) else {
            continue;
        };
        // Prefer the mount of the whole hierarchy (shortest root) over bind mounts of parts.
        let depth = m.root.components().count();
        if best.as_ref().is_none_or(|(d, _)| depth < *d) {
            best = Some((depth, m.mountpoint.join(rest)));
        }
    }
    best.map(|(_, p)| p)
}

/// The hierarchies described by a mountinfo and a `/proc/<pid>/cgroup` text (v2 controllers
/// left empty: they are read from the cgroup's directory).
fn parse(mountinfo: &str, cgroup: &str) -> Hierarchies {
    let mounts = cgroup_mounts(mountinfo);
    let mut found = Hierarchies::default();
    for line in cgroup.lines() {
        // hierarchy-id:controller-list:path
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(list), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        if id == "0" && list.is_empty() {
            let Some(mut dir) = locate(mounts.iter().filter(|m| m.v2), path) else {
                continue;
            };
            if dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(SUPERVISOR_PREFIX))
            {
                dir.pop();
            }
            found.v2 = Some(Base {
                dir,
                controllers: Vec::new(),
            });
            continue;
        }
        let controllers: Vec<String> = list
            .split(',')
            .filter(|c| !c.is_empty() && !c.starts_with("name="))
            .map(String::from)
            .collect();
        if controllers.is_empty() {
            continue;
        }
        let mounted = mounts
            .iter()
            .filter(|m| !m.v2 && controllers.iter().all(|c| m.options.contains(c)));
        if let Some(dir) = locate(mounted, path) {
            found.v1.push(Base { dir, controllers });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hybrid_host_nests_each_v1_controller_where_we_are() {
        let h = parse(
            HYBRID_MOUNTS,
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/cfc8\n1:cpu,cpuacct:/a b\n0::/\n",
        );
        assert_eq!(h.v2.unwrap().dir, PathBuf::from("/sys/fs/cgroup/unified"));
        let dirs: Vec<_> =
            h.v1.iter()
                .map(|b| (b.dir.clone(), b.controllers.clone()))
                .collect();
        assert_eq!(
            dirs,
            vec![
                (
                    PathBuf::from("/sys/fs/cgroup/pids"),
                    vec!["pids".to_string()]
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/memory/process_api/cfc8"),
                    vec!["memory".to_string()]
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a b"),
                    vec!["cpu".to_string(), "cpuacct".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn a_container_mounting_its_own_subtree_sees_the_mount_root_taken_off() {
        let mounts = "\
700 600 0:26 /system.slice/docker-1.scope /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate
701 600 0:26 /system.slice/docker-1.scope /mnt/my\\040cg rw - cgroup2 cgroup2 rw
";
        let h = parse(mounts, "0::/system.slice/docker-1.scope/init\n");
        assert_eq!(h.v2.unwrap().dir, PathBuf::from("/sys/fs/cgroup/init"));
        // A path outside every mounted part: no directory.
        assert_eq!(parse(mounts, "0::/user.slice\n").v2, None);
    }

    #[test]
    fn labrun_s_own_supervisor_cgroup_is_not_where_runs_nest() {
        let mounts = "41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = parse(mounts, "0::/user.slice/x.scope/labrun-supervisor-77\n");
        assert_eq!(
            h.v2.unwrap().dir,
            PathBuf::from("/sys/fs/cgroup/user.slice/x.scope")
        );
    }

    #[test]
    fn escapes_in_mountinfo_paths() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn this_machine_is_readable() {
        // Whatever the host, discovery must not panic, and every directory it names exists.
        let h = Hierarchies::discover();
        for b in h.v2.iter().chain(&h.v1) {
            assert!(b.dir.is_dir(), "{} is not a directory", b.dir.display());
        }
    }
}
