//! Which names are taken, and by what: the index writers check new names against.

use std::collections::HashMap;

use super::{NameKey, name_key};
use crate::config::view::User;
use crate::config::{Config, ItemId, list_tokens};

/// What holds each name of each domain: accounts, their extra addresses, aliases, groups (and
/// their addresses), mailing lists. Built once from the configs, so that checking a name costs a
/// lookup, not a scan of users.cfg, however many names a run checks.
#[derive(Debug, Clone, Default)]
pub struct Names {
    users: HashMap<NameKey, ItemId>,
    /// The users' extra addresses (`EmailAddresses`), with their owners.
    addresses: HashMap<NameKey, Vec<ItemId>>,
    /// Aliases, groups, mailing lists, and names taken during a run: what holds them.
    others: HashMap<NameKey, String>,
}

impl Names {
    /// Indexes every name taken in `config` (mailserver.cfg and users.cfg).
    pub fn new(config: &Config) -> Names {
        let mut names = Names::default();
        let mut other = |n: &str, d: &str, what: String| {
            names.others.entry(name_key(n, d)).or_insert(what);
        };
        for a in config.aliases() {
            other(a.name(), a.domain(), "an alias".into());
        }
        for g in config.groups() {
            other(g.name(), g.domain(), "a group".into());
            for t in list_tokens(g.email_addresses()) {
                other(t, g.domain(), format!("an address of group {}", g.name()));
            }
        }
        for l in config.mailing_lists() {
            other(l.name(), l.domain(), "a mailing list".into());
        }
        for u in config.users() {
            names
                .users
                .entry(name_key(u.name(), u.domain()))
                .or_insert(u.id());
            names.add_addresses(u.id(), u.email_addresses(), u.domain());
        }
        names
    }

    /// By what `name@domain` is taken, if it is. The names of account `except` (one being
    /// renamed) are not in its own way: `jdoe` may become its `john.doe`.
    pub fn taken(
        &self,
        config: &Config,
        name: &str,
        domain: &str,
        except: Option<ItemId>,
    ) -> Option<String> {
        let k = name_key(name, domain);
        if self.users.get(&k).is_some_and(|id| Some(*id) != except) {
            return Some("a user".into());
        }
        if let Some(owner) = self
            .addresses
            .get(&k)
            .and_then(|o| o.iter().find(|id| Some(**id) != except))
        {
            let u = User(config.users.item(*owner));
            return Some(format!("an address of user {}", u.address()));
        }
        self.others.get(&k).cloned()
    }

    /// Marks a name taken by something the configs do not hold yet (a row being imported).
    pub fn take(&mut self, name: &str, domain: &str, what: String) {
        self.others.insert(name_key(name, domain), what);
    }

    /// Account `id` is renamed from `old` to `new`, each `(name, domain, EmailAddresses)`.
    pub fn rename_user(&mut self, id: ItemId, old: (&str, &str, &str), new: (&str, &str, &str)) {
        self.users.remove(&name_key(old.0, old.1));
        self.users.insert(name_key(new.0, new.1), id);
        for t in list_tokens(old.2) {
            if let Some(owners) = self.addresses.get_mut(&name_key(t, old.1)) {
                owners.retain(|o| *o != id);
            }
        }
        self.add_addresses(id, new.2, new.1);
    }

    /// The account of `name@domain`, if there is one.
    pub fn user(&self, name: &str, domain: &str) -> Option<ItemId> {
        self.users.get(&name_key(name, domain)).copied()
    }

    fn add_addresses(&mut self, id: ItemId, list: &str, domain: &str) {
        for t in list_tokens(list) {
            self.addresses
                .entry(name_key(t, domain))
                .or_default()
                .push(id);
        }
    }
}
