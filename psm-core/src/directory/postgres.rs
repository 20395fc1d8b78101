//! The directory in the PostgreSQL store's database.

use crate::store::PostgresStore;

super::sql::sql_directory!(PostgresStore, pool, pool);

#[cfg(test)]
mod tests {
    /// Needs the PostgreSQL of PEERS.md on 127.0.0.1:5432 (database `test`, trust auth).
    #[tokio::test]
    async fn conformance() {
        let url = std::env::var("PSM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("dir_{}", uuid::Uuid::new_v4().simple());
        let mut opts = crate::store::PostgresOptions::new(url);
        opts.schema = Some(schema);
        opts.max_connections = 4;
        let store = crate::store::PostgresStore::connect(&opts).await.expect(
            "PostgreSQL on 127.0.0.1:5432 (db test, trust auth) is needed: install \
             postgresql and start it (pg_ctlcluster ... main start)",
        );
        super::super::conformance::run(&store).await;
        store.drop_schema().await.expect("drop schema");
    }
}
