//! The SQLite backend against the shared conformance suite, under each read plan.
use std::sync::Arc;

use isms_store::conformance::StoreUnderTest;
use isms_store::sqlite::{PlanChoice, SqliteOptions, SqliteStore};

async fn fresh_store(plan: PlanChoice) -> StoreUnderTest {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(SqliteOptions::new(directory.path().join("isms.db")))
        .await
        .expect("open store");
    store.set_plan_choice(plan);
    StoreUnderTest {
        store: Arc::new(store),
        guard: Box::new(directory),
    }
}

isms_store::store_conformance_suite!(automatic_plan, || fresh_store(PlanChoice::Automatic));
isms_store::store_conformance_suite!(forced_scan_plan, || fresh_store(PlanChoice::ForceScan));
isms_store::store_conformance_suite!(forced_driven_plan, || fresh_store(PlanChoice::ForceDriven));
isms_store::store_conformance_suite!(forced_semi_join_plan, || fresh_store(
    PlanChoice::ForceSemiJoin
));
