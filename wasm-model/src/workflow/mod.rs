//! The writer's workflow (issue #20), as pure logic over texts, vectors and gallery items — one idea per file —
//! which the engine (`engine::refine`, `engine::passage`), the page's worker, `/api/search` and `trainer
//! search` run the same way on every gallery tier:
//!
//! - `passage`: a pasted passage split into sentences and grouped into ideas;
//! - `feedback`: 👍/👎 marks as Rocchio relevance feedback;
//! - `layout`: orientation, minimum size and licence filters;
//! - `duplicates`: the gallery's near-duplicate threshold and the collapse into groups;
//! - `mmr`: "more varied" (maximal marginal relevance);
//! - `refine`: the refinement a share link carries, and the last steps on a query's candidates.

pub mod duplicates;
pub mod feedback;
pub mod layout;
pub mod mmr;
pub mod passage;
pub mod refine;

pub use duplicates::DuplicateCalibration;
pub use layout::{Layout, LayoutFilter, LicenceNeed, Orientation};
pub use passage::{PassageError, Split};
pub use refine::{Candidate, Group, Refinement, CANDIDATES};
