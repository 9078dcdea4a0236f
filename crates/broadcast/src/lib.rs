//! What one instance's writes changed, told to every other instance, so that
//! their auth caches forget it at once instead of after `AUTH_CACHE_TTL_MS`.
//!
//! [`Broadcast`] is a [`ChangeFeed`]: the services' announcements go on a
//! channel (never blocking a request), a publisher task sends each one
//! through the transport, and a listener task hands what other instances sent
//! to the local cache's feed. Redis pub/sub when `AUTH_REDIS_URL` is set,
//! PostgreSQL `LISTEN/NOTIFY` otherwise on PostgreSQL. Both tasks reconnect
//! on their own (every second); a message lost meanwhile is covered by the
//! cache's TTL, which stays the bound.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use portcullis_connect::PgTarget;
use portcullis_domain::ports::{Change, ChangeFeed};
use portcullis_domain::{ApiKeyId, UserId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a broken connection waits before the next attempt.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Where changes travel.
#[derive(Clone)]
pub enum Transport {
    /// Redis pub/sub on `channel`.
    Redis { client: Box<redis::Client>, channel: String },
    /// PostgreSQL `NOTIFY` / `LISTEN` on `channel` (an identifier), over the
    /// same TLS policy as the connection pool.
    Postgres { target: Arc<PgTarget>, channel: String },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection settings may hold passwords.
        match self {
            Self::Redis { channel, .. } => write!(f, "Redis pub/sub ({channel})"),
            Self::Postgres { channel, .. } => write!(f, "PostgreSQL LISTEN/NOTIFY ({channel})"),
        }
    }
}

/// Counts for metrics and tests.
#[derive(Debug, Default)]
pub struct Counts {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
}

/// The change feed that also tells the other instances; see the crate docs.
pub struct Broadcast {
    outgoing: mpsc::UnboundedSender<Change>,
    next: Arc<dyn ChangeFeed>,
    counts: Arc<Counts>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast").field("counts", &self.counts).finish_non_exhaustive()
    }
}

impl ChangeFeed for Broadcast {
    fn changed(&self, change: Change) {
        self.next.changed(change);
        // Closed only when the publisher stopped (shutdown).
        let _ = self.outgoing.send(change);
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Broadcast {
    /// Starts the publisher and the listener on the current tokio runtime.
    /// `next` is the feed this one passes local changes on to; `local`
    /// receives the other instances' changes (the cache's forgetting feed,
    /// which must not broadcast again).
    #[must_use]
    pub fn start(transport: Transport, next: Arc<dyn ChangeFeed>, local: Arc<dyn ChangeFeed>) -> Self {
        let origin = Uuid::new_v4();
        let counts = Arc::new(Counts::default());
        let (outgoing, incoming) = mpsc::unbounded_channel();
        let publisher = tokio::spawn(publish(transport.clone(), origin, incoming, Arc::clone(&counts)));
        let listener = tokio::spawn(listen(transport, origin, local, Arc::clone(&counts)));
        Self { outgoing, next, counts, tasks: vec![publisher, listener] }
    }

    #[must_use]
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

/// `<origin> <kind> <id>[ <environment>]`: short, and readable in `MONITOR`.
fn encode(origin: Uuid, change: Change) -> String {
    match change {
        Change::User(id) => format!("{origin} u {}", id.as_uuid()),
        Change::Token(jti) => format!("{origin} t {jti}"),
        Change::Key(id) => format!("{origin} k {}", id.as_uuid()),
        Change::Projects(user, environment) => {
            format!("{origin} p {} {}", user.as_uuid(), environment.as_str())
        }
    }
}

/// The change in a message, and the instance that sent it.
fn decode(message: &str) -> Option<(Uuid, Change)> {
    let mut parts = message.split(' ');
    let origin = Uuid::parse_str(parts.next()?).ok()?;
    let kind = parts.next()?;
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let change = match kind {
        "u" => Change::User(UserId::from_uuid(id)),
        "t" => Change::Token(id),
        "k" => Change::Key(ApiKeyId::from_uuid(id)),
        "p" => Change::Projects(UserId::from_uuid(id), parts.next()?.parse().ok()?),
        _ => return None,
    };
    parts.next().is_none().then_some((origin, change))
}

/// Sends every local change; reconnects when the transport breaks (changes
/// that could not be sent are dropped: the other caches' TTL covers them).
async fn publish(
    transport: Transport,
    origin: Uuid,
    mut incoming: mpsc::UnboundedReceiver<Change>,
    counts: Arc<Counts>,
) {
    loop {
        let sender = match Sender::connect(&transport).await {
            Ok(sender) => sender,
            Err(why) => {
                tracing::warn!(transport = ?transport, error = %why, "cannot publish cache invalidations; retrying");
                // Meanwhile, changes pile up no further than what was announced.
                tokio::time::sleep(RECONNECT_AFTER).await;
                while let Ok(_dropped) = incoming.try_recv() {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
        };
        let mut sender = sender;
        loop {
            let Some(change) = incoming.recv().await else { return };
            match sender.send(&encode(origin, change)).await {
                Ok(()) => {
                    counts.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(why) => {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(transport = ?transport, error = %why, "a cache invalidation was not published; reconnecting");
                    break;
                }
            }
        }
    }
}

/// One connection that publishes.
enum Sender {
    Redis(redis::aio::MultiplexedConnection, String),
    Postgres(tokio_postgres::Client, String, JoinHandle<()>),
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Self::Postgres(_, _, connection) = self {
            connection.abort();
        }
    }
}

impl Sender {
    async fn connect(transport: &Transport) -> Result<Self, String> {
        match transport {
            Transport::Redis { client, channel } => {
                let connection =
                    client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
                Ok(Self::Redis(connection, channel.clone()))
            }
            Transport::Postgres { target, channel } => {
                let (client, connection) = target.connect().await?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Self::Postgres(client, channel.clone(), driver))
            }
        }
    }

    async fn send(&mut self, message: &str) -> Result<(), String> {
        match self {
            Self::Redis(connection, channel) => redis::cmd("PUBLISH")
                .arg(channel.as_str())
                .arg(message)
                .query_async::<i64>(connection)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Self::Postgres(client, channel, _) => client
                .execute("SELECT pg_notify($1, $2)", &[&channel.as_str(), &message])
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}

/// Hands every other instance's change to `local`; reconnects when the
/// transport breaks.
async fn listen(transport: Transport, origin: Uuid, local: Arc<dyn ChangeFeed>, counts: Arc<Counts>) {
    let deliver = |payload: &str| match decode(payload) {
        Some((from, change)) if from != origin => {
            counts.received.fetch_add(1, Ordering::Relaxed);
            local.changed(change);
        }
        Some(_) => {}
        None => tracing::warn!("an unreadable cache invalidation was ignored"),
    };
    loop {
        let outcome = match &transport {
            Transport::Redis { client, channel } => listen_redis(client, channel, &deliver).await,
            Transport::Postgres { target, channel } => listen_postgres(target, channel, &deliver).await,
        };
        if let Err(why) = outcome {
            tracing::warn!(transport = ?transport, error = %why, "cache invalidations from other instances are not received; reconnecting");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn listen_redis(client: &redis::Client, channel: &str, deliver: &impl Fn(&str)) -> Result<(), String> {
    let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
    pubsub.subscribe(channel).await.map_err(|e| e.to_string())?;
    tracing::info!(channel, "receiving cache invalidations through Redis");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(payload) = message.get_payload::<String>() {
            deliver(&payload);
        }
    }
    Err("the subscription ended".to_owned())
}

async fn listen_postgres(target: &PgTarget, channel: &str, deliver: &impl Fn(&str)) -> Result<(), String> {
    let (client, mut connection) = target.connect().await?;
    let (notifications, mut received) = mpsc::unbounded_channel();
    // The connection yields the notifications; it must be polled to make progress at all.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if notifications.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', ""))).await;
    if let Err(e) = listening {
        driver.abort();
        return Err(e.to_string());
    }
    tracing::info!(channel, "receiving cache invalidations through PostgreSQL LISTEN");
    while let Some(payload) = received.recv().await {
        deliver(&payload);
    }
    driver.abort();
    Err("the connection closed".to_owned())
}

#[cfg(test)]
mod tests {
    use portcullis_domain::Environment;

    use super::*;

    #[test]
    fn changes_round_trip_and_junk_is_refused() {
        let origin = Uuid::new_v4();
        let user = UserId::from_uuid(Uuid::new_v4());
        for change in [
            Change::User(user),
            Change::Token(Uuid::new_v4()),
            Change::Key(ApiKeyId::from_uuid(Uuid::new_v4())),
            Change::Projects(user, Environment::Test),
            Change::Projects(user, Environment::Live),
        ] {
            assert_eq!(decode(&encode(origin, change)), Some((origin, change)));
        }
        for junk in [
            "",
            "x",
            &format!("{origin} u"),
            &format!("{origin} z {origin}"),
            &format!("{origin} u {origin} extra"),
            &format!("{origin} p {origin} staging"),
        ] {
            assert_eq!(decode(junk), None, "{junk}");
        }
    }
}
