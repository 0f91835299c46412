//! A writer of cpio archives in the "newc" format, the one the kernel unpacks as an
//! initramfs: directories, files, symbolic links and device nodes, each written as it comes.

use std::io::{self, Write};

/// One archive being written.
pub struct Cpio<W: Write> {
    out: W,
    next_inode: u32,
}

const DIR: u32 = 0o040000;
const FILE: u32 = 0o100000;
const LINK: u32 = 0o120000;
const CHAR: u32 = 0o020000;

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Self {
        Cpio { out, next_inode: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let ino = self.next_inode;
        self.next_inode += 1;
        let nlink = if mode & DIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    fn pad(&mut self, written: usize) -> io::Result<()> {
        let n = (4 - written % 4) % 4;
        self.out.write_all(&[0u8; 3][..n])
    }

    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, DIR | 0o755, (0, 0), &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, FILE | (perm & 0o7777), (0, 0), data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, LINK | 0o777, (0, 0), target.as_bytes())
    }

    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, CHAR | 0o600, (major, minor), &[])
    }

    /// Writes the trailer and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::new(Vec::new());
        c.dir("/dev").unwrap();
        c.file("init", 0o755, b"hello").unwrap();
        c.char_device("dev/console", 5, 1).unwrap();
        let bytes = c.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("070701"));
        assert!(text.contains("dev\0") && text.contains("init\0") && text.contains("hello"));
        assert!(text.contains("TRAILER!!!\0"));
        // The console's rdev major and minor, as the header carries them.
        assert!(text.contains("0000000500000001"));
    }

    #[test]
    fn the_system_cpio_reads_it() {
        let mut c = Cpio::new(Vec::new());
        c.dir("d").unwrap();
        c.file("d/f", 0o644, b"content\n").unwrap();
        c.symlink("l", "d/f").unwrap();
        let bytes = c.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-i", "--quiet", "--make-directories"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("cpio is installed (scripts/setup.sh)");
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(dir.path().join("d/f")).unwrap(), b"content\n");
        assert_eq!(
            std::fs::read_link(dir.path().join("l")).unwrap(),
            std::path::PathBuf::from("d/f")
        );
    }
}
