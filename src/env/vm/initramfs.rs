//! labrun's initramfs: labrun itself as `/init` (the agent), the shared libraries it needs
//! (none when it is linked statically), and the kernel modules the guest needs to reach labrun
//! (virtio-mmio, virtio-serial, 9p, overlayfs) with their dependencies, in load order.
//! Built once per labrun binary and kernel, and kept beside the unpacked kernel.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufWriter};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Cpio;
use super::guest::MODULES_DIR;
use super::guest::modules::ORDER_FILE;

/// The modules the guest needs, by name; their dependencies come along.
const WANTED: [&str; 5] = [
    "virtio_mmio",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
];

/// The initramfs for this labrun and `modules`, built into `cache_dir` unless already there.
pub fn build(modules: Option<&Path>, cache_dir: &Path) -> io::Result<PathBuf> {
    let exe = agent_binary()?;
    let stamp = |p: &Path| {
        fs::metadata(p).map_or(String::new(), |m| {
            format!("{}:{}:{}:{}", p.display(), m.len(), m.mtime(), m.ino())
        })
    };
    let key =
        crate::image::digest::recipe_key(&[&stamp(&exe), &modules.map_or(String::new(), stamp)]);
    let out = cache_dir.join(format!("initramfs-{}.cpio", &key[..16]));
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(cache_dir)?;
    let partial = out.with_extension(format!("part-{}", std::process::id()));
    let written = write(&exe, modules, &partial);
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    fs::rename(&partial, &out)?;
    Ok(out)
}

/// The labrun binary to ship as the agent: `LABRUN_AGENT`, else this program when it is
/// labrun, else the `labrun` beside it or one directory up (a test binary of cargo's).
pub fn agent_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("LABRUN_AGENT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|n| n == "labrun") {
        return Ok(exe);
    }
    let dir = exe.parent().unwrap_or(Path::new("/"));
    [dir.join("labrun"), dir.join("../labrun")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::other(format!(
                "the vm's agent is the labrun binary, and {} is not labrun: set LABRUN_AGENT to                  labrun's path",
                exe.display()
            ))
        })
}

fn write(exe: &Path, modules: Option<&Path>, to: &Path) -> io::Result<()> {
    let mut cpio = Cpio::new(BufWriter::new(fs::File::create(to)?));
    let mut dirs = BTreeSet::new();
    for d in ["dev", "proc", "sys", "labrun", &MODULES_DIR[1..]] {
        add_dir(&mut cpio, &mut dirs, d)?;
    }
    cpio.char_device("dev/console", 5, 1)?;
    cpio.file("init", 0o755, &stripped(exe, to)?)?;
    for lib in shared_libraries(exe)? {
        let inside = lib.to_string_lossy().trim_start_matches('/').to_string();
        if let Some(parent) = Path::new(&inside).parent() {
            add_parents(&mut cpio, &mut dirs, parent)?;
        }
        cpio.file(&inside, 0o755, &fs::read(&lib)?)?;
    }
    if let Some(modules) = modules {
        let order = module_order(modules)?;
        let mut names = String::new();
        for (name, path) in order {
            let file = format!("{name}.ko");
            cpio.file(
                &format!("{}/{file}", &MODULES_DIR[1..]),
                0o644,
                unsigned(&module_bytes(&path)?),
            )?;
            names.push_str(&file);
            names.push('\n');
        }
        cpio.file(
            &format!("{}/{ORDER_FILE}", &MODULES_DIR[1..]),
            0o644,
            names.as_bytes(),
        )?;
    }
    cpio.finish()?;
    Ok(())
}

/// The agent's bytes without symbols and debug information (a debug build of labrun is a
/// hundred megabytes of them), by binutils' `strip` where it is installed.
fn stripped(exe: &Path, beside: &Path) -> io::Result<Vec<u8>> {
    let mut out = beside.as_os_str().to_owned();
    out.push(".agent");
    let out = PathBuf::from(out);
    let ok = Command::new("strip")
        .arg("-s")
        .arg("-o")
        .arg(&out)
        .arg(exe)
        .status()
        .is_ok_and(|s| s.success());
    let bytes = if ok { fs::read(&out) } else { fs::read(exe) };
    let _ = fs::remove_file(&out);
    bytes
}

fn add_dir<W: io::Write>(
    cpio: &mut Cpio<W>,
    made: &mut BTreeSet<String>,
    d: &str,
) -> io::Result<()> {
    if made.insert(d.to_string()) {
        cpio.dir(d)?;
    }
    Ok(())
}

fn add_parents<W: io::Write>(
    cpio: &mut Cpio<W>,
    made: &mut BTreeSet<String>,
    dir: &Path,
) -> io::Result<()> {
    let mut at = PathBuf::new();
    for c in dir.components() {
        at.push(c);
        add_dir(cpio, made, &at.to_string_lossy())?;
    }
    Ok(())
}

/// The libraries (and the program interpreter) `exe` loads, as `ldd` lists them; none for a
/// static binary.
fn shared_libraries(exe: &Path) -> io::Result<Vec<PathBuf>> {
    if crate::image::elf::linking(exe)? == crate::image::elf::Linking::Static {
        return Ok(Vec::new());
    }
    let out = Command::new("ldd").arg(exe).output().map_err(|e| {
        io::Error::other(format!(
            "running ldd on {} (for the vm's agent): {e}",
            exe.display()
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// The wanted modules and their dependencies, dependencies first, skipping what the kernel
/// has built in.
fn module_order(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut files = std::collections::BTreeMap::new();
    index(dir, &mut files)?;
    let builtin: BTreeSet<String> = fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|f| canonical(f.trim_end_matches(".ko")))
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in WANTED {
        visit(&canonical(name), &files, &builtin, &mut seen, &mut order)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    files: &std::collections::BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<(String, PathBuf)>,
) -> io::Result<()> {
    if builtin.contains(name) || !seen.insert(name.to_string()) {
        return Ok(());
    }
    let path = files.get(name).ok_or_else(|| {
        io::Error::other(format!(
            "the kernel module {name} is neither built in nor among the kernel's modules"
        ))
    })?;
    for dep in depends(&module_bytes(path)?) {
        visit(&dep, files, builtin, seen, order)?;
    }
    order.push((name.to_string(), path.clone()));
    Ok(())
}

/// Module names treat `-` and `_` alike.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn index(dir: &Path, files: &mut std::collections::BTreeMap<String, PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)?.flatten() {
        let path = e.path();
        if e.file_type()?.is_dir() {
            index(&path, files)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
                if let Some(stem) = name.strip_suffix(ext) {
                    files.insert(canonical(stem), path.clone());
                }
            }
        }
    }
    Ok(())
}

/// A module file's bytes, decompressed by the system's tool when the file is compressed.
fn module_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = ["xz", "zstd", "gzip"]
        .into_iter()
        .zip([".xz", ".zst", ".gz"])
        .find(|(_, ext)| name.ends_with(ext))
        .map(|(tool, _)| tool);
    match tool {
        None => fs::read(path),
        Some(tool) => {
            let out = Command::new(tool).arg("-dc").arg(path).output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!("{tool} could not unpack {name}")));
            }
            Ok(out.stdout)
        }
    }
}

/// A module without its appended signature: checking it costs the guest about a tenth of a
/// second under TCG, and a kernel that does not insist on signatures loads it anyway (marking
/// itself tainted). labrun wrote the initramfs from the kernel's own files.
fn unsigned(module: &[u8]) -> &[u8] {
    const MAGIC: &[u8] = b"~Module signature appended~\n";
    // struct module_signature: 12 bytes, the signature's length in the last four (big-endian).
    let Some(body) = module.strip_suffix(MAGIC) else {
        return module;
    };
    if body.len() < 12 {
        return module;
    }
    let info = &body[body.len() - 12..];
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    body.len()
        .checked_sub(12 + sig_len)
        .map_or(module, |end| &module[..end])
}

/// The `depends=` of a module's `.modinfo`.
fn depends(module: &[u8]) -> Vec<String> {
    let needle = b"depends=";
    module
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(needle.as_slice()))
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(canonical)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_cut_off_and_an_unsigned_module_kept() {
        let mut signed = b"ELFBODY".to_vec();
        signed.extend_from_slice(b"SIG");
        signed.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        signed.extend_from_slice(b"~Module signature appended~\n");
        assert_eq!(unsigned(&signed), b"ELFBODY");
        assert_eq!(unsigned(b"ELFBODY"), b"ELFBODY");
    }

    #[test]
    fn depends_is_read_from_modinfo() {
        let fake = b"\x00license=GPL\x00depends=virtio,virtio_ring\x00vermagic=6.1\x00";
        assert_eq!(depends(fake), vec!["virtio", "virtio_ring"]);
        assert!(depends(b"\x00depends=\x00").is_empty());
    }
}
