//! The one table of list and variable names the toolkit reads and writes.
//!
//! KERIO-FORMAT.md tags many of these names [A]: assumed, because no public sample confirms
//! them. Every such name lives here and nowhere else, so that an admin whose server spells one
//! differently corrects it with a one-line change. Each constant says how sure we are.

/// The two config files, relative to the install root [C].
pub const MAILSERVER_CFG: &str = "mailserver.cfg";
/// The accounts' config file, relative to the install root [C].
pub const USERS_CFG: &str = "users.cfg";

/// `<list name="User">` in users.cfg.
#[derive(Debug)]
pub struct UserNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// [C] the login name.
    pub name: &'static str,
    /// [T] the domain the account is in.
    pub domain: &'static str,
    /// [A]
    pub full_name: &'static str,
    /// [A]
    pub description: &'static str,
    /// [C] `D3S:<hex>`, `NUL:<text>`, …
    pub password: &'static str,
    /// [C via the config log] 1 enabled, 0 disabled.
    pub enabled: &'static str,
    /// [C] 0 = internal database.
    pub auth_type: &'static str,
    /// [C] 0 none, 1 read-only admin, 3 full admin.
    pub rights: &'static str,
    /// [C] whether mail to the account is forwarded, and how.
    pub forward_mode: &'static str,
    /// [A] comma list of addresses.
    pub forward_address: &'static str,
    /// [A] extra local parts, comma list.
    pub email_addresses: &'static str,
    /// [A] group names in the same domain, comma list.
    pub groups: &'static str,
    /// [C] bytes, 0 = no limit.
    pub quota_storage: &'static str,
    /// [C] messages, 0 = no limit.
    pub quota_messages: &'static str,
    /// [A] 0 local, 1 mapped from a directory service.
    pub data_source: &'static str,
}

/// The account records' names.
pub const USER: UserNames = UserNames {
    list: "User",
    name: "Name",
    domain: "Domain",
    full_name: "FullName",
    description: "Description",
    password: "Password",
    enabled: "Account_enabled",
    auth_type: "Auth_type",
    rights: "Rights",
    forward_mode: "ForwardMode",
    forward_address: "ForwardAddress",
    email_addresses: "EmailAddresses",
    groups: "Groups",
    quota_storage: "Qstorage",
    quota_messages: "Qmessage",
    data_source: "DataSource",
};

/// `<list name="Alias">` in users.cfg [A].
#[derive(Debug)]
pub struct AliasNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// Local part, may hold wildcards `*` and `?`.
    pub name: &'static str,
    /// The domain the alias is in.
    pub domain: &'static str,
    /// An address, a group, or `#public@domain/Folder`.
    pub deliver_to: &'static str,
    /// Free text for the admin.
    pub description: &'static str,
}

/// The alias records' names.
pub const ALIAS: AliasNames = AliasNames {
    list: "Alias",
    name: "Name",
    domain: "Domain",
    deliver_to: "DeliverTo",
    description: "Description",
};

/// `<list name="Group">` in users.cfg [A].
#[derive(Debug)]
pub struct GroupNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// The group's name, unique in its domain.
    pub name: &'static str,
    /// The domain the group is in.
    pub domain: &'static str,
    /// Free text for the admin.
    pub description: &'static str,
    /// Extra local parts the group receives mail at, comma list.
    pub email_addresses: &'static str,
    /// Comma list of user names of the same domain.
    pub members: &'static str,
    /// [A] the group's admin rights.
    pub rights: &'static str,
}

/// The group records' names.
pub const GROUP: GroupNames = GroupNames {
    list: "Group",
    name: "Name",
    domain: "Domain",
    description: "Description",
    email_addresses: "EmailAddresses",
    members: "Members",
    rights: "Rights",
};

/// `<list name="UserAdditionalData">` in users.cfg: per-user password history [C], keyed by
/// `Name` and `Domain` [A].
#[derive(Debug)]
pub struct UserAdditionalDataNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// The account's login name.
    pub name: &'static str,
    /// The account's domain.
    pub domain: &'static str,
    /// [C] epoch seconds.
    pub last_password_change: &'static str,
    /// [C] the account's earlier passwords, in the server's password forms.
    pub password_history: &'static str,
}

/// The password-history records' names.
pub const USER_ADDITIONAL_DATA: UserAdditionalDataNames = UserAdditionalDataNames {
    list: "UserAdditionalData",
    name: "Name",
    domain: "Domain",
    last_password_change: "LastPasswordChange",
    password_history: "PasswordHistory",
};

/// `<list name="Domain">` in mailserver.cfg [A].
#[derive(Debug)]
pub struct DomainNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// The domain's name (`example.com`).
    pub name: &'static str,
    /// Free text for the admin.
    pub description: &'static str,
    /// 1 = users mapped from a directory service.
    pub dir_service: &'static str,
    /// 1 = secure passwords required.
    pub password_policy: &'static str,
}

/// The domain records' names.
pub const DOMAIN: DomainNames = DomainNames {
    list: "Domain",
    name: "Name",
    description: "Description",
    dir_service: "DirService",
    password_policy: "PasswordPolicy",
};

/// `<list name="UserTemplate">` in mailserver.cfg [A]: `Name`, `Domain` (empty = a general
/// template), `Description`, and any User variable as a default.
#[derive(Debug)]
pub struct TemplateNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// The template's name, as `--template` gives it.
    pub name: &'static str,
    /// The domain the template is for; empty for a general one.
    pub domain: &'static str,
    /// Free text for the admin.
    pub description: &'static str,
}

/// The user templates' names.
pub const TEMPLATE: TemplateNames = TemplateNames {
    list: "UserTemplate",
    name: "Name",
    domain: "Domain",
    description: "Description",
};

/// `<list name="MailingList">` in mailserver.cfg [A].
#[derive(Debug)]
pub struct MailingListNames {
    /// The `name` of the `<list>` holding the records.
    pub list: &'static str,
    /// The mailing list's local part.
    pub name: &'static str,
    /// The domain the mailing list is in.
    pub domain: &'static str,
    /// Comma list of the members' addresses.
    pub members: &'static str,
    /// Comma list of the moderators' addresses.
    pub moderators: &'static str,
}

/// The mailing lists' names.
pub const MAILING_LIST: MailingListNames = MailingListNames {
    list: "MailingList",
    name: "Name",
    domain: "Domain",
    members: "Members",
    moderators: "Moderators",
};

/// Whether an install-relative path (bytes) is `users.cfg` or `mailserver.cfg`: the two files
/// an admin may have made links into a volume, which the toolkit follows to their content.
pub fn is_config_file(path: &[u8]) -> bool {
    path == USERS_CFG.as_bytes() || path == MAILSERVER_CFG.as_bytes()
}

/// `<table name="Directories">` in mailserver.cfg: where the store and its siblings live
/// [C: the vendor's staff script reads `.//table[@name='Directories']/variable[@name='StoreDir']`,
/// `ArchiveDir` and `BackupDir`]. Absolute, or relative to the install root; often outside it.
#[derive(Debug)]
pub struct DirectoriesNames {
    /// The `name` of the `<table>`.
    pub table: &'static str,
    /// The store: the mailboxes, their folders and messages.
    pub store_dir: &'static str,
    /// The server's mail archive.
    pub archive_dir: &'static str,
    /// Where the server's own backups go.
    pub backup_dir: &'static str,
}

/// The names of the locations table.
pub const DIRECTORIES: DirectoriesNames = DirectoriesNames {
    table: "Directories",
    store_dir: "StoreDir",
    archive_dir: "ArchiveDir",
    backup_dir: "BackupDir",
};

/// Other locations the same script reads [T]: `(table, variable)` of the instant-messaging
/// files, the full-text search index and the log directory.
pub const IM_STORE_PATH: (&str, &str) = ("InstantMessaging", "StorePath");
/// The full-text search index's directory, as `(table, variable)` [T].
pub const FULL_TEXT_SEARCH_PATH: (&str, &str) = ("FullTextSearch", "Path");
/// The directory relative log paths start from, as `(table, variable)` [T].
pub const LOG_ROOT: (&str, &str) = ("LogGlobal", "RelativePathsRoot");

/// `<table name="Administration">` in mailserver.cfg: the built-in admin [C names, A table].
#[derive(Debug)]
pub struct AdministrationNames {
    /// The `name` of the `<table>`.
    pub table: &'static str,
    /// Whether the built-in admin account is enabled.
    pub builtin_admin_enabled: &'static str,
    /// The built-in admin's login name.
    pub builtin_admin_username: &'static str,
}

/// The names of the built-in admin's table.
pub const ADMINISTRATION: AdministrationNames = AdministrationNames {
    table: "Administration",
    builtin_admin_enabled: "BuiltInAdminEnabled",
    builtin_admin_username: "BuiltInAdminUsername",
};

/// `folder.map` in each mailbox: shared-folder subscriptions. KERIO-FORMAT.md §3: [T] that it is
/// simple XML, [A] this layout: `<folder owner="…" path="…" name="…"/>` elements.
#[derive(Debug)]
pub struct FolderMapNames {
    /// The element of one subscription.
    pub element: &'static str,
    /// The attribute holding the sharing user's address.
    pub owner: &'static str,
    /// The attribute holding the folder's path in the owner's mailbox.
    pub path: &'static str,
    /// The attribute holding the folder's name.
    pub name: &'static str,
}

/// The names in `folder.map`.
pub const FOLDER_MAP: FolderMapNames = FolderMapNames {
    element: "folder",
    owner: "owner",
    path: "path",
    name: "name",
};

/// Variables whose values are one line: every variable this table names. They are one-line
/// fields in the admin console (logins, addresses, comma lists, numbers, paths), and some are
/// copied into one-line records: `FullName` into the config.log audit line (`FullName='…'`),
/// names into the credentials CSV and the plan. A line break in one would forge a log line or
/// split a record, so the toolkit never writes one there. Variables this table does not name
/// keep what they hold (a disclaimer may well be many lines), line breaks included.
pub const SINGLE_LINE: [&str; 32] = [
    USER.name,
    USER.domain,
    USER.full_name,
    USER.description,
    USER.password,
    USER.enabled,
    USER.auth_type,
    USER.rights,
    USER.forward_mode,
    USER.forward_address,
    USER.email_addresses,
    USER.groups,
    USER.quota_storage,
    USER.quota_messages,
    USER.data_source,
    ALIAS.deliver_to,
    GROUP.members,
    USER_ADDITIONAL_DATA.last_password_change,
    USER_ADDITIONAL_DATA.password_history,
    DOMAIN.dir_service,
    DOMAIN.password_policy,
    MAILING_LIST.moderators,
    DIRECTORIES.store_dir,
    DIRECTORIES.archive_dir,
    DIRECTORIES.backup_dir,
    IM_STORE_PATH.1,
    FULL_TEXT_SEARCH_PATH.1,
    LOG_ROOT.1,
    ADMINISTRATION.builtin_admin_enabled,
    ADMINISTRATION.builtin_admin_username,
    // "PIN" [C] and "BuiltInAdminPassword" [C] (KERIO-FORMAT.md §2): secrets like Password.
    "PIN",
    "BuiltInAdminPassword",
];

/// The variables that name a record in the Config log's `where` clause (`update User set …
/// where Name='jdoe', Domain='example.com'`) [A: the server's `update`/`delete` forms are not
/// documented; `insert User set …` is, KERIO-FORMAT.md §4].
pub const RECORD_KEY: [&str; 2] = ["Name", "Domain"];

/// Variables whose values the Config log writes as `Password=xxxxxx` (without quotes, as the
/// server writes `Password`) [C for Password; PIN and the others are secrets too, masked here
/// although one vendor example shows a PIN].
pub const SECRET: [&str; 4] = [
    USER.password,
    USER_ADDITIONAL_DATA.password_history,
    "PIN",
    "BuiltInAdminPassword",
];

/// The prefixes of the server's password forms (KERIO-FORMAT.md §2): a value starting with one is
/// a secret in a log line whatever its variable is called.
pub const PASSWORD_FORMS: [&str; 3] = ["D3S:", "SHA:", "NUL:"];

/// `acl.fld` in a `#public` directory (`mail/#public/acl.fld`, or `mail/<domain>/#public/acl.fld`
/// when each domain has its own public folders): who may use the public folders. KERIO-FORMAT.md
/// §3: [C] that the file exists there and names users by address; [A] its layout, assumed here
/// to be status.fld's ACL tokens, one entry a line: `A<user>@<domain> <rights>`. The toolkit
/// finds the entries with the `status.fld` codec, so only this prefix and the file name are
/// assumed.
#[derive(Debug)]
pub struct PublicAclNames {
    /// The file's name, in each `#public` directory.
    pub file: &'static str,
    /// Before the address of each entry.
    pub entry_prefix: &'static str,
}

/// The names in a `#public` directory's access list.
pub const PUBLIC_ACL: PublicAclNames = PublicAclNames {
    file: "acl.fld",
    entry_prefix: "A",
};

/// `sub.fld` in each mailbox: the folders it is subscribed to. KERIO-FORMAT.md §3: [T] that the
/// file exists, [C] that it names addresses (the vendor's article has admins replace the old
/// domain in it); [A] its layout, assumed here to be one folder a line: the mailbox's own folders
/// by path (`INBOX/Projects`), public ones under `#public/`, and a folder another user shares
/// as `~<user>@<domain>/<path>`. The toolkit only relies on addresses being whole tokens
/// (bounded by characters that cannot be part of an address) and on one subscription a line.
#[derive(Debug)]
pub struct SubscriptionNames {
    /// The file's name, in each mailbox.
    pub file: &'static str,
    /// Before the owner's address in a subscription to another user's folder.
    pub shared_prefix: &'static str,
    /// Before the path of a public folder.
    pub public_prefix: &'static str,
}

/// The names in `sub.fld`.
pub const SUBSCRIPTIONS: SubscriptionNames = SubscriptionNames {
    file: "sub.fld",
    shared_prefix: "~",
    public_prefix: "#public/",
};

/// A folder's message index and search index, and the names `kc-store` moves them to so that
/// the server rebuilds them (KERIO-FORMAT.md §3).
///
/// - `index.fld` [T]: one line per message, space-separated fields each led by a letter:
///   `U00000001 F80000001 S1133 D43032abf M4305f1b7 I0001 CIPM.Note`.
/// - The `U` field names the message's file: `#msgs/<the U field's hex digits>.eml`
///   [T: a third party who read a 6.1 store wrote "Unnnnnnnn = file name (#msg/nnnnnnnn.eml)";
///   the fixture writes it so]. The toolkit compares the number, not the spelling, so the case
///   of the hex digits does not matter.
/// - The `S` field is the message file's size in bytes [A: KERIO-FORMAT.md lists it as the size;
///   the one third-party description found calls it "unknown"]. Only the size-mismatch finding of
///   `kc-store check` rests on it.
/// - `index.bad` [C]: the vendor's procedure for 7.2.4 and older renames `index.fld` to it with
///   the server stopped, and the server rebuilds the index from `#msgs`.
/// - `search.fld` [T] is rebuilt by the server when it is missing or damaged [C, 7.3 and later];
///   `search.bad` [A] is this project's name for it moved aside.
/// - `class_prefix` `C` [T]: the item's class (`IPM.Note`, `IPM.Appointment`, …).
/// - `calendar_classes` [A]: the classes of calendar items, whose messages hold iCalendar parts
///   naming an `ORGANIZER` and `ATTENDEE`s: `IPM.Appointment` (an event in a calendar; the one
///   the index excerpt above names) and `IPM.Schedule.Meeting` (an invitation, its cancellation
///   and the replies, `IPM.Schedule.Meeting.Request`, `.Canceled`, `.Resp.Pos`, …), each with
///   its subclasses (the class itself, or it followed by `.`), in any case. These are the MAPI
///   names Outlook and Exchange use; that the server writes them so in `index.fld` is assumed
///   from the one excerpt. A rename rewrites calendar items in other users' folders only where
///   the index lists one of these classes.
#[derive(Debug)]
pub struct IndexNames {
    /// The message index.
    pub file: &'static str,
    /// The message index moved aside.
    pub aside: &'static str,
    /// The search index.
    pub search: &'static str,
    /// The search index moved aside.
    pub search_aside: &'static str,
    /// The field naming the message's file, as hex digits.
    pub uid_prefix: u8,
    /// The field holding the message's size in bytes, decimal.
    pub size_prefix: u8,
    /// The field holding the item's class.
    pub class_prefix: u8,
    /// The classes of calendar items, each with its subclasses.
    pub calendar_classes: &'static [&'static str],
    /// A message file: `<hex digits>.<message_extension>` in a folder's `#msgs`.
    pub message_extension: &'static str,
}

/// The names of a folder's indexes and messages.
pub const INDEX: IndexNames = IndexNames {
    file: "index.fld",
    aside: "index.bad",
    search: "search.fld",
    search_aside: "search.bad",
    uid_prefix: b'U',
    size_prefix: b'S',
    class_prefix: b'C',
    calendar_classes: &["IPM.Appointment", "IPM.Schedule.Meeting"],
    message_extension: "eml",
};
