/// Why the server did not start (or a command failed).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong: names the variable.
    #[error("{variable}: {message}")]
    Config { variable: String, message: String },
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Command(String),
}

impl StartError {
    pub fn config(variable: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { variable: variable.into(), message: message.into() }
    }
}
