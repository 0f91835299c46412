//! Is an ELF executable statically linked? It is when it has no program interpreter: no
//! `PT_INTERP` program header. (A static-pie binary has none either, and runs anywhere too.)

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

const PT_INTERP: u32 = 3;

/// What the ELF header says about linking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linking {
    Static,
    Dynamic,
}

/// Reads `path`'s ELF header and program headers; an error when it is not ELF.
pub fn linking(path: &Path) -> io::Result<Linking> {
    let mut f = File::open(path)?;
    let mut ident = [0u8; 64];
    f.read_exact(&mut ident[..16])?;
    if &ident[..4] != b"\x7fELF" {
        return Err(bad("not an ELF file"));
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("unknown ELF class")),
    };
    let little = match ident[5] {
        1 => true,
        2 => false,
        _ => return Err(bad("unknown ELF byte order")),
    };
    let header_len = if wide { 64 } else { 52 };
    f.read_exact(&mut ident[16..header_len])?;
    let h = Fields { little };
    // e_phoff, e_phentsize, e_phnum.
    let (phoff, phentsize, phnum) = if wide {
        (
            h.u64(&ident[32..40]),
            h.u16(&ident[54..56]),
            h.u16(&ident[56..58]),
        )
    } else {
        (
            u64::from(h.u32(&ident[28..32])),
            h.u16(&ident[42..44]),
            h.u16(&ident[44..46]),
        )
    };
    if phnum == 0 {
        return Ok(Linking::Static);
    }
    if usize::from(phentsize) < 4 || phnum > 4096 {
        return Err(bad("implausible program header table"));
    }
    let mut table = vec![0u8; usize::from(phentsize) * usize::from(phnum)];
    f.seek(SeekFrom::Start(phoff))?;
    f.read_exact(&mut table)?;
    // p_type is the first 4 bytes of each program header, in both classes.
    let interp = table
        .chunks_exact(usize::from(phentsize))
        .any(|ph| h.u32(&ph[..4]) == PT_INTERP);
    Ok(if interp {
        Linking::Dynamic
    } else {
        Linking::Static
    })
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

struct Fields {
    little: bool,
}

impl Fields {
    fn u16(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    }
    fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }
    fn u64(&self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_non_elf_files() {
        // The test binary loads the C library, as labrun does (.cargo/config.toml), and so
        // does Debian's /bin/sh (dash).
        let me = std::env::current_exe().unwrap();
        assert_eq!(linking(&me).unwrap(), Linking::Dynamic);
        assert_eq!(linking(Path::new("/bin/sh")).unwrap(), Linking::Dynamic);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("script");
        std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
        assert!(linking(&f).is_err());
    }

    /// A minimal ELF file: header, then program headers of the given types.
    fn elf(wide: bool, little: bool, types: &[u32]) -> Vec<u8> {
        let (hlen, phent) = if wide { (64usize, 56usize) } else { (52, 32) };
        let mut b = vec![0u8; hlen + phent * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if wide { 2 } else { 1 };
        b[5] = if little { 1 } else { 2 };
        let put = |b: &mut Vec<u8>, at: usize, v: u64, n: usize| {
            let bytes = if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let src = if little { &bytes[..n] } else { &bytes[8 - n..] };
            b[at..at + n].copy_from_slice(src);
        };
        if wide {
            put(&mut b, 32, hlen as u64, 8);
            put(&mut b, 54, phent as u64, 2);
            put(&mut b, 56, types.len() as u64, 2);
        } else {
            put(&mut b, 28, hlen as u64, 4);
            put(&mut b, 42, phent as u64, 2);
            put(&mut b, 44, types.len() as u64, 2);
        }
        for (i, t) in types.iter().enumerate() {
            put(&mut b, hlen + i * phent, u64::from(*t), 4);
        }
        b
    }

    #[test]
    fn interpreter_headers_in_every_class_and_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        for wide in [false, true] {
            for little in [false, true] {
                std::fs::write(&f, elf(wide, little, &[6, 1, 1])).unwrap();
                assert_eq!(linking(&f).unwrap(), Linking::Static, "{wide} {little}");
                std::fs::write(&f, elf(wide, little, &[6, PT_INTERP, 1])).unwrap();
                assert_eq!(linking(&f).unwrap(), Linking::Dynamic, "{wide} {little}");
            }
        }
        let mut truncated = elf(true, true, &[1, PT_INTERP]);
        truncated.truncate(70);
        std::fs::write(&f, truncated).unwrap();
        assert!(linking(&f).is_err());
    }
}
