//! The registry of alert generators (seed 000): generators register with the collector and get a
//! key, declare the alert groups they belong to and the alert classes (detector types) they can
//! produce, and are verified, updated and deleted.
//!
//! Why a crate of its own: the rules of the registry (names unique among live rows, soft delete
//! that carries down to what a generator or group owns, a class inheriting its parent's
//! parameters without cycles, arguments checked against a class's syntax) are the same whichever
//! face calls them (REST, the `isms generator` client, later the agent) and whichever store keeps
//! them, so they live here, away from HTTP and SQL. Records are kept as the store's control
//! records ([`isms_store::ControlRecord`]): a few hundred rows read whole, so every operation reads
//! what it needs and writes one record at a time under one lock (one collector writes them).
//!
//! Keys are not made here: the server makes a generator's key (argon2, shown once) and records
//! its public id on the generator ([`Registry::set_generator_key`]).
pub mod instance;
pub mod model;
pub mod registry;
pub mod syntax;

pub use instance::{Acknowledgement, Instance, InstanceSpec, InstanceState, Profile};
pub use model::{
    AlertClass, AlertGroup, ClassChanges, ClassSpec, Generator, GeneratorChanges, GeneratorClaims,
    GeneratorSpec, GroupChanges, GroupSpec, Kind, RecordedKey, RegistryError,
};
pub use registry::{Registry, inherited_parameters};
pub use syntax::{Parameter, ParameterType, validate_arguments};
