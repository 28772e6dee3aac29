//! The registry's operations (seed 000: register, verify, update, delete of generators, alert
//! groups and alert classes) over the store's control records.
//!
//! Every write happens under one lock and re-reads what it depends on first, so two requests
//! cannot both take a name or register into a group being deleted. (The store's unique index on
//! live names is the last guard; several collectors writing one PostgreSQL store would still race
//! on references, which is noted for that issue.)
//!
//! Reads come from a cache of each kind's rows, parsed, which this registry's own writes keep up to
//! date: it assumes this registry is the only writer of the control records. Several collectors
//! sharing one store will need the cache told of the others' writes.
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use isms_store::{ControlRecord, Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    AlertClass, AlertGroup, ClassChanges, ClassSpec, Generator, GeneratorChanges, GeneratorClaims,
    GeneratorSpec, GroupChanges, GroupSpec, Kind, RecordedKey, RegistryError, check_class,
    check_generator, check_name, check_text,
};
use crate::syntax::Parameter;

/// The registry of one collector.
pub struct Registry {
    store: Arc<dyn Store>,
    pub(crate) writes: tokio::sync::Mutex<()>,
    /// The rows of each kind as last read, kept up to date by this registry's own writes.
    cache: std::sync::Mutex<HashMap<&'static str, CachedKind>>,
}

/// One kind's rows in the cache. `generation` counts this registry's writes of the kind: rows read
/// from the store while a write happened are not kept (they may predate it).
#[derive(Default)]
struct CachedKind {
    generation: u64,
    /// An `Arc<Vec<Stored<T>>>` for the kind's type.
    rows: Option<Box<dyn Any + Send + Sync>>,
}

/// A record read from the store, with its row (the record's document is not kept: the value is
/// it, parsed).
#[derive(Clone)]
pub(crate) struct Stored<T> {
    pub(crate) record: ControlRecord,
    pub(crate) value: T,
}

pub(crate) fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// What the registry's types share: the row's columns copied in and out.
pub(crate) trait Row: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;
    fn set_row(&mut self, record: &ControlRecord);
    fn name(&self) -> &str;
}

/// The row of a record kept with its own id, times and deletion.
macro_rules! row_with_deletion {
    ($type:ty, $kind:expr) => {
        impl Row for $type {
            const KIND: Kind = $kind;
            fn set_row(&mut self, record: &ControlRecord) {
                self.id = record.id;
                self.created_micros = record.created_micros;
                self.updated_micros = record.updated_micros;
                self.deleted_micros = record.deleted_micros;
            }
            fn name(&self) -> &str {
                &self.name
            }
        }
    };
}

row_with_deletion!(Generator, Kind::Generator);
row_with_deletion!(AlertGroup, Kind::Group);
row_with_deletion!(AlertClass, Kind::Class);

/// A store duplicate (a race the lock did not cover) as the registry's error.
pub(crate) fn duplicate(error: StoreError, kind: Kind, generator: Option<&str>) -> RegistryError {
    match error {
        StoreError::DuplicateRecordName { name, .. } => RegistryError::AlreadyExists {
            kind,
            name,
            generator: generator.map(str::to_owned),
        },
        other => RegistryError::Store(other),
    }
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Registry {
        Registry {
            store,
            writes: tokio::sync::Mutex::new(()),
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, CachedKind>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every row of a kind, live and deleted: from the cache, or read from the store and parsed
    /// once. Why a cache: a generator's pull reads the generators and the instances, and reading
    /// and parsing every row for each pull made a collector with a thousand generators spend its
    /// time in JSON.
    async fn rows<T: Row>(&self) -> Result<Arc<Vec<Stored<T>>>, RegistryError> {
        let kind = T::KIND.record_kind();
        let generation = {
            let cache = self.cache();
            let cached = cache.get(kind);
            if let Some(rows) = cached
                .and_then(|cached| cached.rows.as_ref())
                .and_then(|rows| rows.downcast_ref::<Arc<Vec<Stored<T>>>>())
            {
                return Ok(rows.clone());
            }
            cached.map_or(0, |cached| cached.generation)
        };
        let records = self.store.records(kind).await?;
        let mut loaded = Vec::with_capacity(records.len());
        for mut record in records {
            let document = std::mem::take(&mut record.document);
            let mut value: T = serde_json::from_value(document).map_err(|error| {
                StoreError::InvalidRequest(format!(
                    "the stored {kind} {} cannot be read: {error}",
                    record.id
                ))
            })?;
            value.set_row(&record);
            loaded.push(Stored { record, value });
        }
        let rows = Arc::new(loaded);
        let mut cache = self.cache();
        let cached = cache.entry(kind).or_default();
        if cached.generation == generation {
            cached.rows = Some(Box::new(rows.clone()));
        }
        Ok(rows)
    }

    /// Every row of a kind that `wanted` picks (copies of them).
    pub(crate) async fn load_where<T: Row>(
        &self,
        wanted: impl Fn(&Stored<T>) -> bool,
    ) -> Result<Vec<Stored<T>>, RegistryError> {
        Ok(self
            .rows::<T>()
            .await?
            .iter()
            .filter(|stored| wanted(stored))
            .cloned()
            .collect())
    }

    /// Every row of a kind.
    pub(crate) async fn load<T: Row>(&self) -> Result<Vec<Stored<T>>, RegistryError> {
        self.load_where(|_| true).await
    }

    /// Records in the cache a row this registry just wrote (new, or changed in place).
    fn written<T: Row>(&self, record: &ControlRecord, value: &T) {
        let mut cache = self.cache();
        let cached = cache.entry(T::KIND.record_kind()).or_default();
        cached.generation += 1;
        let Some(rows) = cached
            .rows
            .as_mut()
            .and_then(|rows| rows.downcast_mut::<Arc<Vec<Stored<T>>>>())
        else {
            return;
        };
        let rows = Arc::make_mut(rows);
        let mut record = record.clone();
        record.document = serde_json::Value::Null;
        let stored = Stored {
            record,
            value: value.clone(),
        };
        match rows
            .iter_mut()
            .find(|cached| cached.record.id == stored.record.id)
        {
            Some(cached) => *cached = stored,
            None => rows.push(stored),
        }
    }

    /// Forgets every cached row (after a write whose outcome is not known).
    fn forget_rows(&self) {
        for cached in self.cache().values_mut() {
            cached.generation += 1;
            cached.rows = None;
        }
    }

    pub(crate) async fn insert<T: Row>(
        &self,
        scope: String,
        mut value: T,
        generator: Option<&str>,
    ) -> Result<T, RegistryError> {
        let now = now_micros();
        let mut record = ControlRecord {
            id: 0,
            kind: T::KIND.record_kind().to_owned(),
            scope,
            name: value.name().to_owned(),
            document: serde_json::Value::Null,
            created_micros: now,
            updated_micros: now,
            deleted_micros: None,
        };
        record.document = serde_json::to_value(&value).map_err(|error| {
            StoreError::InvalidRequest(format!("cannot write the record: {error}"))
        })?;
        record.id = match self.store.insert_record(record.clone()).await {
            Ok(id) => id,
            Err(error) => {
                self.forget_rows();
                return Err(duplicate(error, T::KIND, generator));
            }
        };
        value.set_row(&record);
        self.written(&record, &value);
        Ok(value)
    }

    /// Writes a changed record back (its name and scope as they were), deleted at `deleted`.
    pub(crate) async fn rewrite<T: Row>(
        &self,
        stored: &Stored<T>,
        mut value: T,
        deleted: Option<i64>,
    ) -> Result<T, RegistryError> {
        let mut record = stored.record.clone();
        record.updated_micros = now_micros();
        record.deleted_micros = deleted;
        record.document = serde_json::to_value(&value).map_err(|error| {
            StoreError::InvalidRequest(format!("cannot write the record: {error}"))
        })?;
        match self.store.update_record(record.clone()).await {
            Ok(true) => {}
            Ok(false) => {
                self.forget_rows();
                return Err(RegistryError::not_found(T::KIND, record.name, None));
            }
            Err(error) => {
                self.forget_rows();
                return Err(error.into());
            }
        }
        value.set_row(&record);
        self.written(&record, &value);
        Ok(value)
    }

    // ---- generators

    /// Live generators, in the order they registered.
    pub async fn generators(&self) -> Result<Vec<Generator>, RegistryError> {
        Ok(self
            .load::<Generator>()
            .await?
            .into_iter()
            .filter(|stored| stored.record.deleted_micros.is_none())
            .map(|stored| stored.value)
            .collect())
    }

    pub(crate) async fn live_generator(
        &self,
        name: &str,
    ) -> Result<Stored<Generator>, RegistryError> {
        self.rows::<Generator>()
            .await?
            .iter()
            .find(|stored| stored.record.deleted_micros.is_none() && stored.value.name == name)
            .cloned()
            .ok_or_else(|| RegistryError::not_found(Kind::Generator, name, None))
    }

    /// The live generator named `name`.
    pub async fn generator(&self, name: &str) -> Result<Generator, RegistryError> {
        Ok(self.live_generator(name).await?.value)
    }

    /// The live generator whose current key has this public id, if any.
    pub async fn generator_with_key(
        &self,
        key_id: &str,
    ) -> Result<Option<Generator>, RegistryError> {
        Ok(self
            .rows::<Generator>()
            .await?
            .iter()
            .find(|stored| {
                stored.record.deleted_micros.is_none()
                    && stored.value.key_id.as_deref() == Some(key_id)
            })
            .map(|stored| stored.value.clone()))
    }

    /// Whether a live generator has this name (to refuse before a key is made for it).
    pub async fn generator_exists(&self, name: &str) -> Result<bool, RegistryError> {
        match self.live_generator(name).await {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Registers a generator with the key made for it.
    pub async fn register_generator(
        &self,
        spec: GeneratorSpec,
        key: Option<RecordedKey>,
    ) -> Result<Generator, RegistryError> {
        let generator = spec.into_generator(key);
        check_generator(&generator)?;
        let _writing = self.writes.lock().await;
        if self.generator_exists(&generator.name).await? {
            return Err(RegistryError::already_exists(
                Kind::Generator,
                generator.name,
                None,
            ));
        }
        self.insert(String::new(), generator, None).await
    }

    /// Changes a generator's author, ip, binding or expected interval.
    pub async fn update_generator(
        &self,
        name: &str,
        changes: GeneratorChanges,
    ) -> Result<Generator, RegistryError> {
        let _writing = self.writes.lock().await;
        let stored = self.live_generator(name).await?;
        let mut generator = stored.value.clone();
        if let Some(author) = changes.author {
            generator.author = author.trim().to_owned();
        }
        if let Some(ip) = changes.ip {
            generator.ip = Some(ip).filter(|ip| !ip.is_empty());
        }
        if let Some(bind) = changes.bind {
            generator.bind = Some(bind).filter(|bind| !bind.is_empty());
        }
        if let Some(interval) = changes.expected_interval_seconds {
            generator.expected_interval_seconds = Some(interval);
        }
        if let Some(push_url) = changes.push_url {
            generator.push_url = Some(push_url).filter(|url| !url.is_empty());
        }
        check_generator(&generator)?;
        self.rewrite(&stored, generator, None).await
    }

    /// Records the generator's new key (rotation), or none (revocation); returns the generator and
    /// the public id of the key it had.
    pub async fn set_generator_key(
        &self,
        name: &str,
        key: Option<RecordedKey>,
    ) -> Result<(Generator, Option<String>), RegistryError> {
        let _writing = self.writes.lock().await;
        let stored = self.live_generator(name).await?;
        let mut generator = stored.value.clone();
        let (key_id, push_signing_key) = match key {
            Some(key) => (Some(key.key_id), Some(key.push_signing_key)),
            None => (None, None),
        };
        let previous = std::mem::replace(&mut generator.key_id, key_id);
        generator.push_signing_key = push_signing_key;
        Ok((self.rewrite(&stored, generator, None).await?, previous))
    }

    /// Writes down when a generator last called (the collector does it at most every minute);
    /// an earlier time than the one written is kept out.
    pub async fn note_contact(&self, name: &str, micros: i64) -> Result<(), RegistryError> {
        let _writing = self.writes.lock().await;
        let stored = self.live_generator(name).await?;
        if stored
            .value
            .last_contact_micros
            .is_some_and(|written| written >= micros)
        {
            return Ok(());
        }
        let mut generator = stored.value.clone();
        generator.last_contact_micros = Some(micros);
        self.rewrite(&stored, generator, None).await?;
        Ok(())
    }

    /// Deletes a generator (kept, marked deleted) with its groups and classes.
    pub async fn delete_generator(&self, name: &str) -> Result<Generator, RegistryError> {
        let _writing = self.writes.lock().await;
        let stored = self.live_generator(name).await?;
        let now = now_micros();
        self.remove_instances_where(name, |_| true, now).await?;
        for class in self
            .load_where(|class: &Stored<AlertClass>| class.value.generator == name)
            .await?
        {
            if class.record.deleted_micros.is_none() {
                let value = class.value.clone();
                self.rewrite(&class, value, Some(now)).await?;
            }
        }
        for group in self
            .load_where(|group: &Stored<AlertGroup>| group.value.generator == name)
            .await?
        {
            if group.record.deleted_micros.is_none() {
                let value = group.value.clone();
                self.rewrite(&group, value, Some(now)).await?;
            }
        }
        let value = stored.value.clone();
        self.rewrite(&stored, value, Some(now)).await
    }

    /// Checks that the generator is registered with what the caller claims.
    pub async fn verify_generator(
        &self,
        name: &str,
        claims: GeneratorClaims,
    ) -> Result<Generator, RegistryError> {
        let generator = self.generator(name).await?;
        let mut differing = Vec::new();
        if claims
            .author
            .is_some_and(|author| author.trim() != generator.author)
        {
            differing.push("author".to_owned());
        }
        if claims
            .ip
            .is_some_and(|ip| Some(ip.as_str()) != generator.ip.as_deref())
        {
            differing.push("ip".to_owned());
        }
        if differing.is_empty() {
            Ok(generator)
        } else {
            Err(RegistryError::Mismatch {
                kind: Kind::Generator,
                name: name.to_owned(),
                fields: differing,
            })
        }
    }

    // ---- groups

    /// The live groups of a live generator.
    pub async fn groups(&self, generator: &str) -> Result<Vec<AlertGroup>, RegistryError> {
        self.live_generator(generator).await?;
        Ok(self
            .load_where(|stored: &Stored<AlertGroup>| {
                stored.record.deleted_micros.is_none() && stored.value.generator == generator
            })
            .await?
            .into_iter()
            .map(|stored| stored.value)
            .collect())
    }

    /// The group's latest row in the generator: the live one, else the last deleted one.
    async fn find_group(
        &self,
        generator: &str,
        name: &str,
    ) -> Result<Option<Stored<AlertGroup>>, RegistryError> {
        let mut found: Option<Stored<AlertGroup>> = None;
        for stored in self
            .load_where(|stored: &Stored<AlertGroup>| {
                stored.value.generator == generator && stored.value.name == name
            })
            .await?
        {
            let live = stored.record.deleted_micros.is_none();
            if live
                || found
                    .as_ref()
                    .is_none_or(|found| found.record.deleted_micros.is_some())
            {
                found = Some(stored);
            }
            if live {
                break;
            }
        }
        Ok(found)
    }

    async fn live_group(
        &self,
        generator: &str,
        name: &str,
    ) -> Result<Stored<AlertGroup>, RegistryError> {
        self.find_group(generator, name)
            .await?
            .filter(|stored| stored.record.deleted_micros.is_none())
            .ok_or_else(|| RegistryError::not_found(Kind::Group, name, Some(generator)))
    }

    pub async fn group(&self, generator: &str, name: &str) -> Result<AlertGroup, RegistryError> {
        self.live_generator(generator).await?;
        Ok(self.live_group(generator, name).await?.value)
    }

    pub async fn register_group(
        &self,
        generator: &str,
        spec: GroupSpec,
    ) -> Result<AlertGroup, RegistryError> {
        check_name(&spec.name, "name")?;
        check_text(&spec.description, "description", 1000)?;
        let _writing = self.writes.lock().await;
        let owner = self.live_generator(generator).await?;
        if self.live_group(generator, &spec.name).await.is_ok() {
            return Err(RegistryError::already_exists(
                Kind::Group,
                spec.name,
                Some(generator),
            ));
        }
        let group = AlertGroup {
            id: 0,
            name: spec.name,
            description: spec.description,
            generator: generator.to_owned(),
            created_micros: 0,
            updated_micros: 0,
            deleted_micros: None,
        };
        self.insert(owner.record.id.to_string(), group, Some(generator))
            .await
    }

    pub async fn update_group(
        &self,
        generator: &str,
        name: &str,
        changes: GroupChanges,
    ) -> Result<AlertGroup, RegistryError> {
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let stored = self.live_group(generator, name).await?;
        let mut group = stored.value.clone();
        if let Some(description) = changes.description {
            check_text(&description, "description", 1000)?;
            group.description = description;
        }
        self.rewrite(&stored, group, None).await
    }

    /// Deletes a group (kept, marked deleted) with its classes.
    pub async fn delete_group(
        &self,
        generator: &str,
        name: &str,
    ) -> Result<AlertGroup, RegistryError> {
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let stored = self.live_group(generator, name).await?;
        let now = now_micros();
        let classes_of_group: Vec<String> = self
            .live_classes(generator)
            .await?
            .into_iter()
            .filter(|class| class.value.group == name)
            .map(|class| class.value.name)
            .collect();
        self.remove_instances_where(
            generator,
            |instance| classes_of_group.contains(&instance.class),
            now,
        )
        .await?;
        for class in self
            .load_where(|class: &Stored<AlertClass>| class.value.generator == generator)
            .await?
        {
            if class.record.deleted_micros.is_none() && class.value.group == name {
                let value = class.value.clone();
                self.rewrite(&class, value, Some(now)).await?;
            }
        }
        let value = stored.value.clone();
        self.rewrite(&stored, value, Some(now)).await
    }

    pub async fn verify_group(
        &self,
        generator: &str,
        name: &str,
        claims: GroupChanges,
    ) -> Result<AlertGroup, RegistryError> {
        let group = self.group(generator, name).await?;
        if claims
            .description
            .is_some_and(|description| description != group.description)
        {
            return Err(RegistryError::Mismatch {
                kind: Kind::Group,
                name: name.to_owned(),
                fields: vec!["description".to_owned()],
            });
        }
        Ok(group)
    }

    // ---- classes

    async fn live_classes(
        &self,
        generator: &str,
    ) -> Result<Vec<Stored<AlertClass>>, RegistryError> {
        self.load_where(|stored: &Stored<AlertClass>| {
            stored.record.deleted_micros.is_none() && stored.value.generator == generator
        })
        .await
    }

    /// The live classes of a live generator.
    pub async fn classes(&self, generator: &str) -> Result<Vec<AlertClass>, RegistryError> {
        self.live_generator(generator).await?;
        Ok(self
            .live_classes(generator)
            .await?
            .into_iter()
            .map(|stored| stored.value)
            .collect())
    }

    pub async fn class(&self, generator: &str, name: &str) -> Result<AlertClass, RegistryError> {
        self.live_generator(generator).await?;
        let classes = self.live_classes(generator).await?;
        Ok(find_class(&classes, generator, name)?.value.clone())
    }

    /// A class's parameters with those it inherits ([`inherited_parameters`]).
    pub async fn class_parameters(
        &self,
        generator: &str,
        name: &str,
    ) -> Result<Vec<Parameter>, RegistryError> {
        let classes: Vec<AlertClass> = self
            .live_classes(generator)
            .await?
            .into_iter()
            .map(|stored| stored.value)
            .collect();
        inherited_parameters(&classes, name)
            .ok_or_else(|| RegistryError::not_found(Kind::Class, name, Some(generator)))
    }

    /// The live classes of a live generator, each with its parameters and those it inherits,
    /// from one read.
    pub async fn classes_with_parameters(
        &self,
        generator: &str,
    ) -> Result<Vec<(AlertClass, Vec<Parameter>)>, RegistryError> {
        let classes = self.classes(generator).await?;
        Ok(classes
            .iter()
            .map(|class| {
                let parameters = inherited_parameters(&classes, &class.name).unwrap_or_default();
                (class.clone(), parameters)
            })
            .collect())
    }

    /// Checks a class's group and parent against the live records of its generator: the group live
    /// (a deleted one is [`RegistryError::Deleted`]), the parent a live class whose own parents do
    /// not lead back to this class.
    async fn check_references(
        &self,
        generator: &str,
        class: &AlertClass,
        classes: &[Stored<AlertClass>],
    ) -> Result<(), RegistryError> {
        match self.find_group(generator, &class.group).await? {
            Some(group) if group.record.deleted_micros.is_none() => {}
            Some(_) => {
                return Err(RegistryError::Deleted {
                    kind: Kind::Group,
                    name: class.group.clone(),
                });
            }
            None => {
                return Err(RegistryError::invalid(
                    "group",
                    format!(
                        "no group named {:?} in generator {generator:?}",
                        class.group
                    ),
                ));
            }
        }
        let Some(parent) = &class.parent else {
            return Ok(());
        };
        let mut chain = vec![class.name.clone()];
        let mut next = Some(parent.clone());
        while let Some(current) = next {
            chain.push(current.clone());
            if current == class.name {
                return Err(RegistryError::CyclicParent { chain });
            }
            let Some(found) = classes.iter().find(|stored| stored.value.name == current) else {
                return Err(RegistryError::invalid(
                    "parent",
                    format!("no class named {current:?} in generator {generator:?}"),
                ));
            };
            if chain.len() > 64 {
                return Err(RegistryError::invalid(
                    "parent",
                    "classes may be nested at most 64 deep".to_owned(),
                ));
            }
            next = found.value.parent.clone();
        }
        Ok(())
    }

    pub async fn register_class(
        &self,
        generator: &str,
        spec: ClassSpec,
    ) -> Result<AlertClass, RegistryError> {
        let mut class = AlertClass {
            id: 0,
            name: spec.name,
            description: spec.description,
            help: spec.help,
            syntax: spec.syntax,
            filter_syntax: spec.filter_syntax,
            parent: spec.parent.filter(|parent| !parent.is_empty()),
            group: spec.group,
            generator: generator.to_owned(),
            is_operator: spec.is_operator,
            is_filter: spec.is_filter,
            created_micros: 0,
            updated_micros: 0,
            deleted_micros: None,
        };
        check_class(&mut class)?;
        let _writing = self.writes.lock().await;
        let owner = self.live_generator(generator).await?;
        let classes = self.live_classes(generator).await?;
        if classes.iter().any(|stored| stored.value.name == class.name) {
            return Err(RegistryError::already_exists(
                Kind::Class,
                class.name,
                Some(generator),
            ));
        }
        self.check_references(generator, &class, &classes).await?;
        self.insert(owner.record.id.to_string(), class, Some(generator))
            .await
    }

    pub async fn update_class(
        &self,
        generator: &str,
        name: &str,
        changes: ClassChanges,
    ) -> Result<AlertClass, RegistryError> {
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let classes = self.live_classes(generator).await?;
        let stored = find_class(&classes, generator, name)?;
        let mut class = stored.value.clone();
        if let Some(description) = changes.description {
            class.description = description;
        }
        if let Some(help) = changes.help {
            class.help = help;
        }
        if let Some(syntax) = changes.syntax {
            class.syntax = syntax;
        }
        if let Some(filter_syntax) = changes.filter_syntax {
            class.filter_syntax = filter_syntax;
        }
        if let Some(parent) = changes.parent {
            class.parent = Some(parent).filter(|parent| !parent.is_empty());
        }
        if let Some(group) = changes.group {
            class.group = group;
        }
        if let Some(is_operator) = changes.is_operator {
            class.is_operator = is_operator;
        }
        if let Some(is_filter) = changes.is_filter {
            class.is_filter = is_filter;
        }
        check_class(&mut class)?;
        self.check_references(generator, &class, &classes).await?;
        self.rewrite(stored, class, None).await
    }

    /// Deletes a class (kept, marked deleted); refused while live classes inherit from it.
    pub async fn delete_class(
        &self,
        generator: &str,
        name: &str,
    ) -> Result<AlertClass, RegistryError> {
        let _writing = self.writes.lock().await;
        self.live_generator(generator).await?;
        let classes = self.live_classes(generator).await?;
        let stored = find_class(&classes, generator, name)?;
        let children: Vec<String> = classes
            .iter()
            .filter(|other| other.value.parent.as_deref() == Some(name))
            .map(|other| other.value.name.clone())
            .collect();
        if !children.is_empty() {
            return Err(RegistryError::HasChildren {
                name: name.to_owned(),
                children,
            });
        }
        let instances: Vec<String> = self
            .load_where(|stored: &Stored<crate::instance::Instance>| {
                stored.record.deleted_micros.is_none()
                    && stored.value.generator == generator
                    && stored.value.class == name
            })
            .await?
            .into_iter()
            .map(|stored| stored.value.id)
            .collect();
        if !instances.is_empty() {
            return Err(RegistryError::HasInstances {
                name: name.to_owned(),
                instances,
            });
        }
        let value = stored.value.clone();
        self.rewrite(stored, value, Some(now_micros())).await
    }

    /// Marks deleted the live instances of a generator that `which` picks (what they belong to
    /// is being deleted), each as a change of its own.
    async fn remove_instances_where(
        &self,
        generator: &str,
        which: impl Fn(&crate::instance::Instance) -> bool,
        now: i64,
    ) -> Result<(), RegistryError> {
        let rows: Vec<Stored<crate::instance::Instance>> = self
            .load_where(|stored: &Stored<crate::instance::Instance>| {
                stored.value.generator == generator
            })
            .await?;
        let mut version = rows
            .iter()
            .map(|stored| stored.value.version)
            .max()
            .unwrap_or(0);
        for stored in &rows {
            if stored.record.deleted_micros.is_none() && which(&stored.value) {
                version += 1;
                let mut instance = stored.value.clone();
                instance.version = version;
                instance.deleted = true;
                instance.state = crate::instance::InstanceState::Pending;
                self.rewrite(stored, instance, Some(now)).await?;
            }
        }
        Ok(())
    }

    /// Checks that the class is registered (with the claimed group, when given).
    pub async fn verify_class(
        &self,
        generator: &str,
        name: &str,
        group: Option<&str>,
    ) -> Result<AlertClass, RegistryError> {
        let class = self.class(generator, name).await?;
        if group.is_some_and(|group| group != class.group) {
            return Err(RegistryError::Mismatch {
                kind: Kind::Class,
                name: name.to_owned(),
                fields: vec!["group".to_owned()],
            });
        }
        Ok(class)
    }
}

/// The class `name` among a generator's live classes.
fn find_class<'classes>(
    classes: &'classes [Stored<AlertClass>],
    generator: &str,
    name: &str,
) -> Result<&'classes Stored<AlertClass>, RegistryError> {
    classes
        .iter()
        .find(|stored| stored.value.name == name)
        .ok_or_else(|| RegistryError::not_found(Kind::Class, name, Some(generator)))
}

/// The parameters of the class `name` among `classes` (one generator's) with those it inherits:
/// its ancestors' first (the root's first), a parameter of a nearer class replacing one of the
/// same name; `None` when there is no such class. A parent missing from `classes` ends the
/// lineage, and so does a cycle (the registry refuses them; this only never loops).
pub fn inherited_parameters(classes: &[AlertClass], name: &str) -> Option<Vec<Parameter>> {
    let mut lineage: Vec<&AlertClass> = Vec::new();
    let mut next = Some(name);
    while let Some(current) = next {
        let Some(class) = classes.iter().find(|class| class.name == current) else {
            break;
        };
        if lineage.iter().any(|seen| seen.name == class.name) {
            break;
        }
        lineage.push(class);
        next = class.parent.as_deref();
    }
    if lineage.is_empty() {
        return None;
    }
    let mut parameters: Vec<Parameter> = Vec::new();
    for class in lineage.iter().rev() {
        for parameter in &class.syntax {
            match parameters
                .iter_mut()
                .find(|known| known.name == parameter.name)
            {
                Some(known) => *known = parameter.clone(),
                None => parameters.push(parameter.clone()),
            }
        }
    }
    Some(parameters)
}
