//! SQLite audit log of alerts and block episodes (rusqlite).
//!
//! Writes happen on their own thread, in one transaction per batch. The
//! hand-off is a bounded queue that is never waited on: if the database is
//! slow, locked or full, batches are dropped and counted rather than
//! stalling the collector (and through it the shards).

use crate::alert::{eve_time, Event};
use crossbeam_channel::{bounded, Sender, TrySendError};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    src_ip TEXT NOT NULL,
    dest_ip TEXT,
    src_port INTEGER,
    dest_port INTEGER,
    proto TEXT,
    pcap_cnt INTEGER,
    signature_id INTEGER NOT NULL,
    signature TEXT NOT NULL,
    category TEXT,
    severity INTEGER,
    action TEXT NOT NULL,
    reason TEXT,
    eve TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts_ns);
CREATE INDEX IF NOT EXISTS alerts_src ON alerts(src_ip);
CREATE INDEX IF NOT EXISTS alerts_sid ON alerts(signature_id);
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY,
    src_ip TEXT NOT NULL,
    signature_id INTEGER NOT NULL,
    signature TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER NOT NULL,
    start_pcap_cnt INTEGER,
    end_reason TEXT NOT NULL,
    action TEXT NOT NULL,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    eve TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_src ON episodes(src_ip);
CREATE INDEX IF NOT EXISTS episodes_started ON episodes(started_ns);
";

/// Counters of the audit sink, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Events committed to the database.
    pub written: AtomicU64,
    /// Events not stored because the queue was full (database too slow).
    pub dropped: AtomicU64,
    /// Events in batches whose write failed (locked, full, I/O error).
    pub failed: AtomicU64,
}

/// Handle on the audit writer thread. [`offer`](Self::offer) queues
/// events without ever blocking; [`finish`](Self::finish) (or dropping the
/// handle) writes what is queued and joins the thread.
pub struct AuditSink {
    tx: Option<Sender<Vec<Event>>>,
    thread: Option<JoinHandle<()>>,
    /// What became of the events offered; shared with the writer thread.
    pub stats: Arc<AuditStats>,
}

/// Opens the audit database, creating it (and its directory) and the
/// schema if needed, with WAL journaling and a 200 ms busy timeout. The
/// writer thread and `flowgate alerts` both open it this way.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_millis(200))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.execute_batch(SCHEMA)?;
    Ok(db)
}

/// The audit database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database could not be opened, or its schema not created.
    #[error("{}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("audit thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl AuditSink {
    /// Opens (creating the schema) and starts the writer thread.
    pub fn start(path: &Path) -> Result<AuditSink, AuditError> {
        let db = open(path).map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = bounded::<Vec<Event>>(256);
        let stats = Arc::new(AuditStats::default());
        let st = stats.clone();
        let p: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                let mut db = db;
                let mut warned = false;
                for batch in rx {
                    let n = batch.len() as u64;
                    match write_batch(&mut db, &batch) {
                        Ok(()) => {
                            st.written.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            st.failed.fetch_add(n, Ordering::Relaxed);
                            if !warned {
                                tracing::warn!(
                                    "audit log {}: {e}; events are counted as failed",
                                    p.display()
                                );
                                warned = true;
                            }
                        }
                    }
                }
            })
            .map_err(AuditError::Thread)?;
        Ok(AuditSink {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Queues events; never blocks.
    pub fn offer(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            match tx.try_send(events.to_vec()) {
                Ok(()) => {}
                Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                    self.stats
                        .dropped
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }

    /// Flushes the queue and waits for the writer.
    pub fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_batch(db: &mut Connection, batch: &[Event]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut alert = tx.prepare_cached(
            "INSERT INTO alerts (ts_ns, timestamp, src_ip, dest_ip, src_port, dest_port, proto, pcap_cnt,
             signature_id, signature, category, severity, action, reason, eve)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        let mut ep = tx.prepare_cached(
            "INSERT INTO episodes (src_ip, signature_id, signature, started_ns, ended_ns, start_pcap_cnt,
             end_reason, action, packets, bytes, eve) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for e in batch {
            match e {
                Event::Alert(a) => {
                    alert.execute(params![
                        a.ts as i64,
                        eve_time(a.ts),
                        a.src.to_string(),
                        a.dst.to_string(),
                        a.src_port,
                        a.dst_port,
                        a.proto.eve_name(),
                        a.pcap_cnt as i64,
                        a.rule.id,
                        a.rule.msg.as_ref(),
                        a.rule.category.as_ref(),
                        a.rule.severity,
                        if a.blocked { "blocked" } else { "allowed" },
                        a.reason,
                        e.to_eve().to_string(),
                    ])?;
                }
                Event::BlockEnd(b) => {
                    ep.execute(params![
                        b.src.to_string(),
                        b.rule.id,
                        b.rule.msg.as_ref(),
                        b.started as i64,
                        b.ts as i64,
                        b.start_pcap_cnt as i64,
                        b.reason.as_str(),
                        match b.mode {
                            crate::config::Mode::Prevent => "blocked",
                            crate::config::Mode::Detect => "allowed",
                        },
                        b.packets as i64,
                        b.bytes as i64,
                        e.to_eve().to_string(),
                    ])?;
                }
            }
        }
    }
    tx.commit()
}

/// A query for `flowgate alerts`.
#[derive(Debug, Default)]
pub struct Query {
    /// Only rows at or after this packet time, ns since the epoch (alerts
    /// by their time, offenders by their episodes' start).
    pub since_ns: Option<u64>,
    /// Only rows before this packet time.
    pub until_ns: Option<u64>,
    /// Only this rule ID.
    pub rule: Option<u32>,
    /// Only this source, written as `IpAddr`'s `Display` writes it.
    pub src: Option<String>,
    /// Most rows returned (0, the default, returns none).
    pub limit: usize,
}

impl Query {
    /// The filter values, bound to ?1..?5 of both queries below.
    fn bind(&self) -> (Option<i64>, Option<i64>, Option<u32>, Option<&str>, i64) {
        (
            self.since_ns.map(|v| v as i64),
            self.until_ns.map(|v| v as i64),
            self.rule,
            self.src.as_deref(),
            self.limit as i64,
        )
    }
}

/// Alerts matching `q`, newest last, as their EVE objects.
pub fn alerts(db: &Connection, q: &Query) -> rusqlite::Result<Vec<serde_json::Value>> {
    let mut stmt = db.prepare(
        "SELECT eve FROM alerts WHERE (?1 IS NULL OR ts_ns >= ?1) AND (?2 IS NULL OR ts_ns < ?2)
         AND (?3 IS NULL OR signature_id = ?3) AND (?4 IS NULL OR src_ip = ?4)
         ORDER BY ts_ns, pcap_cnt LIMIT ?5",
    )?;
    let rows = stmt.query_map(q.bind(), |r| r.get::<_, String>(0))?;
    Ok(rows
        .filter_map(Result::ok)
        .filter_map(|s| serde_json::from_str(&s).ok())
        .collect())
}

/// Top sources by packets decided against them (episode records).
pub fn top_offenders(db: &Connection, q: &Query) -> rusqlite::Result<Vec<(String, u64, u64, u64)>> {
    let mut stmt = db.prepare(
        "SELECT src_ip, COUNT(*), SUM(packets) + COUNT(*), SUM(bytes) FROM episodes
         WHERE (?1 IS NULL OR started_ns >= ?1) AND (?2 IS NULL OR started_ns < ?2)
         AND (?3 IS NULL OR signature_id = ?3) AND (?4 IS NULL OR src_ip = ?4)
         GROUP BY src_ip ORDER BY 3 DESC, 1 LIMIT ?5",
    )?;
    let rows = stmt.query_map(q.bind(), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
            r.get::<_, i64>(3)? as u64,
        ))
    })?;
    rows.collect()
}
