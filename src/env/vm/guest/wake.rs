//! What a guest does first with `Hello`, since it may have been restored from a snapshot:
//! take this machine's clock, and mix labrun's fresh random bytes into its pool and reseed
//! from it (`RNDRESEEDCRNG`), so that no two guests of one snapshot share a random stream.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;

use super::super::wire::Hello;

/// `_IO('R', 0x07)`: reseed the kernel's CRNG from its input pool now.
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

pub fn up(hello: &Hello) {
    let (secs, nanos) = hello.now;
    let now = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as libc::c_long,
    };
    // SAFETY: a plain system call on a value we own.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &now) } != 0 {
        super::console(&format!(
            "labrun agent: setting the clock: {}",
            std::io::Error::last_os_error()
        ));
    }
    match OpenOptions::new().write(true).open("/dev/urandom") {
        Ok(mut pool) => {
            let _ = pool.write_all(&hello.seed);
            // SAFETY: an ioctl without an argument on a descriptor we own.
            unsafe { libc::ioctl(pool.as_raw_fd(), RNDRESEEDCRNG) };
        }
        Err(e) => super::console(&format!("labrun agent: /dev/urandom: {e}")),
    }
}
