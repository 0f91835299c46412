//! labrun's side of a running container: clones its first process, answers its requests
//! for id maps, asks it for shells, collects their exits, and tears it all down.
//!
//! The container lives exactly as long as this value and no longer than labrun: its init
//! has labrun as parent-death signal, and its mounts live in its own mount namespace, so the
//! kernel removes them once its last process is gone.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, recvmsg, sendmsg,
    socketpair,
};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::child::{self, ChildPlan};
use super::userns::IdMaps;
use super::wire::{self, Reply};

/// How long labrun waits for init to answer before calling the container hung.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Container {
    /// init's pid on this machine.
    init: Pid,
    control: OwnedFd,
    /// labrun's write end of the go-ahead pipe.
    sync: Mutex<Option<OwnedFd>>,
    maps: Option<IdMaps>,
    /// Exits init reported, by shell pid (init's namespace), not yet collected.
    exits: Mutex<HashMap<i32, i32>>,
    /// /lab, on the lab's writable disk (`wire::DISK_FD`).
    disk: Mutex<Option<OwnedFd>>,
    /// To describe a failed setup step.
    plan: ChildPlan,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Container(init {})", self.init)
    }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// `CLONE_INTO_CGROUP` of clone3(2).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), up to `cgroup`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A fork-like clone3 into the cgroup `cgroup_fd`. Returns the pid (0 in the child), or -1.
///
/// # Safety
/// As for fork: the child must only make system calls until it executes or exits.
unsafe fn clone3(flags: u64, cgroup_fd: i32) -> libc::c_long {
    let args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size given; no stack means fork-like.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

/// Where labrun's own command line lies in memory (to blank it in init's copy).
fn argv_area() -> Option<(usize, usize)> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // arg_start and arg_end are fields 48 and 49 (1-based), i.e. 45 and 46 after ") ".
    let start = fields.get(45)?.parse().ok()?;
    let end = fields.get(46)?.parse().ok()?;
    (end > start).then_some((start, end))
}

impl Container {
    /// Clones the container's first process, PID 1 of a new PID namespace, and lets it build
    /// the root. `rootless` has the maps of the user namespace the first process is created
    /// in when labrun is not root. The child joins the run's cgroups itself
    /// (`ChildPlan::cgroup_procs`).
    pub fn start(
        mut plan: ChildPlan,
        rootless: Option<IdMaps>,
        into_cgroup: Option<&std::path::Path>,
    ) -> io::Result<Container> {
        let (ours, theirs) = socketpair(
            nix::sys::socket::AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let (sync_read, sync_write) = pipe_cloexec()?;
        plan.sync = sync_read.as_raw_fd();
        plan.control = theirs.as_raw_fd();
        plan.argv_area = argv_area();
        let mut flags = libc::CLONE_NEWPID as u64;
        if rootless.is_some() {
            flags |= libc::CLONE_NEWUSER as u64;
        }
        // Born in the run's v2 cgroup where there is one, else an ordinary clone; the child
        // then joins the rest itself (see `ChildPlan::cgroup_procs`).
        let v2 = into_cgroup.and_then(|dir| fs::File::open(dir).ok());
        let mut pid = -1;
        if let Some(dir) = &v2 {
            // SAFETY: as below; clone3 with no stack is fork-like too.
            pid = unsafe { clone3(flags | CLONE_INTO_CGROUP, dir.as_raw_fd()) };
            if pid < 0 {
                // An older kernel (no clone3 or no CLONE_INTO_CGROUP): join it like the others.
                if let Some(dir) = into_cgroup {
                    plan.cgroup_procs
                        .push(super::ops::cstring(dir.join("cgroup.procs")));
                }
            }
        }
        if pid < 0 {
            // SAFETY: a fork-like clone (no shared memory, no new stack). The child runs only
            // `child::main`, which makes system calls on the prepared plan and never returns.
            pid =
                unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0, 0, 0, 0) };
        }
        if pid < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("creating the container's namespaces: {e}"),
            ));
        }
        if pid == 0 {
            // SAFETY: we are the freshly cloned child.
            unsafe { child::main(&plan) }
        }
        let pid = pid as i32;
        drop(sync_read);
        drop(theirs);
        let _ = nix::sys::socket::setsockopt(
            &ours,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as i64, 0),
        );
        let container = Container {
            init: Pid::from_raw(pid),
            control: ours,
            sync: Mutex::new(Some(sync_write)),
            maps: if rootless.is_some() {
                None
            } else {
                Some(IdMaps::identity())
            },
            exits: Mutex::new(HashMap::new()),
            disk: Mutex::new(None),
            plan,
        };
        if let Some(maps) = &rootless {
            maps.write(pid)?;
        }
        // The child joins the run's cgroups and builds the root; with a session user namespace
        // it then waits for its second go-ahead (see `receive`).
        container.go()?;
        crate::trace::mark("container cloned");
        // Not waiting for the root to be built: labrun asks for the first shell right away,
        // and answers the child's second step (`receive`) while it waits for that shell.
        Ok(container)
    }

    /// init's pid on this machine.
    pub fn init_pid(&self) -> u32 {
        self.init.as_raw() as u32
    }

    fn go(&self) -> io::Result<()> {
        let guard = self.sync.lock().expect("not poisoned");
        let fd = guard
            .as_ref()
            .ok_or_else(|| io::Error::other("the container already started"))?;
        nix::unistd::write(fd, b"g").map_err(io::Error::from)?;
        Ok(())
    }

    /// The child has built the root: the session's id maps, then the second go-ahead.
    fn setup_done(&self) -> io::Result<()> {
        crate::trace::mark("container root built");
        if let Some(maps) = &self.maps {
            maps.write(self.init.as_raw())?;
        }
        self.go()?;
        // Nothing more to say to the child.
        self.sync.lock().expect("not poisoned").take();
        Ok(())
    }

    /// Messages that may come at any time.
    fn unexpected(&self, kind: u8) -> io::Result<()> {
        match kind {
            wire::EXITED | wire::DISK_FD => Ok(()),
            _ => Err(io::Error::other(format!(
                "the container's init sent an unknown message ({kind})"
            ))),
        }
    }

    /// The next message from init; exits are filed away as they come, and a failed setup
    /// step is an error whoever is waiting.
    fn receive(&self) -> io::Result<Reply> {
        loop {
            let reply = self.receive_any()?;
            match reply.kind {
                wire::SETUP_FAILED => return Err(self.setup_failed(&reply)),
                wire::NEED_MAPS => self.setup_done()?,
                _ => return Ok(reply),
            }
        }
    }

    fn receive_any(&self) -> io::Result<Reply> {
        let mut buf = [0u8; wire::REPLY_LEN];
        let mut space = nix::cmsg_space!(RawFd);
        let (n, passed) = loop {
            let mut iov = [io::IoSliceMut::new(&mut buf)];
            match recvmsg::<UnixAddr>(
                self.control.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                // The kernel reports a peer that closed with our request unread before the
                // messages it sent first, and only once: read on to get them (a failed setup
                // step says why), then the end of the stream.
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    return Err(io::Error::other(format!(
                        "the container's init did not answer within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(e.into()),
                Ok(msg) => {
                    let mut passed = None;
                    for cmsg in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for fd in fds {
                                // SAFETY: the kernel just installed it in this process.
                                passed.get_or_insert(unsafe { OwnedFd::from_raw_fd(fd) });
                            }
                        }
                    }
                    break (msg.bytes, passed);
                }
            }
        };
        if n == 0 {
            let status = self.init_status();
            return Err(io::Error::other(format!(
                "the container's init ended unexpectedly ({status})"
            )));
        }
        let reply = Reply::decode(&buf[..n])
            .ok_or_else(|| io::Error::other("a malformed message from the container's init"))?;
        match reply.kind {
            wire::EXITED => {
                self.exits
                    .lock()
                    .expect("not poisoned")
                    .insert(reply.a, reply.b);
            }
            wire::DISK_FD => *self.disk.lock().expect("not poisoned") = passed,
            _ => {}
        }
        Ok(reply)
    }

    fn init_status(&self) -> String {
        match waitpid(self.init, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => format!("exit status {c}"),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
            _ => "still running".into(),
        }
    }

    /// Starts a shell with `control` as fd 0 and `status` as fd 3. Returns its pid in the
    /// container's namespace and on this machine.
    pub fn spawn(
        &self,
        privileged: bool,
        cwd: &str,
        argv: &[String],
        env: &[String],
        control: OwnedFd,
        status: OwnedFd,
    ) -> io::Result<(i32, u32)> {
        let request = wire::spawn_request(
            if privileged { wire::PRIVILEGED } else { 0 },
            cwd,
            argv,
            env,
        );
        if request.len() > wire::MAX_REQUEST {
            return Err(io::Error::other(
                "the shell's arguments and environment are too large",
            ));
        }
        self.request(
            &request,
            &[control.as_raw_fd(), status.as_raw_fd()],
            "asking the container for a shell",
        )?;
        drop(control);
        drop(status);
        let reply = self.answer(wire::SPAWNED)?;
        if reply.a <= 0 {
            return Err(io::Error::other(format!(
                "the container could not start the shell {}: {}",
                argv.first().map(String::as_str).unwrap_or(""),
                nix::errno::Errno::from_raw(reply.b).desc()
            )));
        }
        let host = self
            .host_pid(reply.a)
            .ok_or_else(|| io::Error::other("the container's shell ended before it started"))?;
        crate::trace::mark("shell spawned");
        Ok((reply.a, host))
    }

    /// Sends init a request, with descriptors that travel as SCM_RIGHTS.
    fn request(&self, bytes: &[u8], fds: &[RawFd], what: &str) -> io::Result<()> {
        let cmsg = [ControlMessage::ScmRights(fds)];
        let iov = [io::IoSlice::new(bytes)];
        sendmsg::<UnixAddr>(
            self.control.as_raw_fd(),
            &iov,
            if fds.is_empty() { &[] } else { &cmsg },
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| match e {
            // The child ended before reading it; a failed setup step it reported first says why.
            nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET => self
                .setup_failure()
                .unwrap_or_else(|| io::Error::other(format!("{what}: {e}"))),
            _ => io::Error::other(format!("{what}: {e}")),
        })?;
        Ok(())
    }

    fn setup_failed(&self, reply: &Reply) -> io::Error {
        io::Error::other(format!(
            "building the container failed: {}",
            child::describe_inside(&self.plan, reply.a as usize, reply.b)
        ))
    }

    /// Reads what a child that has ended left queued, for its failed setup step.
    fn setup_failure(&self) -> Option<io::Error> {
        loop {
            match self.receive_any() {
                Ok(reply) if reply.kind == wire::SETUP_FAILED => {
                    return Some(self.setup_failed(&reply));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Init's answer of this kind; exits and readiness that come first are taken in passing.
    fn answer(&self, kind: u8) -> io::Result<Reply> {
        loop {
            let reply = self.receive()?;
            if reply.kind == kind {
                return Ok(reply);
            }
            self.unexpected(reply.kind)?;
        }
    }

    /// The pid on this machine of init's child `ns_pid`.
    fn host_pid(&self, ns_pid: i32) -> Option<u32> {
        let init = self.init_pid();
        crate::exec::procs::children(init).into_iter().find(|&c| {
            fs::read_to_string(format!("/proc/{c}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("NSpid:"))
                        .and_then(|l| l.split_whitespace().last()?.parse::<i32>().ok())
                })
                == Some(ns_pid)
        })
    }

    /// Waits for init's report of how shell `ns_pid` ended (its raw wait status).
    pub fn wait_exit(&self, ns_pid: i32) -> io::Result<i32> {
        loop {
            if let Some(status) = self.exits.lock().expect("not poisoned").remove(&ns_pid) {
                return Ok(status);
            }
            self.receive()?;
        }
    }

    /// Lets init outlive labrun (`--keep`), holding `lock` (the run's lock) from now on.
    pub fn detach(&self, lock: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
        self.request(
            &[wire::DETACH],
            &[lock.as_raw_fd()],
            "keeping the container",
        )?;
        // Until init says so, labrun's exit would still kill it.
        self.answer(wire::DETACHED).map(|_| ())
    }

    /// Kills init, and with it every process of its PID namespace, without waiting (dropping
    /// the container waits). The disk's descriptor goes first: held, it would keep the lab's
    /// tmpfs alive past init.
    pub fn kill(&self) {
        self.disk.lock().expect("not poisoned").take();
        let _ = nix::sys::signal::kill(self.init, nix::sys::signal::Signal::SIGKILL);
    }

    /// Bytes free on the lab's writable disk: fstatfs on the descriptor of /lab the
    /// container sent when its root was built. None before that, or if the kernel will not say.
    pub fn disk_free(&self) -> Option<u64> {
        let disk = self.disk.lock().expect("not poisoned");
        let st = nix::sys::statfs::fstatfs(disk.as_ref()?).ok()?;
        Some((st.blocks_available() as u64).saturating_mul(st.block_size() as u64))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.kill();
        // Waiting for init means every process of its PID namespace is gone, and with them
        // the mount namespace and its mounts.
        let _ = waitpid(self.init, None);
        crate::trace::mark("container reaped");
    }
}
