//! Errors of the storage layer.

/// Everything that can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("damaged file: {0}")]
    Corrupt(String),
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("the log writer has stopped")]
    WriterStopped,
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}
