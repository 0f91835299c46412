//! qemu itself: finding it, its command line (a microvm with the kernel booted directly, one
//! virtio-serial port for the agent, one 9p device a share, every file an inherited
//! descriptor), and its process: started with the shares' [`Views`] applied, killed with
//! labrun.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::accel::Accel;
use super::kernel::INSTALLED;
pub use super::views::Views;

/// How many console lines labrun keeps to show when a boot fails.
const CONSOLE_LINES: usize = 30;
/// The longest console line kept (a flood of one endless line stays bounded).
const CONSOLE_LINE_MAX: usize = 400;

/// qemu's binary and, for the copy labrun's setup unpacks, its data directory.
#[derive(Debug, Clone)]
pub struct Qemu {
    pub binary: PathBuf,
    pub data_dir: Option<PathBuf>,
}

/// Finds qemu: `LABRUN_QEMU`, then `qemu-system-x86_64` on the default PATH, then the copy
/// `scripts/install-vm.sh` unpacks under /usr/local/lib/labrun/vm/qemu.
pub fn find() -> Result<Qemu, String> {
    if let Some(p) = std::env::var_os("LABRUN_QEMU") {
        return Ok(Qemu {
            binary: PathBuf::from(p),
            data_dir: None,
        });
    }
    if let Some(p) = crate::env::find_program("qemu-system-x86_64") {
        return Ok(Qemu {
            binary: p,
            data_dir: None,
        });
    }
    let unpacked = Path::new(INSTALLED).join("qemu");
    let binary = unpacked.join("usr/bin/qemu-system-x86_64");
    if binary.is_file() {
        return Ok(Qemu {
            binary,
            data_dir: Some(unpacked.join("usr/share/qemu")),
        });
    }
    Err(format!(
        "qemu-system-x86_64 is not installed: install your distribution's qemu-system-x86 \
         package, or run scripts/install-vm.sh (it unpacks Debian's qemu under {INSTALLED}/qemu)"
    ))
}

/// One 9p share on qemu's command line: its directory, opened by labrun.
#[derive(Debug)]
pub struct ShareDevice {
    pub tag: String,
    pub source: PathBuf,
    pub dir: OwnedFd,
}

/// Everything the command line depends on.
pub struct MachineSpec<'a> {
    pub qemu: &'a Qemu,
    pub accel: Accel,
    pub memory_mib: u64,
    pub kernel: &'a File,
    pub initramfs: &'a File,
    /// qemu's end of the agent's connection.
    pub agent: &'a OwnedFd,
    /// qemu's end of its monitor (QMP).
    pub monitor: &'a OwnedFd,
    /// A saved guest to restore instead of booting (`-incoming`).
    pub incoming: Option<&'a File>,
    pub shares: &'a [ShareDevice],
}

/// The kernel's command line: the console on the serial port, the clock told rather than
/// measured (without it a microvm hangs in about one boot of ten under TCG), a panic ending
/// the machine at once.
pub const KERNEL_ARGS: &str = "console=ttyS0 quiet loglevel=4 tsc_early_khz=2000000 tsc=reliable \
    panic=-1 pci=off rdinit=/init 8250.nr_uarts=1 cryptomgr.notests random.trust_cpu=on";

/// A descriptor qemu inherits, as a path it opens (the path labrun saw may be covered in
/// qemu's namespace).
fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The kernel's command line, with `LABRUN_VM_APPEND`'s words after labrun's own (to debug a
/// guest: `initcall_debug`, say).
pub fn kernel_args() -> String {
    match std::env::var("LABRUN_VM_APPEND") {
        Ok(extra) if !extra.trim().is_empty() => format!("{KERNEL_ARGS} {}", extra.trim()),
        _ => KERNEL_ARGS.to_string(),
    }
}

fn args(m: &MachineSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    if let Some(dir) = &m.qemu.data_dir {
        push(&["-L", &dir.to_string_lossy()]);
    }
    push(&["-M", "microvm", "-accel", m.accel.name()]);
    if m.accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&[
        "-m",
        &format!("{}M", m.memory_mib),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel",
        &fd_path(m.kernel),
        "-initrd",
        &fd_path(m.initramfs),
        "-append",
        &kernel_args(),
        "-device",
        "virtio-serial-device",
        "-chardev",
        &format!("socket,id=agent,fd={}", m.agent.as_raw_fd()),
        "-device",
        "virtserialport,chardev=agent,name=labrun",
        "-chardev",
        &format!("socket,id=monitor,fd={}", m.monitor.as_raw_fd()),
        "-mon",
        "chardev=monitor,mode=control",
    ]);
    if let Some(saved) = m.incoming {
        push(&["-incoming", &format!("fd:{}", saved.as_raw_fd())]);
    }
    for (i, share) in m.shares.iter().enumerate() {
        push(&[
            "-fsdev",
            &format!(
                "local,id=fs{i},path={},security_model=none,readonly=on,multidevs=remap",
                fd_path(&share.dir)
            ),
            "-device",
            &format!("virtio-9p-device,fsdev=fs{i},mount_tag={}", share.tag),
        ]);
    }
    a
}

/// A running qemu and the last lines of its console.
#[derive(Debug)]
pub struct Machine {
    pub child: Child,
    pub console: Arc<Mutex<VecDeque<String>>>,
}

impl Machine {
    pub fn last_console_lines(&self) -> String {
        let lines = self.console.lock().unwrap();
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts qemu. Its console is read by a thread of its own into a short ring of lines, so a
/// guest flooding it never blocks and never costs more than those lines.
/// `views` are applied in qemu's process before it runs.
pub fn start(m: &MachineSpec, views: Views) -> io::Result<Machine> {
    let mut inherited: Vec<i32> = vec![
        m.kernel.as_raw_fd(),
        m.initramfs.as_raw_fd(),
        m.agent.as_raw_fd(),
        m.monitor.as_raw_fd(),
    ];
    inherited.extend(m.incoming.map(|f| f.as_raw_fd()));
    inherited.extend(m.shares.iter().map(|s| s.dir.as_raw_fd()));
    let mut cmd = Command::new(&m.qemu.binary);
    cmd.args(args(m))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in &inherited {
                if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            views.apply()
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::other(format!("starting {}: {e}", m.qemu.binary.display())))?;
    let console = Arc::new(Mutex::new(VecDeque::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let console = console.clone();
        std::thread::spawn(move || keep_lines(stream, &console));
    }
    Ok(Machine { child, console })
}

fn keep_lines(stream: Box<dyn io::Read + Send>, console: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // At most a line's worth at a time, so one endless line cannot grow the buffer.
        match io::Read::take(&mut reader, CONSOLE_LINE_MAX as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        if line.is_empty() {
            continue;
        }
        let mut lines = console.lock().unwrap();
        if lines.len() == CONSOLE_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}
