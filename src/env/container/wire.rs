//! The messages between labrun and the container's init, on a SOCK_SEQPACKET socket pair.
//!
//! init answers with fixed 16-byte messages (a kind byte and three integers), so that it can
//! build and read them without allocating. labrun asks with a kind byte, a flag byte and a
//! payload of NUL-terminated strings: the working directory, the program's arguments, an
//! empty string, then the environment. The shell's two descriptors travel as SCM_RIGHTS, and
//! so does the descriptor of the lab's disk init sends first.

/// init → labrun: setup step `a` failed with errno `b`.
pub const SETUP_FAILED: u8 = b'E';
/// init → labrun: init entered the session's user namespace; write its maps, then go on.
pub const NEED_MAPS: u8 = b'U';
/// init → labrun: a shell started with pid `a` (init's namespace), or failed with errno `b`
/// when `a` is 0.
pub const SPAWNED: u8 = b'P';
/// init → labrun: init will outlive labrun (answer to DETACH).
pub const DETACHED: u8 = b'd';
/// init → labrun: the shell `a` ended with wait status `b`.
pub const EXITED: u8 = b'X';
/// child → labrun, once, when the root is built (just before the child becomes init): a
/// descriptor (SCM_RIGHTS) of /lab, on the writable disk, which labrun measures with fstatfs
/// after each cell ("disk full").
pub const DISK_FD: u8 = b'L';

/// labrun → init: start a shell.
pub const SPAWN: u8 = b'S';
/// labrun → init: outlive labrun (`--keep`); the run's lock comes along as SCM_RIGHTS.
pub const DETACH: u8 = b'D';

/// Flag of SPAWN: the shell gets every capability (of the container's user namespace).
pub const PRIVILEGED: u8 = 1;

/// Size of every message from init.
pub const REPLY_LEN: usize = 16;

/// The largest request init accepts (arguments and environment together).
pub const MAX_REQUEST: usize = 256 * 1024;

/// A message from init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub kind: u8,
    pub a: i32,
    pub b: i32,
}

impl Reply {
    pub fn encode(&self) -> [u8; REPLY_LEN] {
        let mut out = [0u8; REPLY_LEN];
        out[0] = self.kind;
        out[4..8].copy_from_slice(&self.a.to_le_bytes());
        out[8..12].copy_from_slice(&self.b.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Reply> {
        if bytes.len() != REPLY_LEN {
            return None;
        }
        let int = |at: usize| {
            i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Some(Reply {
            kind: bytes[0],
            a: int(4),
            b: int(8),
        })
    }
}

/// Builds a SPAWN request (labrun's side).
pub fn spawn_request(flags: u8, cwd: &str, argv: &[String], env: &[String]) -> Vec<u8> {
    let mut out = vec![SPAWN, flags];
    let mut push = |s: &str| {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    };
    push(cwd);
    for a in argv {
        push(a);
    }
    push("");
    for e in env {
        push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        let r = Reply {
            kind: EXITED,
            a: 42,
            b: -3,
        };
        assert_eq!(Reply::decode(&r.encode()), Some(r));
        assert_eq!(Reply::decode(&[0; 3]), None);
    }

    #[test]
    fn spawn_requests_separate_arguments_from_environment() {
        let req = spawn_request(
            PRIVILEGED,
            "/lab",
            &["/bin/bash".into(), "--norc".into()],
            &["A=1".into()],
        );
        assert_eq!(req, b"S\x01/lab\0/bin/bash\0--norc\0\0A=1\0");
    }
}
