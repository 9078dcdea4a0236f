/// Why the server did not start (or a command failed).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong: names the variable.
    #[error("{variable}: {message}")]
    Config { variable: String, message: String },
    /// Settings that do not go together, or a message that names its settings itself.
    #[error("{0}")]
    Settings(String),
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Command(String),
}

impl StartError {
    /// The process exit code: 2 for a configuration mistake (as clap's own
    /// errors), 1 for anything else.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config { .. } | Self::Settings(_) => 2,
            Self::Database(_) | Self::Io(_) | Self::Command(_) => 1,
        }
    }

    pub fn config(variable: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { variable: variable.into(), message: message.into() }
    }
}
