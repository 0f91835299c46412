//! (placeholder until the matcher lands)
#[derive(Debug, Clone)]
pub enum DiffLine {
    Same(Vec<u8>),
    Missing(String),
    Unexpected(Vec<u8>),
}
