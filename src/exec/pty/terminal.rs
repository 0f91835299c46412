//! The labrun end of a pseudo-terminal of 80x24: reading what the program shows, typing.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::pty::{Winsize, openpty};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Columns and rows of every terminal labrun opens.
pub const COLUMNS: u16 = 80;
pub const ROWS: u16 = 24;

/// What one read from the terminal brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Bytes(usize),
    /// Every process closed its end: the program is gone.
    Closed,
    /// The deadline passed first.
    TimedOut,
}

/// The controlling side of a pseudo-terminal.
pub struct Terminal {
    master: AsyncFd<OwnedFd>,
}

impl Terminal {
    /// Opens a terminal; the second descriptor is the program's end (close-on-exec: it is
    /// handed over explicitly).
    pub fn open() -> io::Result<(Terminal, OwnedFd)> {
        let size = Winsize {
            ws_row: ROWS,
            ws_col: COLUMNS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).map_err(io::Error::from)?;
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
        }
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        // SAFETY: the AsyncFd owns the descriptor it registers, so it stays open while it is
        // registered.
        let master = unsafe {
            AsyncFd::register_with_interest(pty.master, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok((Terminal { master }, pty.slave))
    }

    /// Reads what the program wrote into `buf`, waiting until `deadline` at most.
    pub async fn read(&self, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<Read> {
        let until = tokio::time::Instant::from_std(deadline);
        loop {
            let ready = tokio::time::timeout_at(until, self.master.readable()).await;
            let Ok(ready) = ready else {
                return Ok(Read::TimedOut);
            };
            let mut guard = ready?;
            let mut chunk = [0u8; 8192];
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut chunk).map_err(io::Error::from))
            {
                Ok(Ok(0)) => return Ok(Read::Closed),
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(Read::Bytes(n));
                }
                // Linux reports a terminal whose other end is closed as EIO.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(Read::Closed),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Types `bytes` as a keyboard would.
    pub async fn type_in(&self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), rest).map_err(io::Error::from))
            {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bytes_written_on_one_end_are_read_on_the_other() {
        let (term, slave) = Terminal::open().unwrap();
        nix::unistd::write(&slave, b"hello\n").unwrap();
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(term.read(&mut buf, deadline).await.unwrap(), Read::Bytes(7));
        // The terminal's own line discipline turned the newline into CRLF.
        assert_eq!(buf, b"hello\r\n");
        drop(slave);
        let closed = term.read(&mut buf, deadline).await.unwrap();
        assert_eq!(closed, Read::Closed);
    }

    #[tokio::test]
    async fn a_silent_program_times_out() {
        let (term, _slave) = Terminal::open().unwrap();
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(100);
        assert_eq!(term.read(&mut buf, deadline).await.unwrap(), Read::TimedOut);
    }
}
