//! Named lists: IP addresses and CIDR networks, user names, hashes, any text.
//!
//! A list rule asks whether a field's value is in a list; any rule may add a value to a list when it
//! fires (seed 002: the port scanner goes on the blocklist, and a later login from it fires). An
//! entry that reads as an address or network matches addresses; any other entry matches text,
//! ignoring ASCII case (user names, host names, hashes in hex). Lists come from files (`NAME.txt`
//! or `NAME.list`, one entry per line, `#` starts a comment) and from rules and the API.
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use crate::parameters::Network;

/// Most entries one list holds; adding past it is refused (and counted by the caller).
pub const MAX_LIST_ENTRIES: usize = 1_000_000;

/// Largest list file read.
pub const MAX_LIST_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// An entry as lists keep it: an address in its canonical form, anything else in lower case.
pub fn normalized_entry(entry: &str) -> String {
    let entry = entry.trim();
    match entry.parse::<IpAddr>() {
        Ok(address) => address.to_canonical().to_string(),
        Err(_) => entry.to_ascii_lowercase(),
    }
}

/// One named list.
#[derive(Debug, Clone, Default)]
pub struct NamedList {
    addresses: HashSet<IpAddr>,
    networks: Vec<Network>,
    texts: HashSet<String>,
}

impl NamedList {
    /// Adds one entry; `false` when it was there already or the list is full.
    pub fn add(&mut self, entry: &str) -> bool {
        let entry = entry.trim();
        if entry.is_empty() || self.len() >= MAX_LIST_ENTRIES {
            return false;
        }
        if let Ok(address) = entry.parse::<IpAddr>() {
            return self.addresses.insert(address.to_canonical());
        }
        if entry.contains('/')
            && let Ok(network) = Network::parse(entry)
        {
            if self.networks.contains(&network) {
                return false;
            }
            self.networks.push(network);
            return true;
        }
        self.texts.insert(entry.to_ascii_lowercase())
    }

    /// Removes one entry; `false` when it was not there.
    pub fn remove(&mut self, entry: &str) -> bool {
        let entry = entry.trim();
        if let Ok(address) = entry.parse::<IpAddr>() {
            return self.addresses.remove(&address.to_canonical());
        }
        if let Ok(network) = Network::parse(entry) {
            let before = self.networks.len();
            self.networks.retain(|known| *known != network);
            return self.networks.len() != before;
        }
        self.texts.remove(&entry.to_ascii_lowercase())
    }

    /// Whether `value` is in the list: an address inside one of its networks or equal to one of its
    /// addresses, or text equal to one of its texts ignoring ASCII case.
    pub fn contains(&self, value: &str) -> bool {
        let value = value.trim();
        if let Ok(address) = value.parse::<IpAddr>() {
            let address = address.to_canonical();
            if self.addresses.contains(&address)
                || self
                    .networks
                    .iter()
                    .any(|network| network.contains(address))
            {
                return true;
            }
        }
        if self.texts.is_empty() {
            return false;
        }
        if value.bytes().any(|byte| byte.is_ascii_uppercase()) {
            self.texts.contains(&value.to_ascii_lowercase())
        } else {
            self.texts.contains(value)
        }
    }

    pub fn len(&self) -> usize {
        self.addresses.len() + self.networks.len() + self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry as text, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut entries: Vec<String> = self
            .addresses
            .iter()
            .map(IpAddr::to_string)
            .chain(
                self.networks
                    .iter()
                    .map(|network| format!("{}/{}", network.address, network.prefix)),
            )
            .chain(self.texts.iter().cloned())
            .collect();
        entries.sort();
        entries
    }
}

/// All named lists.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    lists: BTreeMap<String, NamedList>,
}

impl Lists {
    pub fn get(&self, name: &str) -> Option<&NamedList> {
        self.lists.get(name)
    }

    /// Whether list `name` holds `value` (a list that does not exist holds nothing).
    pub fn contains(&self, name: &str, value: &str) -> bool {
        self.lists
            .get(name)
            .is_some_and(|list| list.contains(value))
    }

    /// Adds `entry` to list `name`, creating the list; `false` if it was there or the list is full.
    pub fn add(&mut self, name: &str, entry: &str) -> bool {
        self.lists.entry(name.to_owned()).or_default().add(entry)
    }

    pub fn remove(&mut self, name: &str, entry: &str) -> bool {
        self.lists
            .get_mut(name)
            .is_some_and(|list| list.remove(entry))
    }

    /// Replaces list `name` with `list`.
    pub fn set(&mut self, name: &str, list: NamedList) {
        self.lists.insert(name.to_owned(), list);
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lists.keys().map(String::as_str)
    }

    /// Reads every `*.txt` and `*.list` file of `directory` as the list named by the file's stem.
    /// Returns the problems met (a file too large, unreadable); the other files are still read.
    pub fn load_directory(&mut self, directory: &Path) -> std::io::Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(directory)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                matches!(
                    path.extension().and_then(|extension| extension.to_str()),
                    Some("txt" | "list")
                )
            })
            .collect();
        paths.sort();
        for path in paths {
            let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
                continue;
            };
            match read_list_file(&path) {
                Ok(list) => self.set(name, list),
                Err(reason) => problems.push(format!("{}: {reason}", path.display())),
            }
        }
        Ok(problems)
    }
}

/// Reads one list file: one entry per line, blank lines and `#` comments skipped.
pub fn read_list_file(path: &Path) -> Result<NamedList, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("cannot read: {error}"))?
        .len();
    if size > MAX_LIST_FILE_BYTES {
        return Err(format!(
            "{size} bytes, more than the {MAX_LIST_FILE_BYTES} a list file may have"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read: {error}"))?;
    let mut list = NamedList::default();
    for line in text.lines() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if !entry.is_empty() {
            list.add(entry);
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_networks_and_texts_are_found_as_their_kind() {
        let mut lists = Lists::default();
        assert!(lists.add("blocklist", "203.0.113.7"));
        assert!(!lists.add("blocklist", "203.0.113.7"));
        assert!(lists.add("blocklist", "198.51.100.0/24"));
        assert!(lists.add("users", "Root"));
        assert!(lists.contains("blocklist", "203.0.113.7"));
        assert!(lists.contains("blocklist", "::ffff:203.0.113.7"));
        assert!(lists.contains("blocklist", "198.51.100.200"));
        assert!(!lists.contains("blocklist", "198.51.101.1"));
        assert!(lists.contains("users", "root"));
        assert!(lists.contains("users", "ROOT"));
        assert!(!lists.contains("users", "rooted"));
        assert!(!lists.contains("missing", "x"));
        assert!(lists.remove("users", "root"));
        assert!(!lists.contains("users", "root"));
    }

    #[test]
    fn list_files_skip_comments_and_blank_lines() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(
            directory.path().join("admins.txt"),
            "# who may log in as root\nalice\n\n  bob  # on call\n10.0.0.0/8\n",
        )
        .unwrap();
        std::fs::write(directory.path().join("ignored.yml"), "x").unwrap();
        let mut lists = Lists::default();
        assert!(lists.load_directory(directory.path()).unwrap().is_empty());
        assert_eq!(lists.names().collect::<Vec<_>>(), vec!["admins"]);
        let admins = lists.get("admins").unwrap();
        assert_eq!(admins.len(), 3);
        assert!(admins.contains("bob"));
        assert!(admins.contains("10.20.30.40"));
    }
}
