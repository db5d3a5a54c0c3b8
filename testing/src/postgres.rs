//! PostgreSQL tests on a machine that may lack a server.
//!
//! Each test gets a database of its own, created on the server named by
//! `GLEANER_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and dropped when the [`TestDb`] goes, so tests run in parallel without
//! seeing each other's rows. Without a reachable server the test is
//! skipped with one printed line, except under CI (`CI` set), where the
//! server is required and its absence fails the test loudly.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The server the PostgreSQL tests use when `GLEANER_TEST_POSTGRES` is unset.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server's administrative URL (`GLEANER_TEST_POSTGRES` or
/// [`DEFAULT_SERVER`]).
pub fn server_url() -> String {
    std::env::var("GLEANER_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_owned())
}

/// A database of one test, dropped (with `FORCE`, ending its connections)
/// when this value is dropped.
pub struct TestDb {
    /// The URL of the test's own database.
    pub url: String,
    /// Its name (`gleaner_test_<label>_<random>`).
    pub name: String,
    admin: String,
}

impl TestDb {
    /// A fresh database for the test `label`, or `None` (after one printed
    /// line) when no server answers outside CI. Under CI a missing server
    /// panics, naming the URL tried.
    pub async fn create(label: &str) -> Option<Self> {
        let admin = server_url();
        let conn =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin)).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return skip(&admin, &e.to_string()),
            Err(_) => return skip(&admin, "no answer within 5 s"),
        };
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("gleaner_test_{clean}_{:08x}", rand::random::<u32>());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name} on {admin}: {e}"));
        let _ = conn.close().await;
        let url = match url::Url::parse(&admin) {
            Ok(mut u) => {
                u.set_path(&name);
                u.to_string()
            }
            Err(e) => panic!("GLEANER_TEST_POSTGRES is not a URL ({e}): {admin}"),
        };
        Some(Self { url, name, admin })
    }
}

fn skip<T>(url: &str, why: &str) -> Option<T> {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs PostgreSQL at {url} (GLEANER_TEST_POSTGRES): {why}"
    );
    println!(
        "skipped: PostgreSQL not reachable at {url} ({why}); set GLEANER_TEST_POSTGRES or start a server"
    );
    None
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Dropped from async tests too: a thread of its own with its own
        // runtime, joined, so the database is gone when the test ends.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = done.join();
    }
}
