//! Instances: the collector asks a generator to run an alert class with arguments (seed 000:
//! `instantiate_alert_generator("HIDS", "TCP_MISSING", "12133", {"port": "80"})`), changes or
//! removes it, asks it for a profile; the generator pulls these changes, acknowledges each, and
//! reports its profile (events seen, alerts raised, last run, errors).
//!
//! Delivery is a pull: every change of a generator's instances takes the next number of that
//! generator's change sequence (`version`), and a generator asks for the changes after the last
//! one it applied, so no port needs to be open on the generator's host, and a generator that was
//! down gets every change it missed, removals included (a removed instance is kept, marked
//! deleted, with the version of its removal). The collector may also push the changes not
//! acknowledged yet (`acknowledged_version` below `version`) to a generator's push URL; either way a
//! change is done only when acknowledged.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Kind, RegistryError, check_name, check_text};
use crate::registry::{Registry, Row, Stored};

/// How the generator last answered an instance's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Changed since the generator last acknowledged it.
    Pending,
    /// The generator applied its latest version.
    Applied,
    /// The generator could not apply its latest version (see `error`).
    Failed,
}

/// What a generator reports of an instance it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub events_seen: u64,
    #[serde(default)]
    pub alerts_raised: u64,
    /// When it last ran (as the generator says it, RFC 3339).
    #[serde(default)]
    pub last_run: Option<String>,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the collector received it (set by the registry).
    #[serde(default)]
    pub reported_micros: i64,
}

/// An instance of an alert class on a generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    #[serde(skip_deserializing)]
    pub row: i64,
    /// Its id among the generator's instances (the seed's `alert_id`).
    pub id: String,
    pub generator: String,
    pub class: String,
    /// Its arguments as checked against the class's parameters, defaults filled in.
    pub arguments: Map<String, Value>,
    /// The number of its latest change in its generator's change sequence.
    pub version: u64,
    pub state: InstanceState,
    /// The latest version the generator acknowledged.
    pub acknowledged_version: Option<u64>,
    /// Why the generator could not apply it.
    pub error: Option<String>,
    /// Whether the collector asked for a profile it has not had yet.
    pub profile_requested: bool,
    pub profile: Option<Profile>,
    /// True once removed (delivered so the generator stops it).
    pub deleted: bool,
    #[serde(skip_deserializing)]
    pub created_micros: i64,
    #[serde(skip_deserializing)]
    pub updated_micros: i64,
}

impl Row for Instance {
    const KIND: Kind = Kind::Instance;
    fn set_row(&mut self, record: &isms_store::ControlRecord) {
        self.row = record.id;
        self.created_micros = record.created_micros;
        self.updated_micros = record.updated_micros;
    }
    fn name(&self) -> &str {
        &self.id
    }
}

/// What instantiating a class takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    pub class: String,
    /// Its id; the next free number when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// A generator's answer to one change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// The version it applied (or failed to).
    pub version: u64,
    /// True when applied; false with `error` when it could not.
    pub applied: bool,
    #[serde(default)]
    pub error: Option<String>,
}

impl Registry {
    /// Every instance row of a generator, live and removed.
    async fn instance_rows(&self, generator: &str) -> Result<Vec<Stored<Instance>>, RegistryError> {
        self.load_where(|stored: &Stored<Instance>| stored.value.generator == generator)
            .await
    }

    /// The next number of a generator's change sequence.
    fn next_version(rows: &[Stored<Instance>]) -> u64 {
        rows.iter()
            .map(|stored| stored.value.version)
            .max()
            .unwrap_or(0)
            + 1
    }

    fn live_instance<'rows>(
        rows: &'rows [Stored<Instance>],
        generator: &str,
        id: &str,
    ) -> Result<&'rows Stored<Instance>, RegistryError> {
        rows.iter()
            .find(|stored| stored.value.id == id && stored.record.deleted_micros.is_none())
            .ok_or_else(|| RegistryError::not_found(Kind::Instance, id, Some(generator)))
    }

    /// Instantiates a class on a generator, its arguments checked against the class's parameters
    /// (its own and inherited).
    pub async fn instantiate(
        &self,
        generator: &str,
        spec: InstanceSpec,
    ) -> Result<Instance, RegistryError> {
        let _writing = self.writes.lock().await;
        let owner = self.live_generator(generator).await?;
        let parameters = match self.class_parameters(generator, &spec.class).await {
            Ok(parameters) => parameters,
            Err(RegistryError::NotFound { .. }) => {
                return Err(RegistryError::invalid(
                    "class",
                    format!("no class named {:?} in generator {generator:?}", spec.class),
                ));
            }
            Err(error) => return Err(error),
        };
        let arguments = crate::syntax::validate_arguments(&parameters, &spec.arguments)?;
        let rows = self.instance_rows(generator).await?;
        let id = match spec.id {
            Some(id) => {
                check_name(&id, "id")?;
                if rows
                    .iter()
                    .any(|stored| stored.value.id == id && stored.record.deleted_micros.is_none())
                {
                    return Err(RegistryError::already_exists(
                        Kind::Instance,
                        id,
                        Some(generator),
                    ));
                }
                id
            }
            None => {
                let highest = rows
                    .iter()
                    .filter_map(|stored| stored.value.id.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0);
                (highest + 1).to_string()
            }
        };
        let instance = Instance {
            row: 0,
            id,
            generator: generator.to_owned(),
            class: spec.class,
            arguments,
            version: Self::next_version(&rows),
            state: InstanceState::Pending,
            acknowledged_version: None,
            error: None,
            profile_requested: false,
            profile: None,
            deleted: false,
            created_micros: 0,
            updated_micros: 0,
        };
        self.insert(owner.record.id.to_string(), instance, Some(generator))
            .await
    }

    /// The live instances of a live generator.
    pub async fn instances(&self, generator: &str) -> Result<Vec<Instance>, RegistryError> {
        self.live_generator(generator).await?;
        Ok(self
            .instance_rows(generator)
            .await?
            .into_iter()
            .filter(|stored| stored.record.deleted_micros.is_none())
            .map(|stored| stored.value)
            .collect())
    }

    pub async fn instance(&self, generator: &str, id: &str) -> Result<Instance, RegistryError> {
        self.live_generator(generator).await?;
        let rows = self.instance_rows(generator).await?;
        Ok(Self::live_instance(&rows, generator, id)?.value.clone())
    }

    /// The changes of a generator's instances after `after` (removals included), oldest first:
    /// what a generator that applied everything through `after` has still to apply.
    pub async fn changes(
        &self,
        generator: &str,
        after: u64,
    ) -> Result<Vec<Instance>, RegistryError> {
        self.live_generator(generator).await?;
        let mut changed: Vec<Instance> = self
            .instance_rows(generator)
            .await?
            .into_iter()
            .map(|stored| stored.value)
            .filter(|instance| instance.version > after)
            .collect();
        changed.sort_by_key(|instance| instance.version);
        Ok(changed)
    }

    /// Applies `change` to a live instance as a new version (pending until acknowledged).
    async fn change_instance(
        &self,
        generator: &str,
        id: &str,
        change: impl FnOnce(&mut Instance) -> Result<(), RegistryError>,
        delete: bool,
    ) -> Result<Instance, RegistryError> {
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let rows = self.instance_rows(generator).await?;
        let stored = Self::live_instance(&rows, generator, id)?;
        let mut instance = stored.value.clone();
        change(&mut instance)?;
        instance.version = Self::next_version(&rows);
        instance.state = InstanceState::Pending;
        instance.deleted = delete;
        let deleted = delete.then(crate::registry::now_micros);
        self.rewrite(stored, instance, deleted).await
    }

    /// New arguments for an instance (checked against its class as it is now).
    pub async fn reconfigure_instance(
        &self,
        generator: &str,
        id: &str,
        arguments: Map<String, Value>,
    ) -> Result<Instance, RegistryError> {
        let class = self.instance(generator, id).await?.class;
        let parameters = self.class_parameters(generator, &class).await?;
        let checked = crate::syntax::validate_arguments(&parameters, &arguments)?;
        self.change_instance(
            generator,
            id,
            |instance| {
                instance.arguments = checked;
                Ok(())
            },
            false,
        )
        .await
    }

    /// Removes an instance: kept, marked deleted, delivered so the generator stops it.
    pub async fn remove_instance(
        &self,
        generator: &str,
        id: &str,
    ) -> Result<Instance, RegistryError> {
        self.change_instance(generator, id, |_| Ok(()), true).await
    }

    /// Asks the generator for a fresh profile of an instance (delivered as a change).
    pub async fn request_profile(
        &self,
        generator: &str,
        id: &str,
    ) -> Result<Instance, RegistryError> {
        self.change_instance(
            generator,
            id,
            |instance| {
                instance.profile_requested = true;
                Ok(())
            },
            false,
        )
        .await
    }

    /// The generator's answer to a change of an instance (removed ones included: it stopped it).
    pub async fn acknowledge(
        &self,
        generator: &str,
        id: &str,
        acknowledgement: Acknowledgement,
    ) -> Result<Instance, RegistryError> {
        if let Some(error) = &acknowledgement.error {
            check_text(error, "error", 2000)?;
        }
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let rows = self.instance_rows(generator).await?;
        // The row of that id at that version: the live one, or a removed one (an id removed and
        // made again has a row for each).
        let of_id: Vec<&Stored<Instance>> =
            rows.iter().filter(|stored| stored.value.id == id).collect();
        let Some(latest) = of_id.iter().max_by_key(|stored| stored.value.version) else {
            return Err(RegistryError::not_found(
                Kind::Instance,
                id,
                Some(generator),
            ));
        };
        let Some(stored) = of_id
            .iter()
            .find(|stored| stored.value.version == acknowledgement.version)
        else {
            return Err(RegistryError::invalid(
                "version",
                format!(
                    "instance {id:?} is at version {}, not {}: pull the changes again",
                    latest.value.version, acknowledgement.version
                ),
            ));
        };
        let mut instance = stored.value.clone();
        instance.acknowledged_version = Some(acknowledgement.version);
        if acknowledgement.applied {
            instance.state = InstanceState::Applied;
            instance.error = None;
        } else {
            instance.state = InstanceState::Failed;
            instance.error = Some(
                acknowledgement
                    .error
                    .unwrap_or_else(|| "the generator gave no reason".to_owned()),
            );
        }
        let deleted = stored.record.deleted_micros;
        self.rewrite(stored, instance, deleted).await
    }

    /// A profile the generator reports for a live instance.
    pub async fn report_profile(
        &self,
        generator: &str,
        id: &str,
        mut profile: Profile,
    ) -> Result<Instance, RegistryError> {
        if let Some(last_run) = &profile.last_run
            && last_run.parse::<jiff::Timestamp>().is_err()
        {
            return Err(RegistryError::invalid(
                "last_run",
                format!("{last_run:?} is not an RFC 3339 time"),
            ));
        }
        if let Some(error) = &profile.last_error {
            check_text(error, "last_error", 2000)?;
        }
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let rows = self.instance_rows(generator).await?;
        let stored = Self::live_instance(&rows, generator, id)?;
        let mut instance = stored.value.clone();
        profile.reported_micros = crate::registry::now_micros();
        instance.profile = Some(profile);
        instance.profile_requested = false;
        self.rewrite(stored, instance, None).await
    }
}
