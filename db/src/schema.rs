//! The tables (README "Schema"): `imgpick_meta` says which gallery is live and which one is being loaded;
//! `imgpick_images` is the live gallery, `imgpick_images_loading` the one being built (swapped in at the end).

use pgvector::{HalfVector, Vector};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use wasm_model::workflow::DuplicateCalibration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

/// Bumped when the tables change shape; a database of another version is reloaded, not read (searches answer
/// that it needs `trainer db-load` again; a load rebuilds it, its old gallery live until the new one is swapped
/// in). 2: each image's width, height, orientation and normalised licence id, and the gallery's near-duplicate
/// calibration in the meta row (issue #20's layout filters and collapse).
pub const SCHEMA_VERSION: i32 = 2;
pub const META_TABLE: &str = "imgpick_meta";
pub const LIVE_TABLE: &str = "imgpick_images";
pub const LOADING_TABLE: &str = "imgpick_images_loading";
/// pgvector's HNSW limit for `halfvec` (`vector` allows 2,000); the stored vectors have `embed_dim + 1` values.
pub const MAX_HALFVEC_DIM: usize = 4000;
pub const MAX_VECTOR_DIM: usize = 2000;

/// How a row's vector is stored: `halfvec` (f16, half the size; the default) or `vector` (f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorType {
    Halfvec,
    Vector,
}

impl VectorType {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Halfvec => "halfvec",
            Self::Vector => "vector",
        }
    }
    /// The HNSW operator class for inner product (`<#>`).
    pub(crate) fn ip_ops(self) -> &'static str {
        match self {
            Self::Halfvec => "halfvec_ip_ops",
            Self::Vector => "vector_ip_ops",
        }
    }
    pub(crate) fn max_dim(self) -> usize {
        match self {
            Self::Halfvec => MAX_HALFVEC_DIM,
            Self::Vector => MAX_VECTOR_DIM,
        }
    }
    /// A query parameter of this type.
    pub(crate) fn param(self, values: &[f32]) -> Box<dyn ToSql + Sync + Send> {
        match self {
            Self::Halfvec => Box::new(HalfVector::from_f32_slice(values)),
            Self::Vector => Box::new(Vector::from(values.to_vec())),
        }
    }
    /// An array parameter (`halfvec[]` / `vector[]`) of these rows.
    pub(crate) fn array_param(self, rows: &[Vec<f32>]) -> Box<dyn ToSql + Sync + Send> {
        match self {
            Self::Halfvec => Box::new(rows.iter().map(|r| HalfVector::from_f32_slice(r)).collect::<Vec<_>>()),
            Self::Vector => Box::new(rows.iter().map(|r| Vector::from(r.clone())).collect::<Vec<_>>()),
        }
    }
    /// Column `idx` of `row`, widened to f32.
    pub(crate) fn read(self, row: &Row, idx: usize) -> Result<Vec<f32>, tokio_postgres::Error> {
        Ok(match self {
            Self::Halfvec => row.try_get::<_, HalfVector>(idx)?.to_vec().into_iter().map(f32::from).collect(),
            Self::Vector => row.try_get::<_, Vector>(idx)?.to_vec(),
        })
    }
}

impl std::str::FromStr for VectorType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "halfvec" => Ok(Self::Halfvec),
            "vector" => Ok(Self::Vector),
            _ => Err(format!("unknown vector type {s:?}: expected halfvec or vector")),
        }
    }
}

/// Where a load stands (`imgpick_meta.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadState {
    /// Rows are being copied into the loading table.
    Copying,
    /// All rows are in; the HNSW index is being built.
    Indexing,
    /// Live: complete and indexed.
    Ready,
}

impl LoadState {
    fn sql(self) -> &'static str {
        match self {
            Self::Copying => "copying",
            Self::Indexing => "indexing",
            Self::Ready => "ready",
        }
    }
}

/// One row of `imgpick_meta`: what a table holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GalleryMeta {
    pub model_id: String,
    pub embed_dim: usize,
    pub vector_type: VectorType,
    /// SHA-256 of `gallery.bin` followed by `gallery.json`.
    pub gallery_checksum: String,
    /// The manifest's `retrieval.hubness_weight` (0 without it), folded into the stored vectors.
    pub hubness_weight: f32,
    /// The hubness given to images without one (the mean of the others, as `Engine` does).
    pub mean_hubness: f32,
    pub rows_total: usize,
    pub state: LoadState,
    pub hnsw_m: i32,
    pub hnsw_ef_construction: i32,
    /// The gallery's near-duplicate threshold, computed at load exactly as `Engine::duplicate_calibration` does
    /// for the same flat gallery.
    pub duplicates: DuplicateCalibration,
}

impl GalleryMeta {
    /// Whether `other` describes the same table (same model, files, scoring, storage and index settings).
    pub fn same_content(&self, other: &GalleryMeta) -> bool {
        self.model_id == other.model_id
            && self.embed_dim == other.embed_dim
            && self.vector_type == other.vector_type
            && self.gallery_checksum == other.gallery_checksum
            && self.hubness_weight.to_bits() == other.hubness_weight.to_bits()
            && self.rows_total == other.rows_total
            && (self.hnsw_m, self.hnsw_ef_construction) == (other.hnsw_m, other.hnsw_ef_construction)
            && self.duplicates.threshold.to_bits() == other.duplicates.threshold.to_bits()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Live,
    Loading,
}

impl Slot {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Loading => "loading",
        }
    }
}

pub(crate) const CREATE_META: &str = "CREATE TABLE IF NOT EXISTS imgpick_meta (
    slot text PRIMARY KEY CHECK (slot IN ('live', 'loading')),
    schema_version integer NOT NULL,
    model_id text NOT NULL,
    embed_dim integer NOT NULL,
    vector_type text NOT NULL,
    gallery_checksum text NOT NULL,
    hubness_weight real NOT NULL,
    mean_hubness real NOT NULL,
    rows_total integer NOT NULL,
    state text NOT NULL,
    hnsw_m integer NOT NULL,
    hnsw_ef_construction integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    duplicate_threshold real,
    duplicate_median real,
    duplicate_mad real,
    duplicate_samples integer)";

/// Brings a meta table of schema 1 to this shape (its rows then read as outdated until a load replaces them).
pub(crate) const MIGRATE_META: &str = "ALTER TABLE imgpick_meta
    ADD COLUMN IF NOT EXISTS duplicate_threshold real,
    ADD COLUMN IF NOT EXISTS duplicate_median real,
    ADD COLUMN IF NOT EXISTS duplicate_mad real,
    ADD COLUMN IF NOT EXISTS duplicate_samples integer";

/// The loading table for `meta`. `STORAGE PLAIN` keeps every vector inline in its row (pgvector's default,
/// EXTERNAL, moves f32 rows of 513 values, 2 kB, out to TOAST and slows exact scans).
pub(crate) fn create_loading_table(meta: &GalleryMeta) -> String {
    format!(
        "CREATE TABLE {LOADING_TABLE} (
            id integer PRIMARY KEY,
            embedding {ty}({dim}) NOT NULL,
            file text NOT NULL,
            thumb text NOT NULL,
            caption text NOT NULL,
            source text NOT NULL,
            licence text NOT NULL,
            url text,
            hubness real,
            width integer,
            height integer,
            orientation text,
            licence_id text NOT NULL);
         ALTER TABLE {LOADING_TABLE} ALTER COLUMN embedding SET STORAGE PLAIN",
        ty = meta.vector_type.sql(),
        dim = meta.embed_dim + 1
    )
}

pub(crate) fn create_loading_index(meta: &GalleryMeta) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {LOADING_TABLE}_hnsw ON {LOADING_TABLE} USING hnsw (embedding {ops}) \
         WITH (m = {m}, ef_construction = {ef})",
        ops = meta.vector_type.ip_ops(),
        m = meta.hnsw_m,
        ef = meta.hnsw_ef_construction
    )
}

/// The upsert of one batch: parallel arrays, one statement (one transaction), keyed by image id.
pub(crate) fn upsert_batch(vector_type: VectorType) -> String {
    format!(
        "INSERT INTO {LOADING_TABLE} (id, embedding, file, thumb, caption, source, licence, url, hubness, width,
                                      height, orientation, licence_id)
         SELECT * FROM unnest($1::integer[], $2::{ty}[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::text[], $9::real[], $10::integer[], $11::integer[], $12::text[], $13::text[])
         ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, file = EXCLUDED.file,
             thumb = EXCLUDED.thumb, caption = EXCLUDED.caption, source = EXCLUDED.source,
             licence = EXCLUDED.licence, url = EXCLUDED.url, hubness = EXCLUDED.hubness, width = EXCLUDED.width,
             height = EXCLUDED.height, orientation = EXCLUDED.orientation, licence_id = EXCLUDED.licence_id",
        ty = vector_type.sql()
    )
}

/// Makes the loading table live and the old live table (if any) disappear; run inside one transaction.
pub(crate) const SWAP: &str = "
    DROP TABLE IF EXISTS imgpick_images;
    ALTER TABLE imgpick_images_loading RENAME TO imgpick_images;
    ALTER INDEX imgpick_images_loading_pkey RENAME TO imgpick_images_pkey;
    ALTER INDEX imgpick_images_loading_hnsw RENAME TO imgpick_images_hnsw;
    DELETE FROM imgpick_meta WHERE slot = 'live';
    UPDATE imgpick_meta SET slot = 'live', state = 'ready', updated_at = now() WHERE slot = 'loading';";

const META_COLUMNS: &str = "model_id, embed_dim, vector_type, gallery_checksum, hubness_weight, mean_hubness, \
                            rows_total, state, hnsw_m, hnsw_ef_construction, schema_version, duplicate_threshold, \
                            duplicate_median, duplicate_mad, duplicate_samples";

/// A meta row as stored: of this schema version, or of another one (never read further: reloaded).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoredMeta {
    Current(GalleryMeta),
    Outdated { schema_version: i32, model_id: String },
}

impl StoredMeta {
    pub(crate) fn model_id(&self) -> &str {
        match self {
            Self::Current(m) => &m.model_id,
            Self::Outdated { model_id, .. } => model_id,
        }
    }
    pub(crate) fn current(self) -> Option<GalleryMeta> {
        match self {
            Self::Current(m) => Some(m),
            Self::Outdated { .. } => None,
        }
    }
}

/// Why a database of another schema version is not searched.
pub(crate) fn outdated_reason(schema_version: i32) -> String {
    format!(
        "it was loaded by another version of imgpick (database schema {schema_version}, this one reads {SCHEMA_VERSION}); \
         reload it with `trainer db-load` (add --replace if it holds another model's gallery)"
    )
}

/// The meta row of `slot`; `None` when there is none or the table does not exist yet.
pub(crate) async fn read_meta(client: &impl GenericClient, slot: Slot) -> Result<Option<StoredMeta>, tokio_postgres::Error> {
    // The version first: a table of schema 1 lacks the later columns.
    let version = format!("SELECT schema_version, model_id FROM {META_TABLE} WHERE slot = $1");
    let row = match client.query_opt(&version, &[&slot.sql()]).await {
        Ok(row) => row,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(v) = row else { return Ok(None) };
    let schema_version: i32 = v.try_get(0)?;
    if schema_version != SCHEMA_VERSION {
        return Ok(Some(StoredMeta::Outdated { schema_version, model_id: v.try_get(1)? }));
    }
    let sql = format!("SELECT {META_COLUMNS} FROM {META_TABLE} WHERE slot = $1");
    let Some(r) = client.query_opt(&sql, &[&slot.sql()]).await? else { return Ok(None) };
    let state = match r.try_get::<_, &str>(7)? {
        "copying" => LoadState::Copying,
        "indexing" => LoadState::Indexing,
        _ => LoadState::Ready,
    };
    Ok(Some(StoredMeta::Current(GalleryMeta {
        model_id: r.try_get(0)?,
        embed_dim: r.try_get::<_, i32>(1)? as usize,
        vector_type: r.try_get::<_, &str>(2)?.parse().unwrap_or(VectorType::Halfvec),
        gallery_checksum: r.try_get(3)?,
        hubness_weight: r.try_get(4)?,
        mean_hubness: r.try_get(5)?,
        rows_total: r.try_get::<_, i32>(6)? as usize,
        state,
        hnsw_m: r.try_get(8)?,
        hnsw_ef_construction: r.try_get(9)?,
        duplicates: DuplicateCalibration {
            threshold: r.try_get::<_, Option<f32>>(11)?.unwrap_or(wasm_model::workflow::duplicates::MAX_DUPLICATE_COSINE),
            median: r.try_get::<_, Option<f32>>(12)?.unwrap_or(f32::NAN),
            mad: r.try_get::<_, Option<f32>>(13)?.unwrap_or(f32::NAN),
            samples: r.try_get::<_, Option<i32>>(14)?.unwrap_or(0) as usize,
        },
    })))
}

/// Inserts or replaces the meta row of `slot`.
pub(crate) async fn write_meta(client: &impl GenericClient, slot: Slot, m: &GalleryMeta) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {META_TABLE} (slot, {META_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (slot) DO UPDATE SET model_id = EXCLUDED.model_id, embed_dim = EXCLUDED.embed_dim,
             vector_type = EXCLUDED.vector_type, gallery_checksum = EXCLUDED.gallery_checksum,
             hubness_weight = EXCLUDED.hubness_weight, mean_hubness = EXCLUDED.mean_hubness,
             rows_total = EXCLUDED.rows_total, state = EXCLUDED.state, hnsw_m = EXCLUDED.hnsw_m,
             hnsw_ef_construction = EXCLUDED.hnsw_ef_construction, schema_version = EXCLUDED.schema_version,
             duplicate_threshold = EXCLUDED.duplicate_threshold, duplicate_median = EXCLUDED.duplicate_median,
             duplicate_mad = EXCLUDED.duplicate_mad, duplicate_samples = EXCLUDED.duplicate_samples, updated_at = now()"
    );
    client
        .execute(
            &sql,
            &[
                &slot.sql(),
                &m.model_id,
                &(m.embed_dim as i32),
                &m.vector_type.sql(),
                &m.gallery_checksum,
                &m.hubness_weight,
                &m.mean_hubness,
                &(m.rows_total as i32),
                &m.state.sql(),
                &m.hnsw_m,
                &m.hnsw_ef_construction,
                &SCHEMA_VERSION,
                &m.duplicates.threshold,
                &m.duplicates.median,
                &m.duplicates.mad,
                &(m.duplicates.samples as i32),
            ],
        )
        .await
        .map(|_| ())
}

pub(crate) async fn set_state(client: &impl GenericClient, slot: Slot, state: LoadState) -> Result<(), tokio_postgres::Error> {
    let sql = format!("UPDATE {META_TABLE} SET state = $2, updated_at = now() WHERE slot = $1");
    client.execute(&sql, &[&slot.sql(), &state.sql()]).await.map(|_| ())
}
