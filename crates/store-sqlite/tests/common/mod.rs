//! Set-up shared by the SQLite store's own tests.

use std::path::PathBuf;

use portcullis_domain::{Email, FullName, NewUser, PasswordHash, Role, UserId};
use portcullis_store_sqlite::{SqliteOptions, SqliteStore};
use time::OffsetDateTime;

/// A migrated store on a file of its own, deleted with its folder when dropped.
pub(crate) struct Scratch {
    pub(crate) store: SqliteStore,
    #[allow(dead_code, reason = "each test file includes this module; not every one reads the path")]
    pub(crate) db: PathBuf,
    dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) async fn scratch(max_connections: usize, options: SqliteOptions) -> Scratch {
    let dir = std::env::temp_dir().join(format!("portcullis-sqlite-{}", uuid::Uuid::new_v4()));
    let db = dir.join("test.db");
    let store = SqliteStore::open_with(&db, max_connections, options).expect("open the store");
    store.migrate().await.expect("migrate");
    Scratch { store, db, dir }
}

/// The `i`-th of a run of distinct users.
#[allow(dead_code, reason = "each test file includes this module; not every one makes users")]
pub(crate) fn new_user(i: usize) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(&format!("user-{i}@example.com")).expect("a valid email"),
        full_name: FullName::parse("Test User").expect("a valid name"),
        password_hash: Some(PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")),
        role: Role::User,
        email_verified: false,
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}
