use super::ContractStore;

/// A reachable store answers its ping.
pub async fn health_ping_succeeds<S: ContractStore + ?Sized>(store: &S) {
    store.ping().await.expect("a reachable store answers ping");
}
