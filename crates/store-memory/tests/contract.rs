//! The memory store against every repository contract.

use std::sync::Arc;

use portcullis_store_memory::MemoryStore;

portcullis_testkit::store_contract_tests!(async { Some(Arc::new(MemoryStore::new())) });
