//! The purge log in PostgreSQL, shared by several purge-api replicas.
//!
//! Sequence numbers come from the database: an append bumps the one row of `purge_meta` and
//! inserts the entry in the same statement, so the row lock orders appends, a sequence is never
//! skipped (a failed append rolls its bump back) and entries commit in sequence order. A
//! replica that reads a head therefore finds every entry up to it.
//!
//! `purge_nodes` holds one row per edge node: which replica delivers to it (a lease, timed by
//! the database's clock so replicas' clocks do not matter) and the position that replica last
//! heard from the node, so any replica can say which nodes applied a purge.
//!
//! Both kinds of news are announced on the `purge_api` channel (`NOTIFY`, sent at commit), so
//! the other replicas read them at once instead of at their next poll.

use std::sync::Arc;
use std::time::Duration;

use edge_config::purge_api::{Postgres, PostgresUrl};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{random_u64, Position, StoreError};

/// The channel replicas announce news on: a purge logged, a node's position.
const CHANNEL: &str = "purge_api";

/// Serialises schema creation between replicas starting together.
const SCHEMA_LOCK: i64 = 0x7075_7267_655f_6c67;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS purge_meta (
    id integer PRIMARY KEY CHECK (id = 1),
    log_id text NOT NULL,
    head bigint NOT NULL,
    compacted bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS purge_log (
    seq bigint PRIMARY KEY,
    purge jsonb NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS purge_nodes (
    url text PRIMARY KEY,
    holder text NOT NULL,
    lease_until timestamptz NOT NULL,
    node_id text,
    applied_seq bigint,
    ready boolean NOT NULL DEFAULT false,
    up boolean NOT NULL DEFAULT false,
    last_error text,
    reported timestamptz
);";

/// One node's row: who delivers to it and where it was.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// The node's admin URL.
    pub url: String,
    /// The replica holding (or last holding) the lease.
    pub holder: String,
    /// Whether the lease is still running.
    pub live: bool,
    /// The node's id, as the holder last heard it.
    pub node_id: Option<String>,
    /// The node's applied sequence, as the holder last heard it.
    pub applied_seq: Option<u64>,
    /// Whether the node said it had caught up.
    pub ready: bool,
    /// Whether the holder's last exchange with the node worked.
    pub up: bool,
    /// The holder's last failure to reach the node.
    pub last_error: Option<String>,
}

/// A connection to the database, made again when it breaks.
pub struct Pg {
    config: Config,
    /// TLS as the connection string's `sslmode` asks (`prefer` by default, `require`,
    /// `disable`); a certificate is always verified, host name included.
    tls: MakeRustlsConnect,
    client: Mutex<Option<Arc<Client>>>,
    /// A second connection for node positions, committed without waiting for the disk:
    /// they are advisory (each node's own cursor is the truth), and one fsync per node per
    /// purge, queued on the log's connection, would delay the next delivery behind them.
    reports: Mutex<Option<Arc<Client>>>,
}

/// Roots that verify the server: `ca_file`, or the system's.
fn tls(ca_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Tls(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Tls(format!(
                    "{}: no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            // A system root that does not parse is skipped, as curl and libpq skip it.
            for cert in rustls_native_certs::load_native_certs().unwrap_or_default() {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn seq(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Pg {
    /// Connects, creates the tables if they are missing, and reads the log's identity and
    /// position.
    pub async fn open(settings: &Postgres) -> Result<(Pg, String, Position), StoreError> {
        let text = match &settings.url {
            PostgresUrl::Inline(u) => u.clone(),
            PostgresUrl::File(path) => std::fs::read_to_string(path)
                .map_err(|e| StoreError::Url(format!("{}: {e}", path.display())))?
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .ok_or_else(|| {
                    StoreError::Url(format!("{}: no connection string", path.display()))
                })?
                .to_string(),
        };
        let mut config: Config = text
            .parse()
            .map_err(|e| StoreError::Url(format!("not a connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("purge-api");
        let pg = Pg {
            config,
            tls: tls(settings.ca_file.as_deref())?,
            client: Mutex::new(None),
            reports: Mutex::new(None),
        };
        let client = pg.client().await?;
        client
            .batch_execute(&format!(
                "BEGIN;
                 SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
                 {SCHEMA}
                 INSERT INTO purge_meta (id, log_id, head, compacted)
                     VALUES (1, '{:016x}', 0, 0) ON CONFLICT (id) DO NOTHING;
                 COMMIT;",
                random_u64()
            ))
            .await?;
        let row = client
            .query_one(
                "SELECT log_id, head, compacted FROM purge_meta WHERE id = 1",
                &[],
            )
            .await?;
        let at = Position {
            head: seq(row.try_get(1)?),
            compacted: seq(row.try_get(2)?),
        };
        let log_id: String = row.try_get(0)?;
        Ok((pg, log_id, at))
    }

    /// The open connection, or a new one if it broke (a database restart or failover).
    async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        self.connection(&self.client, false).await
    }

    /// The connection for node positions, committed without waiting for the disk.
    async fn reports(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        self.connection(&self.reports, true).await
    }

    async fn connection(
        &self,
        slot: &Mutex<Option<Arc<Client>>>,
        relaxed: bool,
    ) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection lost; reconnecting on next use");
            }
        });
        if relaxed {
            client.batch_execute("SET synchronous_commit = off").await?;
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Listens on a connection of its own for news from the replicas: `wake` is notified for
    /// each. The task ends when that connection does.
    pub async fn listen(&self, wake: Arc<Notify>) -> Result<JoinHandle<()>, StoreError> {
        let (client, mut connection) = self.config.connect(self.tls.clone()).await?;
        // Notifications arrive through the connection itself, so this task drives it.
        let driver = tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if matches!(message, AsyncMessage::Notification(_)) {
                    wake.notify_one();
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(tokio::spawn(async move {
            // The client lives as long as the connection it listens on.
            let _client = client;
            let _ = driver.await;
        }))
    }

    /// Appends an entry (JSON) and returns its sequence once committed.
    pub async fn append(&self, purge: &str) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "WITH s AS (UPDATE purge_meta SET head = head + 1 WHERE id = 1 RETURNING head),
                      i AS (INSERT INTO purge_log (seq, purge)
                            SELECT head, $1::text::jsonb FROM s RETURNING seq)
                 SELECT seq, pg_notify('purge_api', 'log') FROM i",
                &[&purge],
            )
            .await?;
        Ok(seq(row.try_get(0)?))
    }

    /// The entry at `seq` (JSON), if the log holds it.
    pub async fn read(&self, at: u64) -> Result<Option<String>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT purge::text FROM purge_log WHERE seq = $1",
                &[&int(at)],
            )
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The log's head and compaction point.
    pub async fn position(&self) -> Result<Position, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT head, compacted FROM purge_meta WHERE id = 1", &[])
            .await?;
        Ok(Position {
            head: seq(row.try_get(0)?),
            compacted: seq(row.try_get(1)?),
        })
    }

    /// Keeps the newest `retain` entries; returns how many went and the new position.
    pub async fn compact(&self, retain: u64) -> Result<(usize, Position), StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "WITH c AS (UPDATE purge_meta SET compacted = GREATEST(compacted, head - $1)
                            WHERE id = 1 RETURNING head, compacted),
                      d AS (DELETE FROM purge_log WHERE seq <= (SELECT compacted FROM c)
                            RETURNING 1)
                 SELECT (SELECT head FROM c), (SELECT compacted FROM c), (SELECT count(*) FROM d)",
                &[&int(retain)],
            )
            .await?;
        let dropped: i64 = row.try_get(2)?;
        Ok((
            usize::try_from(dropped).unwrap_or(0),
            Position {
                head: seq(row.try_get(0)?),
                compacted: seq(row.try_get(1)?),
            },
        ))
    }

    /// Takes or renews `holder`'s lease on delivering to `url` for `lease`; false if another
    /// replica holds a running one.
    pub async fn claim(
        &self,
        url: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let ms = lease.as_secs_f64() * 1000.0;
        let row = self
            .client()
            .await?
            .query_opt(
                "INSERT INTO purge_nodes (url, holder, lease_until)
                     VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
                 ON CONFLICT (url) DO UPDATE
                     SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
                     WHERE purge_nodes.holder = EXCLUDED.holder OR purge_nodes.lease_until < now()
                 RETURNING holder",
                &[&url, &holder, &ms],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Every node's row.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT url, holder, lease_until > now(), node_id, applied_seq, ready, up,
                        last_error
                 FROM purge_nodes",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    url: r.try_get(0)?,
                    holder: r.try_get(1)?,
                    live: r.try_get(2)?,
                    node_id: r.try_get(3)?,
                    applied_seq: r.try_get::<_, Option<i64>>(4)?.map(seq),
                    ready: r.try_get(5)?,
                    up: r.try_get(6)?,
                    last_error: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Records what the lease holder heard from its node.
    pub async fn report(
        &self,
        url: &str,
        holder: &str,
        node_id: &str,
        applied: u64,
        ready: bool,
    ) -> Result<(), StoreError> {
        self.reports()
            .await?
            .query(
                "WITH u AS (UPDATE purge_nodes SET node_id = $3, applied_seq = $4, ready = $5,
                                   up = true, last_error = NULL, reported = now()
                            WHERE url = $1 AND holder = $2 RETURNING url)
                 SELECT pg_notify('purge_api', 'node') FROM u",
                &[&url, &holder, &node_id, &int(applied), &ready],
            )
            .await?;
        Ok(())
    }

    /// Records that the lease holder cannot reach its node.
    pub async fn report_down(
        &self,
        url: &str,
        holder: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        self.reports()
            .await?
            .query(
                "WITH u AS (UPDATE purge_nodes SET up = false, last_error = $3, reported = now()
                            WHERE url = $1 AND holder = $2 RETURNING url)
                 SELECT pg_notify('purge_api', 'node') FROM u",
                &[&url, &holder, &error],
            )
            .await?;
        Ok(())
    }
}
