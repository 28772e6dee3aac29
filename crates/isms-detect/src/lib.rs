//! Streaming detection: rules over events, in real time and in replays.
//!
//! This is the heart of isms. A [`Rule`] (YAML in a rules directory, or through the API) names a
//! kind, a match in the search language and the kind's parameters; the [`Engine`] runs every rule
//! over each event in event-time order and returns [`Detection`]s. Each detection is also an event
//! (category `alert`) that goes through the rules again, so rules build on rules (chains). The same
//! engine runs in `isms serve` and offline in `isms replay`, so what a replay shows is what the
//! server would have raised.
//!
//! The kinds are in [`parameters::KINDS`], each with its published parameter list: match,
//! threshold (per-entity fire once, attach, clear, as seed 003's Global User Alerts), distinct
//! count, sequence, absence, first seen and list (seed 002's detectors), and scheduled (a search over
//! the store on a cron schedule, MozDef's alerts; the server runs the search, the engine judges it). The matching itself is
//! `isms_query`'s matcher, the same code that answers a search, so a rule and a search agree on what
//! an event matches. Sigma rules ([`sigma`]) are read by `rsigma-parser` and compiled into the
//! same IR, as `match` rules, side by side with native ones in the same directories.
pub mod builtin;
pub mod detection;
pub mod duration;
pub mod engine;
pub mod lists;
pub mod parameters;
pub mod prefilter;
pub mod rule;
pub mod sigma;
pub mod sigma_pipeline;
pub mod template;

pub use detection::{Detection, DetectionState};
pub use engine::{Engine, EngineOptions, EngineStatistics, RuleColour, RuleStatus};
pub use lists::{Lists, NamedList};
pub use parameters::{KINDS, KindConfig, KindSpec, ParameterSpec, ParameterType};
pub use prefilter::{EventPrefilter, PrefilterScratch};
pub use rule::{
    LoadedRules, Rule, RuleDefinition, RuleError, load_directory, load_directory_with_lists,
    load_directory_with_pipelines, parse_rules,
};
