//! Typed views of the records of both config files, read through [`super::schema`].
//!
//! A view borrows an item of a [`Document`]; it reads, it never copies the file's data. Missing
//! variables read as empty, as the server treats them.

use std::path::Path;

use super::schema::{
    ADMINISTRATION, ALIAS, DIRECTORIES, DOMAIN, GROUP, MAILING_LIST, MAILSERVER_CFG, TEMPLATE,
    USER, USER_ADDITIONAL_DATA, USERS_CFG,
};
use super::{ConfigError, Document, ItemId, ItemRef, list_tokens};

/// Both config files of an install.
#[derive(Debug, Clone)]
pub struct Config {
    /// `mailserver.cfg`: domains, templates, mailing lists, the server's settings.
    pub mailserver: Document,
    /// `users.cfg`: accounts, aliases, groups, password history.
    pub users: Document,
}

/// Declares a view over a list's items with string getters named after schema fields.
macro_rules! view {
    ($(#[$doc:meta])* $view:ident, $names:ident { $($getter:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $view<'d>(pub ItemRef<'d>);

        impl<'d> $view<'d> {
            /// The record's place in its document, to edit it by.
            pub fn id(&self) -> ItemId {
                self.0.id()
            }
            /// The line the record starts on, for messages.
            pub fn line(&self) -> usize {
                self.0.line()
            }
            $(
                #[doc = concat!(
                    "The variable [`", stringify!($names), "`]`.", stringify!($getter),
                    "` names, empty when the record has none."
                )]
                pub fn $getter(&self) -> &'d str {
                    self.0.get($names.$getter).unwrap_or("")
                }
            )*
        }
    };
}

view!(
    /// An account (`User` list of users.cfg).
    User, USER {
        name, domain, full_name, description, password, forward_address, email_addresses,
        groups, quota_storage, quota_messages,
    }
);
view!(
    /// An alias (`Alias` list of users.cfg).
    Alias, ALIAS { name, domain, deliver_to, description }
);
view!(
    /// A group (`Group` list of users.cfg).
    Group, GROUP { name, domain, description, members, email_addresses }
);
view!(
    /// Password history of one user (`UserAdditionalData` list of users.cfg).
    UserAdditionalData, USER_ADDITIONAL_DATA { name, domain, last_password_change }
);
view!(
    /// A mail domain (`Domain` list of mailserver.cfg).
    Domain, DOMAIN { name, description }
);
view!(
    /// A user template (`UserTemplate` list of mailserver.cfg).
    Template, TEMPLATE { name, domain, description }
);
view!(
    /// A mailing list (`MailingList` list of mailserver.cfg).
    MailingList, MAILING_LIST { name, domain, members, moderators }
);

fn flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim() == "1")
}

impl<'d> User<'d> {
    /// `name@domain`.
    pub fn address(&self) -> String {
        format!("{}@{}", self.name(), self.domain())
    }
    /// Whether the account is enabled: true unless its `Account_enabled` is 0.
    pub fn enabled(&self) -> bool {
        // An account without the variable has never been disabled.
        self.0.get(USER.enabled).is_none_or(|v| v.trim() != "0")
    }
    /// 0 none, 1 read-only admin, 3 full admin.
    pub fn rights(&self) -> u8 {
        self.0
            .get(USER.rights)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
    /// Mapped from a directory service: its record lives in the directory.
    pub fn mapped(&self) -> bool {
        flag(self.0.get(USER.data_source))
    }
    /// The names of the groups the record lists the account in.
    pub fn group_names(&self) -> impl Iterator<Item = &'d str> {
        list_tokens(self.groups())
    }
    /// Whether this is the account `name@domain`, compared case-insensitively.
    pub fn is(&self, name: &str, domain: &str) -> bool {
        self.name().eq_ignore_ascii_case(name) && self.domain().eq_ignore_ascii_case(domain)
    }
}

impl<'d> Group<'d> {
    /// The user names (of the group's domain) of its members.
    pub fn member_names(&self) -> impl Iterator<Item = &'d str> {
        list_tokens(self.members())
    }
}

impl Domain<'_> {
    /// Users of this domain are mapped from a directory service.
    pub fn mapped(&self) -> bool {
        flag(self.0.get(DOMAIN.dir_service))
    }
    /// The domain requires secure passwords.
    pub fn secure_passwords(&self) -> bool {
        flag(self.0.get(DOMAIN.password_policy))
    }
}

impl Template<'_> {
    /// A general template, offered in every domain.
    pub fn general(&self) -> bool {
        self.domain().is_empty()
    }
}

impl Config {
    /// Loads both files from the install root, in parallel.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        let (mailserver, users) = rayon::join(
            || Document::load(&root.join(MAILSERVER_CFG)),
            || Document::load(&root.join(USERS_CFG)),
        );
        let config = Config {
            mailserver: mailserver?,
            users: users?,
        };
        config.check_records()?;
        Ok(config)
    }

    /// Refuses what no server writes and every tool would misread: an account with no name, and
    /// two records of one account (names compare case-insensitively), which would have a tool
    /// change the first and leave the second. Names the file and both lines.
    fn check_records(&self) -> Result<(), ConfigError> {
        let mut seen: std::collections::HashMap<(String, String), usize> =
            std::collections::HashMap::new();
        for u in self.users() {
            let bad = |message: String| ConfigError::Structure {
                path: self.users.path().to_owned(),
                line: u.line(),
                element: "listitem".into(),
                message,
            };
            if u.name().trim().is_empty() {
                return Err(bad(format!(
                    "a {} record with no {}; fix or remove it, nothing was changed",
                    USER.list, USER.name
                )));
            }
            let key = (
                u.name().to_ascii_lowercase(),
                u.domain().to_ascii_lowercase(),
            );
            if let Some(first) = seen.insert(key, u.line()) {
                return Err(bad(format!(
                    "{}@{} has a second record (the first at line {first}); keep one, nothing was changed",
                    u.name(),
                    u.domain()
                )));
            }
        }
        Ok(())
    }

    /// Every account of users.cfg, in file order.
    pub fn users(&self) -> impl Iterator<Item = User<'_>> {
        self.users.items(USER.list).map(User)
    }
    /// Every alias of users.cfg, in file order.
    pub fn aliases(&self) -> impl Iterator<Item = Alias<'_>> {
        self.users.items(ALIAS.list).map(Alias)
    }
    /// Every group of users.cfg, in file order.
    pub fn groups(&self) -> impl Iterator<Item = Group<'_>> {
        self.users.items(GROUP.list).map(Group)
    }
    /// Every password-history record of users.cfg, in file order.
    pub fn additional_data(&self) -> impl Iterator<Item = UserAdditionalData<'_>> {
        self.users
            .items(USER_ADDITIONAL_DATA.list)
            .map(UserAdditionalData)
    }
    /// Every domain of mailserver.cfg, in file order.
    pub fn domains(&self) -> impl Iterator<Item = Domain<'_>> {
        self.mailserver.items(DOMAIN.list).map(Domain)
    }
    /// Every user template of mailserver.cfg, in file order.
    pub fn templates(&self) -> impl Iterator<Item = Template<'_>> {
        self.mailserver.items(TEMPLATE.list).map(Template)
    }
    /// Every mailing list of mailserver.cfg, in file order.
    pub fn mailing_lists(&self) -> impl Iterator<Item = MailingList<'_>> {
        self.mailserver.items(MAILING_LIST.list).map(MailingList)
    }

    /// The account `name@domain`, compared case-insensitively as the server does.
    pub fn user(&self, name: &str, domain: &str) -> Option<User<'_>> {
        self.users().find(|u| u.is(name, domain))
    }
    /// The domain `name`, compared case-insensitively.
    pub fn domain(&self, name: &str) -> Option<Domain<'_>> {
        self.domains().find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// Whether an account is mapped from a directory service (its record is the directory's):
    /// its `DataSource` says so; without one, its domain's `DirService` does. A local account
    /// (`DataSource` 0) in a mapped domain is local: the vendor advises keeping one such
    /// administrator for when the directory is down.
    pub fn is_mapped(&self, user: &User<'_>) -> bool {
        match user.0.get(USER.data_source) {
            Some(v) if !v.trim().is_empty() => v.trim() == "1",
            _ => self.domain(user.domain()).is_some_and(|d| d.mapped()),
        }
    }

    /// The `StoreDir` of mailserver.cfg, if set and not empty.
    pub fn store_dir(&self) -> Option<&str> {
        store_dir(&self.mailserver)
    }

    /// The built-in admin's username, when the built-in admin is enabled.
    pub fn builtin_admin(&self) -> Option<&str> {
        let table = self.mailserver.table(ADMINISTRATION.table)?;
        flag(table.get(ADMINISTRATION.builtin_admin_enabled))
            .then(|| table.get(ADMINISTRATION.builtin_admin_username))
            .flatten()
            .filter(|n| !n.is_empty())
    }
}

/// The groups of a domain in a loaded users.cfg: id and name.
pub fn groups_of(users: &Document, domain: &str) -> Vec<(ItemId, String)> {
    users
        .items(GROUP.list)
        .map(Group)
        .filter(|g| g.domain().eq_ignore_ascii_case(domain))
        .map(|g| (g.id(), g.name().to_owned()))
        .collect()
}

/// The `UserAdditionalData` items of an account in a loaded users.cfg.
pub fn additional_data_of(users: &Document, name: &str, domain: &str) -> Vec<ItemId> {
    users
        .items(USER_ADDITIONAL_DATA.list)
        .map(UserAdditionalData)
        .filter(|d| d.name().eq_ignore_ascii_case(name) && d.domain().eq_ignore_ascii_case(domain))
        .map(|d| d.id())
        .collect()
}

/// The `StoreDir` of a loaded mailserver.cfg, if set and not empty.
pub fn store_dir(mailserver: &Document) -> Option<&str> {
    location(mailserver, (DIRECTORIES.table, DIRECTORIES.store_dir))
}

/// A location variable of mailserver.cfg (`(table, variable)`), if set and not empty.
pub fn location<'d>(mailserver: &'d Document, (table, variable): (&str, &str)) -> Option<&'d str> {
    mailserver
        .table(table)
        .and_then(|t| t.get(variable))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
