//! Where a report goes: stdout or a file, never panicking on a closed pipe (`labrun | head`).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

pub struct Out {
    sink: Box<dyn Write + Send>,
    closed: bool,
}

impl Out {
    pub fn stdout() -> Out {
        Out {
            sink: Box::new(io::stdout()),
            closed: false,
        }
    }

    pub fn file(path: &Path) -> io::Result<Out> {
        let f = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Out {
            sink: Box::new(io::BufWriter::new(f)),
            closed: false,
        })
    }

    /// Writes text; once the reader has gone, further writes are dropped quietly.
    pub fn write(&mut self, text: &str) {
        if self.closed {
            return;
        }
        if self.sink.write_all(text.as_bytes()).is_err() {
            self.closed = true;
        }
    }

    pub fn flush(&mut self) {
        if !self.closed && self.sink.flush().is_err() {
            self.closed = true;
        }
    }
}
