//! New network namespaces, held by a file descriptor only: nothing names them on the machine,
//! so they disappear with the last descriptor and the last process inside, however labrun ends.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

/// Runs `inside` on a thread of its own that has just entered a new network namespace, and
/// returns that namespace with what `inside` returned (sockets it opened stay in the
/// namespace). The thread ends there, so no other thread of labrun ever changes namespace.
pub fn with_new<T: Send + 'static>(
    inside: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<(OwnedFd, T)> {
    let thread = std::thread::Builder::new()
        .name("labrun-netns".into())
        .spawn(move || -> io::Result<(OwnedFd, T)> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("creating a network namespace for the lab's network: {e}"),
                )
            })?;
            let ns = OwnedFd::from(File::open("/proc/thread-self/ns/net")?);
            Ok((ns, inside()?))
        })?;
    thread
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}
