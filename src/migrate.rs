//! `gleaner migrate --from <data dir> --to postgres://…`: moves an
//! installation's SQLite store and triggers into an empty PostgreSQL
//! database in one transaction, checking counts on both sides.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gleaner_framework::store::{Backend as _, PgStore, SqliteStore, transfer};
use gleaner_scheduler::{Queue, SystemClock};

/// Runs the migration and prints what moved.
pub async fn migrate(from: &Path, to: &str) -> Result<()> {
    let db = from.join("gleaner.db");
    if !db.is_file() {
        bail!(
            "{} holds no gleaner.db: give the data directory of the installation to move (--from)",
            from.display()
        );
    }
    let source = SqliteStore::open(&db).await?;
    // The queue's tables are brought to this build's schema first, so the
    // triggers read as this build writes them.
    Queue::open(source.pool().clone(), Arc::new(SystemClock)).await?;
    let target = PgStore::open(to).await?;
    let queue = gleaner_scheduler::PgQueue::open(target.pool().clone(), Arc::new(SystemClock))
        .await
        .context("preparing the queue's tables on PostgreSQL")?;
    drop(queue);
    let mut tx = target.pool().begin().await.with_context(|| {
        format!(
            "migrate: cannot begin a transaction on {}",
            target.describe()
        )
    })?;
    let counts = transfer::copy_store(source.pool(), &mut tx).await?;
    let triggers =
        gleaner_scheduler::queue::transfer::copy_triggers(source.pool(), &mut tx).await?;
    tx.commit().await.with_context(|| {
        format!(
            "migrate: the final commit on {} failed; nothing was moved",
            target.describe()
        )
    })?;
    println!(
        "moved {} to {} (one transaction; counts checked on both sides):",
        db.display(),
        target.describe()
    );
    for (table, n) in &counts {
        println!("  {table}: {n}");
    }
    println!("  triggers: {triggers}");
    println!(
        "next: keep {} (the vault key and files/) where every worker reads it, and run with --database {} (or [database] url in gleaner.toml)",
        from.display(),
        target.describe()
    );
    source.pool().close().await;
    Ok(())
}
