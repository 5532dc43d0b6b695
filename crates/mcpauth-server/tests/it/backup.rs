//! `mcpauth backup`: a consistent copy of a live SQLite database, taken under load; the restored
//! copy serves the tokens issued before the backup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use reqwest::StatusCode;
use sqlx::Connection;

use crate::common::*;

async fn integrity(path: &std::path::Path) -> String {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let result: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_to_a_server_that_accepts_earlier_tokens() {
    let app = Arc::new(spawn_app().await);
    let flow = app.full_flow("mcp:tools").await;
    let access = flow.tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = flow.tokens["refresh_token"].as_str().unwrap().to_owned();

    // Load: registrations and whole flows (sign-up, consent, code, tokens) until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (app, stop, done) = (app.clone(), stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                app.full_flow("mcp:tools").await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while done.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    let db = format!("sqlite://{}", app.db_path.display());
    let output = mcpauth(dir.path())
        .args(["backup", "--database-url", &db, "--output"])
        .arg(&backup)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let before = done.load(Ordering::Relaxed);
    // The server kept working during and after the backup.
    while done.load(Ordering::Relaxed) < before + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(integrity(&backup).await, "ok");

    // Never overwrites a file.
    let again = mcpauth(dir.path())
        .args(["backup", "--database-url", &db, "--output"])
        .arg(&backup)
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    // Restore: the copy becomes a new database file; the server restarts on it (same port,
    // so the same issuer and resource).
    let restored_path = dir.path().join("restored.db");
    std::fs::copy(&backup, &restored_path).unwrap();
    let app = Arc::try_unwrap(app).unwrap_or_else(|_| panic!("the workers are done"));
    let restored_url = format!("sqlite://{}", restored_path.display());
    let restored = app
        .restart(|settings| settings.database_url = restored_url.clone())
        .await;
    assert_eq!(restored.session_status(&access).await, StatusCode::OK);
    let refreshed = restored
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

#[tokio::test]
async fn backup_of_postgres_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let output = mcpauth(dir.path())
        .args([
            "backup",
            "--database-url",
            "postgres://u@127.0.0.1:1/x",
            "--output",
        ])
        .arg(dir.path().join("b.db"))
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
}
