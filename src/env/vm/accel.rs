//! KVM or TCG, decided honestly and quickly: KVM only where the CPU shows hardware
//! virtualisation (vmx or svm), `/dev/kvm` opens, and it creates a VM. A `/dev/kvm` that
//! answers but sits on a CPU without those flags (a paravirtual-only one, as on this project's
//! build machines) hangs an ordinary kernel, so it is never trusted on its word.
//! `LABRUN_VM_ACCEL=tcg|kvm` overrides the choice.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// How qemu runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The accelerator, and why (for the run's header).
pub fn choose() -> (Accel, String) {
    match std::env::var("LABRUN_VM_ACCEL").as_deref() {
        Ok("tcg") => return (Accel::Tcg, "LABRUN_VM_ACCEL=tcg".into()),
        Ok("kvm") => return (Accel::Kvm, "LABRUN_VM_ACCEL=kvm".into()),
        _ => {}
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !has_virtualisation_flag(&cpuinfo) {
        return (
            Accel::Tcg,
            "the CPU shows no vmx or svm flag, so KVM cannot run an ordinary guest".into(),
        );
    }
    match probe_kvm() {
        Ok(()) => (Accel::Kvm, "KVM answers and the CPU has vmx or svm".into()),
        Err(why) => (Accel::Tcg, why),
    }
}

fn has_virtualisation_flag(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Opens /dev/kvm and asks it for a VM (then drops it).
fn probe_kvm() -> Result<(), String> {
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm cannot be opened ({e})"))?;
    // SAFETY: plain ioctls on a descriptor we own, with no argument pointers.
    let version = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    if version != 12 {
        return Err(format!("/dev/kvm answers API version {version}, not 12"));
    }
    // SAFETY: as above; the VM's descriptor is closed at once.
    let vm = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0) };
    if vm < 0 {
        return Err(format!(
            "/dev/kvm cannot create a VM ({})",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `vm` is a descriptor the kernel just gave us.
    unsafe { libc::close(vm) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_cpuinfo() {
        assert!(has_virtualisation_flag("flags\t\t: fpu vme vmx sse\n"));
        assert!(!has_virtualisation_flag("flags\t\t: fpu vme sse\nvmx\n"));
    }

    #[test]
    fn this_machine_gets_an_answer_at_once() {
        let started = std::time::Instant::now();
        let (accel, why) = choose();
        assert!(!why.is_empty());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{accel:?}"
        );
    }
}
