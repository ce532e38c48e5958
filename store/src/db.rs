//! The store's registration database (SQLite, WAL).
//!
//! An item exists for the store iff it has a row in `ValidPaths`; a directory
//! under the root without one is garbage left by an interrupted add and is
//! removed by the next add of the same item or by `gc`. Every change is one
//! transaction (`BEGIN IMMEDIATE`), so a process killed at any instant leaves
//! either the whole batch or none of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::store_path::StorePath;

/// The schema this code writes; `PRAGMA user_version` holds it.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ValidPaths (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    path             TEXT    NOT NULL UNIQUE,  -- basename <digest>-<name>
    narHash          TEXT    NOT NULL,         -- sha256:<nix-base32>
    narSize          INTEGER NOT NULL,
    deriver          TEXT,
    ca               TEXT,
    registrationTime INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS Refs (
    referrer  INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE CASCADE,
    reference INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE RESTRICT,
    PRIMARY KEY (referrer, reference)
);
CREATE INDEX IF NOT EXISTS IndexReference ON Refs(reference);
CREATE TABLE IF NOT EXISTS Realisations (
    drvHash    TEXT    NOT NULL,
    outputName TEXT    NOT NULL,
    outputPath INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE CASCADE,
    PRIMARY KEY (drvHash, outputName)
);
CREATE TABLE IF NOT EXISTS Roots (
    name      TEXT    PRIMARY KEY,
    path      TEXT    NOT NULL,   -- basename of the rooted item
    link      TEXT,               -- indirect root: live while this link resolves to the item
    createdAt INTEGER NOT NULL
);
-- Version 2: hashes of paths outside the store (crate::hash_cache).
CREATE TABLE IF NOT EXISTS HashCache (
    path        TEXT NOT NULL,  -- absolute path
    kind        TEXT NOT NULL,  -- what value is, named by the caller
    fingerprint TEXT NOT NULL,  -- sha256 of the lstat lines
    value       TEXT NOT NULL,
    PRIMARY KEY (path, kind)
);
"#;

/// What the database records about an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: StorePath,
    /// `sha256:<nix-base32>` of the NAR.
    pub nar_hash: String,
    pub nar_size: u64,
    pub references: Vec<StorePath>,
    pub deriver: Option<String>,
    /// Content address, e.g. `fixed:r:sha256:<nix-base32>`.
    pub ca: Option<String>,
    pub registration_time: i64,
}

/// A root: an item kept alive by `gc`, directly, through a link, or while
/// a file exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub name: String,
    pub path: StorePath,
    /// An indirect root: live while this symlink resolves to the item.
    pub link: Option<PathBuf>,
    /// Live while this path exists (e.g. the file the item was made from).
    pub guard: Option<PathBuf>,
}

pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_stored(s: String) -> rusqlite::Result<StorePath> {
    StorePath::from_basename(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Db, StoreError> {
        let err = |source| StoreError::Database {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(300)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion {
                path: path.to_path_buf(),
                expected: SCHEMA_VERSION,
                found: version,
            });
        }
        if version < SCHEMA_VERSION {
            let mut db = Db {
                conn,
                path: path.to_path_buf(),
            };
            db.write(|tx| {
                // Read again under the write lock: another process opening
                // the same store may have upgraded it meanwhile.
                let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
                if version >= SCHEMA_VERSION {
                    return Ok(());
                }
                tx.execute_batch(SCHEMA)?;
                if version < 3 {
                    // Version 3: roots live while a file exists.
                    tx.execute_batch("ALTER TABLE Roots ADD COLUMN guard TEXT;")?;
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                Ok(())
            })?;
            return Ok(db);
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Database {
            path: self.path.clone(),
            source,
        }
    }

    /// Run `f` in one write transaction.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let v = f(&tx).map_err(&err)?;
        tx.commit().map_err(err)?;
        Ok(v)
    }

    pub(crate) fn is_valid(&self, path: &StorePath) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM ValidPaths WHERE path = ?1",
                [path.basename()],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(self.err())
    }

    /// Register items in one transaction. References must be valid already or
    /// be registered in the same batch.
    pub(crate) fn register(&mut self, items: &[PathInfo]) -> Result<(), StoreError> {
        let t = now();
        self.write(|tx| {
            for info in items {
                tx.execute(
                    "INSERT OR IGNORE INTO ValidPaths (path, narHash, narSize, deriver, ca, registrationTime)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![info.path.basename(), info.nar_hash, info.nar_size as i64, info.deriver, info.ca, t],
                )?;
            }
            for info in items {
                for r in &info.references {
                    tx.execute(
                        "INSERT OR IGNORE INTO Refs (referrer, reference)
                         SELECT a.id, b.id FROM ValidPaths a, ValidPaths b WHERE a.path = ?1 AND b.path = ?2",
                        params![info.path.basename(), r.basename()],
                    )?;
                }
            }
            Ok(())
        })
    }

    pub(crate) fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, narHash, narSize, deriver, ca, registrationTime FROM ValidPaths WHERE path = ?1",
                [path.basename()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err())?;
        let Some((id, nar_hash, nar_size, deriver, ca, registration_time)) = row else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?1 ORDER BY v.path",
            )
            .map_err(self.err())?;
        let references = stmt
            .query_map([id], |r| parse_stored(r.get(0)?))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(Some(PathInfo {
            path: path.clone(),
            nar_hash,
            nar_size: nar_size as u64,
            references,
            deriver,
            ca,
            registration_time,
        }))
    }

    /// Every valid item, sorted by basename.
    pub(crate) fn valid_paths(&self) -> Result<Vec<StorePath>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path FROM ValidPaths ORDER BY path")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| parse_stored(r.get(0)?))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }

    pub(crate) fn delete_paths(&mut self, paths: &[StorePath]) -> Result<(), StoreError> {
        self.write(|tx| {
            for p in paths {
                tx.execute(
                    "DELETE FROM Refs WHERE referrer = (SELECT id FROM ValidPaths WHERE path = ?1)",
                    [p.basename()],
                )?;
            }
            for p in paths {
                tx.execute("DELETE FROM ValidPaths WHERE path = ?1", [p.basename()])?;
            }
            Ok(())
        })
    }

    pub(crate) fn add_root(&mut self, root: &Root) -> Result<(), StoreError> {
        let link = root.link.as_ref().map(|l| l.to_string_lossy().into_owned());
        let guard = root
            .guard
            .as_ref()
            .map(|g| g.to_string_lossy().into_owned());
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO Roots (name, path, link, guard, createdAt) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![root.name, root.path.basename(), link, guard, now()],
            )?;
            Ok(())
        })
    }

    pub(crate) fn remove_root(&mut self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM Roots WHERE name = ?1", [name])? > 0))
    }

    pub(crate) fn roots(&self) -> Result<Vec<Root>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, path, link, guard FROM Roots ORDER BY name")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Root {
                    name: r.get(0)?,
                    path: parse_stored(r.get(1)?)?,
                    link: r.get::<_, Option<String>>(2)?.map(PathBuf::from),
                    guard: r.get::<_, Option<String>>(3)?.map(PathBuf::from),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Record that the derivation `drv_hash` produced `output` as `output_name`.
    pub(crate) fn add_realisation(
        &mut self,
        drv_hash: &str,
        output_name: &str,
        output: &StorePath,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO Realisations (drvHash, outputName, outputPath)
                 SELECT ?1, ?2, id FROM ValidPaths WHERE path = ?3",
                params![drv_hash, output_name, output.basename()],
            )?;
            Ok(())
        })
    }

    pub(crate) fn hash_cache_get(
        &self,
        path: &str,
        kind: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT fingerprint, value FROM HashCache WHERE path = ?1 AND kind = ?2",
            )
            .and_then(|mut st| {
                st.query_row([path, kind], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(self.err())
    }

    pub(crate) fn hash_cache_put(
        &mut self,
        path: &str,
        kind: &str,
        fingerprint: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO HashCache (path, kind, fingerprint, value) VALUES (?1, ?2, ?3, ?4)",
                params![path, kind, fingerprint, value],
            )?;
            Ok(())
        })
    }

    /// Every realisation: (derivation hash, output name, output).
    pub(crate) fn all_realisations(&self) -> Result<Vec<(String, String, StorePath)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.drvHash, r.outputName, v.path FROM Realisations r
                 JOIN ValidPaths v ON v.id = r.outputPath ORDER BY r.drvHash, r.outputName",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, parse_stored(r.get(2)?)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }

    pub(crate) fn realisation(
        &self,
        drv_hash: &str,
        output_name: &str,
    ) -> Result<Option<StorePath>, StoreError> {
        self.conn
            .query_row(
                "SELECT v.path FROM Realisations r JOIN ValidPaths v ON v.id = r.outputPath
                 WHERE r.drvHash = ?1 AND r.outputName = ?2",
                [drv_hash, output_name],
                |r| parse_stored(r.get(0)?),
            )
            .optional()
            .map_err(self.err())
    }
}
