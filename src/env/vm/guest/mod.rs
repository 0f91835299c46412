//! The agent: labrun itself as PID 1 of the guest, started from labrun's initramfs. It needs
//! nothing from the image: it loads the kernel modules it brought (`modules`), builds the
//! lab's root from the 9p shares labrun names (`root`), and then runs the session's shell
//! with the same session code labrun uses on a machine of its own (`serve`).

pub mod modules;
mod root;
mod serve;
mod wake;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::wire::{self, FromGuest, ToGuest};

/// Where the initramfs keeps the modules and the order to load them in.
pub const MODULES_DIR: &str = "/modules";
/// The virtio-serial port's name (`name=` of its `virtserialport`).
pub const PORT_NAME: &str = "labrun";

/// Whether this process is the agent: PID 1, started as `/init`.
pub fn is_agent(argv0: &str) -> bool {
    std::process::id() == 1 && argv0 == "/init"
}

/// Runs the agent; never returns (PID 1 powers the machine off when it ends).
pub fn main() -> ! {
    if let Err(e) = run() {
        console(&format!("labrun agent: {e}"));
    }
    power_off()
}

fn run() -> Result<(), String> {
    root::mount_early().map_err(|e| format!("mounting /proc, /sys and /dev: {e}"))?;
    modules::load_all(Path::new(MODULES_DIR))?;
    let mut port = open_port(Duration::from_secs(10))?;
    wire::send(&mut port, &FromGuest::Booted).map_err(|e| format!("writing Booted: {e}"))?;
    let hello = match wire::receive::<ToGuest>(&mut port) {
        Ok(ToGuest::Hello(h)) => h,
        Ok(other) => return Err(format!("expected Hello, got {other:?}")),
        Err(e) => return Err(format!("reading Hello: {e}")),
    };
    wake::up(&hello);
    if let Err(e) = root::build(&hello) {
        let _ = wire::send(&mut port, &FromGuest::Failed(e.clone()));
        return Err(e);
    }
    serve::serve(port, &hello)
}

/// The port labrun talks on, found by name once its driver has made it.
fn open_port(wait: Duration) -> Result<File, String> {
    let started = Instant::now();
    loop {
        if let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") {
            for e in entries.flatten() {
                let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
                if name.trim() == PORT_NAME {
                    let dev = Path::new("/dev").join(e.file_name());
                    if let Ok(f) = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&dev)
                    {
                        return Ok(f);
                    }
                }
            }
        }
        if started.elapsed() > wait {
            return Err(format!(
                "no virtio-serial port named '{PORT_NAME}' appeared"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A line on the guest's console (labrun shows the last ones when a boot fails).
fn console(line: &str) {
    if let Ok(mut c) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(c, "{line}");
    } else {
        eprintln!("{line}");
    }
}

fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
