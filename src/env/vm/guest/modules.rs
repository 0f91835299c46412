//! Loads the kernel modules labrun put in the initramfs, in the order it wrote down
//! (dependencies first), with `finit_module`: no modprobe, nothing from the image.

use std::ffi::CString;
use std::fs::File;
use std::path::Path;

use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

/// The file listing the modules to load, one file name a line.
pub const ORDER_FILE: &str = "order";

pub fn load_all(dir: &Path) -> Result<(), String> {
    let order = match std::fs::read_to_string(dir.join(ORDER_FILE)) {
        Ok(o) => o,
        // A kernel with everything built in needs none.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.join(ORDER_FILE).display())),
    };
    for name in order.lines().filter(|l| !l.is_empty()) {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match finit_module(&file, &CString::default(), ModuleInitFlags::empty()) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(format!("loading the module {name}: {e}")),
        }
    }
    Ok(())
}
