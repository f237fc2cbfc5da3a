//! The database tier against a real PostgreSQL + pgvector: each test starts an instance of its own with
//! scripts/pg.sh (free port, scratch folder, removed afterwards) and prints "skipped" when the engine is absent.

mod common;
mod load;
mod outage;
mod refine;
mod script;
mod search;
