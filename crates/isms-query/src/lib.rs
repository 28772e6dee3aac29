//! isms-query: the predicate language of isms.
//!
//! Everything that selects events (a search typed in the console, a native detection rule, an alert-class
//! filter, later a Sigma rule) becomes ONE intermediate representation, [`Predicate`] (module [`ir`]).
//! Front ends only translate into it, executors only read it:
//!
//! - [`parser`] reads the Lucene-style search language (`category:authentication AND details.username:jo*`)
//!   and prints predicates back ([`to_query_string`]), so rules can be stored and shown as text;
//! - [`matcher`] runs a predicate against events in memory, for the streaming detection engine;
//! - each store backend compiles the same predicate to SQL (in `isms-store`).
//!
//! Why one IR: with a single, small representation whose semantics are written down once (see [`ir`]), the
//! same query gives the same answer in the live stream, in a search and in a replay, and that can be tested
//! directly by generating events and predicates and comparing executors. Adding a front end then costs a
//! translator, not a new executor, and adding an executor does not require understanding every syntax.
pub mod ir;
pub mod matcher;
pub mod network;
pub mod parser;

pub use ir::{Bound, FieldPath, FieldTest, Predicate, RangeKind, TextTest, TimeComponent};
pub use matcher::{CompileError, CompiledPredicate, FieldLookups, PathId, path_id};
pub use parser::{ParseError, parse, to_query_string};
