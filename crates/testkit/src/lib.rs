//! kc-testkit: synthetic Kerio Connect installs of any size, deterministic for a seed.
//!
//! [`generate`] writes an install that looks like a real one to every tool of the kit: both
//! config files with every record kind of KERIO-FORMAT.md (users, aliases, groups, mailing lists,
//! templates, password history, a directory-mapped domain, tables and lists the toolkit does not
//! know), and a store whose mailboxes hold the standard folders, nested subfolders, `.eml`
//! messages with mail-like sizes (median about 8 KiB, a long tail to MiBs, base64 attachments),
//! `index.fld`/`status.fld` consistent with them, folders shared between users (ACL entries plus
//! the sharee's `folder.map`), `#public` folders, logs, and planted inconsistencies that the
//! orphan finder must report. The returned [`Summary`] says exactly what was planted.
//!
//! The plan is drawn from one seeded RNG; each mailbox is then written on its own RNG derived
//! from the seed and its address, in parallel, so the bytes do not depend on the thread count.
//!
//! [`Shapes`] (all off by default, so the default bytes never change) write the install in the
//! shapes real ones have (KERIO-FORMAT.md §1, §3): the store outside the root with a stale
//! `<root>/store` left behind, Docker-style symlinks into a volume, a BOM and CRLF line endings,
//! Python ElementTree's way of writing XML, and the server-wide `mail/#public` with its `acl.fld`
//! and `sub.fld` subscriptions naming other users. The siblings those shapes need are
//! `<out>-store` (the store outside the root) and `<out>-volume` (the Docker volume), next to
//! `<out>`; both must be absent or empty too.

pub mod calendar;
mod configs;
mod mailbox;
mod scratch;
mod text;

pub use scratch::{
    FakeServer, LockHolder, Scratch, TOOLKIT_FILES, Turn, bin_path, compare_trees, copy_tree,
    differences, share_files_naming,
};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Accounts in all domains together.
    pub users: usize,
    pub domains: usize,
    /// Average number of messages in a mailbox (each draws between half and one and a half).
    pub messages_per_user: usize,
    pub seed: u64,
    /// Largest message, in bytes: the size distribution's tail is cut here.
    pub max_message_size: usize,
    /// Write the config files only, no store (for config-scale benchmarks).
    pub configs_only: bool,
    /// Percent of attachments that are text documents (CSV, prose) in base64, which compress,
    /// instead of random bytes (as PDFs, images and zipped office files), which do not. 0, the
    /// default, writes the same bytes as before the option existed.
    pub text_attachments: u8,
    /// The shapes of real installs to write; none by default.
    pub shapes: Shapes,
    /// Calendar items naming other mailboxes as ORGANIZER/ATTENDEE, in every mailbox's Calendar
    /// and INBOX (folded, quoted-printable, base64, one damaged: see the `calendar` module);
    /// off by default, and the install is otherwise the same bytes with it.
    pub calendars: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            users: 15,
            domains: 3,
            messages_per_user: 6,
            seed: 1,
            max_message_size: 8 << 20,
            configs_only: false,
            text_attachments: 0,
            shapes: Shapes::default(),
            calendars: false,
        }
    }
}

/// Shapes real installs have and the plain fixture does not (KERIO-FORMAT.md §1, §3). Each is
/// off by default; any mix may be asked for, except `store_outside` with `symlink_store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Shapes {
    /// The store is written to `<out>-store`, beside the root; mailserver.cfg's
    /// `Directories/StoreDir` holds its absolute path; and a stale `<root>/store` is left behind
    /// with a smaller, different mail tree (two mailboxes of real accounts with other messages,
    /// a mailbox and a domain only it has, its own `#public`, logs), which no tool may read.
    pub store_outside: bool,
    /// users.cfg and mailserver.cfg are absolute symlinks to files in `<out>-volume/` (the
    /// Docker layout); their `.bak` copies stay plain files in the root.
    pub symlink_configs: bool,
    /// `<root>/store` is an absolute symlink to `<out>-volume/store`, where the store is
    /// written; `StoreDir` stays `store`.
    pub symlink_store: bool,
    /// users.cfg and mailserver.cfg start with a UTF-8 BOM and end their lines with CRLF, as
    /// Notepad leaves them.
    pub bom_crlf: bool,
    /// mailserver.cfg as Python ElementTree writes it: no XML declaration, no comments, empty
    /// elements as `<variable name="X" />`, non-ASCII as `&#228;`, no final newline (with a
    /// non-ASCII template description, so there is one). users.cfg as .NET XDocument writes it:
    /// empty elements self-closed, with no aliases: `<list name="Alias" />`.
    pub elementtree: bool,
    /// Public folders are the server's, at `store/mail/#public` (instead of each domain's), with
    /// an `acl.fld` granting rights to some users of every local domain; and every mailbox's
    /// `sub.fld` subscribes to the public folders, to the folders shared with it and to a
    /// colleague's calendar, naming other users' addresses (layouts: `kc_core::config::schema`'s
    /// `PUBLIC_ACL` and `SUBSCRIPTIONS`).
    pub global_public: bool,
}

impl Options {
    /// The committed demo install, `fixtures/demo`: 3 domains, 15 accounts, about 300 messages,
    /// every record kind and every planted inconsistency, small enough to keep in git as text.
    pub fn demo() -> Options {
        Options {
            users: 15,
            domains: 3,
            messages_per_user: 16,
            seed: 2026,
            max_message_size: 128 << 10,
            configs_only: false,
            text_attachments: 0,
            shapes: Shapes::default(),
            calendars: false,
        }
    }
}

/// What was written, and every inconsistency planted on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub domains: usize,
    pub users: usize,
    pub mailboxes: usize,
    /// Every message of the store's mail, `#public` and `#archive` included.
    pub messages: u64,
    pub message_bytes: u64,
    /// Folders shared with another user (ACL entry + the sharee's folder.map entry).
    pub shared_folders: usize,
    /// The domain whose users are mapped from a directory service.
    pub mapped_domain: Option<String>,
    pub planted: Planted,
    /// The shapes written.
    pub shapes: Shapes,
    /// Where the parts are, when a shape put them elsewhere than the plain layout.
    pub paths: Paths,
}

/// Absolute paths of the parts a shape moved; `None` (JSON `null`) in the plain layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Paths {
    /// The store, when it is not a plain `<root>/store` directory (`<out>-store`, or the
    /// volume's `store` behind a symlink).
    pub store: Option<PathBuf>,
    /// The stale `<root>/store` that no tool may read (with `store_outside`).
    pub stale_store: Option<PathBuf>,
    /// The Docker-style volume holding the configs and/or the store.
    pub volume: Option<PathBuf>,
}

/// The inconsistencies a correct orphan finder reports, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Planted {
    /// `name@domain` of mailbox directories with no account.
    pub orphan_mailboxes: Vec<String>,
    /// Domain directories with no domain in mailserver.cfg.
    pub orphan_domains: Vec<String>,
    /// `(account address, directory name)` differing only by case.
    pub case_mismatches: Vec<(String, String)>,
    /// Enabled accounts with no mailbox directory.
    pub missing_mailboxes: Vec<String>,
    /// `(mailbox address, folder)` of `Deleted mailbox — …` folders.
    pub deleted_mailbox_folders: Vec<(String, String)>,
}

/// A planned account.
#[derive(Debug, Clone)]
struct User {
    name: String,
    domain: String,
    full_name: String,
    description: String,
    password: String,
    enabled: bool,
    rights: u8,
    forward: Option<String>,
    addresses: Vec<String>,
    groups: Vec<String>,
    quota: u64,
    mapped: bool,
    /// The mailbox directory's name (differs by case for a planted mismatch), `None` for an
    /// account that never logged in.
    dir: Option<String>,
}

impl User {
    fn address(&self) -> String {
        format!("{}@{}", self.name, self.domain)
    }
}

/// A folder shared by `owner` with `sharee`.
#[derive(Debug, Clone)]
struct Share {
    owner: String,
    folder: &'static str,
    sharee: String,
    rights: &'static str,
}

#[derive(Debug, Clone)]
struct Domain {
    name: String,
    mapped: bool,
    secure_passwords: bool,
    groups: Vec<(String, Vec<String>)>,
}

/// The whole install, decided before anything is written.
#[derive(Debug)]
struct Plan {
    domains: Vec<Domain>,
    users: Vec<User>,
    shares: Vec<Share>,
    /// Mailbox directories to write: `(domain, directory name, owner for shares if any)`.
    orphans: Vec<(String, String)>,
    orphan_domain: String,
    deleted_folder: Option<(String, String)>,
    /// Epoch second the install "was stopped" at: every date is before it.
    now: u64,
    /// Indexes into `shares` by owner and by sharee address, and full names by address.
    shares_by_owner: HashMap<String, Vec<usize>>,
    shares_by_sharee: HashMap<String, Vec<usize>>,
    full_names: HashMap<String, String>,
}

/// Where an install's parts are written, following its shapes.
#[derive(Debug)]
struct Places {
    root: PathBuf,
    /// Where the store's files are written (the symlink's target with `symlink_store`).
    store: PathBuf,
    /// The value of `Directories/StoreDir`.
    store_dir: String,
    /// `<out>-volume`, when a shape uses it.
    volume: Option<PathBuf>,
    stale_store: Option<PathBuf>,
}

impl Places {
    fn new(out: &Path, shapes: Shapes) -> anyhow::Result<Places> {
        if shapes.store_outside && shapes.symlink_store {
            anyhow::bail!(
                "the store is either outside the root (--store-outside) or behind a symlink (--symlink-store), not both"
            );
        }
        let absolute = std::path::absolute(out)
            .with_context(|| format!("{}: cannot make it absolute", out.display()))?;
        let sibling = |suffix: &str| {
            let mut name = absolute.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let volume = (shapes.symlink_configs || shapes.symlink_store).then(|| sibling("-volume"));
        let (store, store_dir, stale_store) = if shapes.store_outside {
            let store = sibling("-store");
            let dir = store
                .to_str()
                .context("the store's path is not UTF-8: it cannot go in mailserver.cfg")?
                .to_owned();
            (store, dir, Some(out.join("store")))
        } else if let Some(volume) = volume.as_ref().filter(|_| shapes.symlink_store) {
            (volume.join("store"), "store".to_owned(), None)
        } else {
            (out.join("store"), "store".to_owned(), None)
        };
        Ok(Places {
            root: out.to_path_buf(),
            store,
            store_dir,
            volume,
            stale_store,
        })
    }

    /// Every directory this install writes to, each of which must be absent or empty.
    fn targets(&self) -> Vec<&Path> {
        let mut out = vec![self.root.as_path()];
        out.extend(self.volume.as_deref());
        if self.stale_store.is_some() {
            out.push(&self.store);
        }
        out
    }
}

/// Writes an install into `out` (created if missing; must be empty if it exists), with the
/// siblings its shapes need (see [`Shapes`]).
pub fn generate(out: &Path, options: &Options) -> anyhow::Result<Summary> {
    let shapes = options.shapes;
    let places = Places::new(out, shapes)?;
    for dir in places.targets() {
        if dir.exists() && fs_err::read_dir(dir)?.next().is_some() {
            anyhow::bail!("{}: exists and is not empty", dir.display());
        }
    }
    for dir in places.targets() {
        fs_err::create_dir_all(dir)?;
    }
    let plan = plan(options);
    configs::write(&places, &plan, shapes)?;
    let summary = Summary {
        domains: plan.domains.len(),
        users: plan.users.len(),
        mapped_domain: plan
            .domains
            .iter()
            .find(|d| d.mapped)
            .map(|d| d.name.clone()),
        shapes,
        paths: Paths {
            store: (shapes.store_outside || shapes.symlink_store).then(|| places.store.clone()),
            stale_store: places.stale_store.clone(),
            volume: places.volume.clone(),
        },
        ..Summary::default()
    };
    if options.configs_only {
        return Ok(summary);
    }
    let store = places.store.clone();
    fs_err::create_dir_all(&store)?;
    if shapes.symlink_store {
        std::os::unix::fs::symlink(&store, out.join("store"))
            .with_context(|| format!("{}: cannot make the symlink", out.join("store").display()))?;
    }
    if let Some(stale) = &places.stale_store {
        mailbox::write_stale_store(stale, &plan, options)?;
    }
    let written = plan
        .users
        .par_iter()
        .filter(|u| u.dir.is_some())
        .map(|u| mailbox::write_user(&store, &plan, u, options))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let orphans = plan
        .orphans
        .par_iter()
        .map(|(domain, name)| mailbox::write_orphan(&store, &plan, domain, name, options))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let server_folders = mailbox::write_server_dirs(&store, &plan, options)?;

    let mut summary = Summary {
        mailboxes: written.len() + orphans.len(),
        shared_folders: plan.shares.len(),
        ..summary
    };
    for (messages, bytes) in written.iter().chain(&orphans).chain([&server_folders]) {
        summary.messages += messages;
        summary.message_bytes += bytes;
    }
    let planted = &mut summary.planted;
    planted.orphan_mailboxes = plan
        .orphans
        .iter()
        .filter(|(d, _)| *d != plan.orphan_domain)
        .map(|(d, n)| format!("{n}@{d}"))
        .collect();
    planted.orphan_domains = vec![plan.orphan_domain.clone()];
    for u in &plan.users {
        match &u.dir {
            Some(dir) if *dir != u.name => planted.case_mismatches.push((u.address(), dir.clone())),
            None if u.enabled => planted.missing_mailboxes.push(u.address()),
            _ => {}
        }
    }
    planted.deleted_mailbox_folders = plan.deleted_folder.iter().cloned().collect();
    Ok(summary)
}

/// Mixes the seed with a name, for per-mailbox RNGs that do not depend on the order of work.
fn derive_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, then mixed with the seed: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, name))
}

const DOMAIN_NAMES: &[&str] = &["example.com", "example.org", "branch.example.net"];
const MAPPED_DOMAIN: &str = "corp.example.net";
const GROUP_NAMES: &[&str] = &["sales", "dev", "support", "management"];
/// Folders a user may share with a colleague.
const SHAREABLE: &[&str] = &["Calendar", "Contacts", "INBOX/Projects"];

fn plan(options: &Options) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let now: u64 = 1_795_320_000; // 2026-11-22, the night of the migration
    let n_domains = options.domains.max(1);
    let mut domains: Vec<Domain> = (0..n_domains)
        .map(|i| {
            let mapped = n_domains >= 2 && i == n_domains - 1;
            let name = if mapped {
                MAPPED_DOMAIN.to_owned()
            } else if i < DOMAIN_NAMES.len() {
                DOMAIN_NAMES[i].to_owned()
            } else {
                format!("domain{i}.example")
            };
            Domain {
                name,
                mapped,
                secure_passwords: i == 1,
                groups: Vec::new(),
            }
        })
        .collect();

    // Spread the users: the mapped domain gets about a tenth, the rest evenly.
    let mapped_users = if domains.iter().any(|d| d.mapped) {
        (options.users / 10).max(usize::from(options.users >= 4))
    } else {
        0
    };
    let local_domains = domains.iter().filter(|d| !d.mapped).count();
    let mut users = Vec::with_capacity(options.users);
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_domain = vec![0usize; n_domains];
    for i in 0..options.users {
        let domain_index = if i < options.users - mapped_users {
            i % local_domains
        } else {
            n_domains - 1
        };
        let domain = domains[domain_index].clone();
        let first = *text::FIRST_NAMES.choose(&mut rng).expect("names");
        let last = *text::LAST_NAMES.choose(&mut rng).expect("names");
        let base = format!("{}{}", &first[..1], last).to_ascii_lowercase();
        let key = format!("{base}@{}", domain.name);
        let n = taken.entry(key).or_insert(0);
        *n += 1;
        // Namesakes get a number, on the login and on the extra address alike.
        let suffix = if *n == 1 {
            String::new()
        } else {
            n.to_string()
        };
        let name = format!("{base}{suffix}");
        let dotted = format!("{first}.{last}{suffix}").to_ascii_lowercase();
        let in_domain = per_domain[domain_index];
        per_domain[domain_index] += 1;
        let enabled = in_domain % 11 != 7; // a few disabled accounts
        let rights = match in_domain {
            0 => 3, // every domain's first account is a full admin
            5 => 1,
            _ => 0,
        };
        let mut hash = [0u8; 16];
        rng.fill(&mut hash[..]);
        let password = if domain.mapped {
            String::new()
        } else if in_domain % 9 == 4 {
            "NUL:".to_owned() // an empty password
        } else {
            format!("D3S:{}", hex(&hash))
        };
        let groups: Vec<String> = GROUP_NAMES
            .iter()
            .filter(|_| rng.random_bool(0.3))
            .map(|g| (*g).to_owned())
            .collect();
        users.push(User {
            addresses: vec![name.clone(), dotted],
            dir: Some(name.clone()),
            name,
            domain: domain.name.clone(),
            full_name: format!("{first} {last}"),
            description: ["", "Sales", "Development", "Support", "Accounting"][in_domain % 5]
                .to_owned(),
            password,
            enabled,
            rights,
            forward: None,
            groups,
            quota: [0, 0, 1 << 30, 500 << 20][in_domain % 4],
            mapped: domain.mapped,
        });
    }
    // Forwards to a colleague; group members follow from the users' groups.
    for i in 0..users.len() {
        if i % 13 == 3 && i + 1 < users.len() && users[i + 1].domain == users[i].domain {
            users[i].forward = Some(users[i + 1].address());
        }
    }
    for domain in &mut domains {
        for g in GROUP_NAMES {
            let members: Vec<String> = users
                .iter()
                .filter(|u| u.domain == domain.name && u.groups.iter().any(|x| x == g))
                .map(|u| u.name.clone())
                .collect();
            domain.groups.push(((*g).to_owned(), members));
        }
        // "all" holds everyone in the domain.
        let everyone = users
            .iter()
            .filter(|u| u.domain == domain.name)
            .map(|u| u.name.clone())
            .collect();
        domain.groups.push(("all".to_owned(), everyone));
    }

    // Shares: about a fifth of the local users share a folder with one or two colleagues.
    let mut by_domain: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, u) in users.iter().enumerate() {
        by_domain.entry(u.domain.as_str()).or_default().push(i);
    }
    let mut shares = Vec::new();
    for (i, owner) in users.iter().enumerate() {
        if owner.mapped || i % 5 != 1 {
            continue;
        }
        let colleagues = &by_domain[owner.domain.as_str()];
        let folder = *SHAREABLE.choose(&mut rng).expect("folders");
        let sharees = colleagues
            .choose_multiple(&mut rng, 3)
            .filter(|&&j| j != i)
            .take(2)
            .map(|&j| &users[j]);
        for sharee in sharees {
            shares.push(Share {
                owner: owner.address(),
                folder,
                sharee: sharee.address(),
                rights: if rng.random_bool(0.5) {
                    "lr"
                } else {
                    "lrswipkxte"
                },
            });
        }
    }

    // Planted inconsistencies.
    let locals: Vec<usize> = (0..users.len()).filter(|&i| !users[i].mapped).collect();
    let mut orphans: Vec<(String, String)> = domains
        .iter()
        .filter(|d| !d.mapped)
        .take(2)
        .enumerate()
        .map(|(i, d)| (d.name.clone(), ["former.employee", "olduser"][i].to_owned()))
        .collect();
    // One more orphan per 200 accounts, so large installs have many.
    for k in 0..options.users / 200 {
        let d = &domains[k % local_domains];
        orphans.push((d.name.clone(), format!("left{k:04}")));
    }
    let orphan_domain = "old-domain.example".to_owned();
    orphans.push((orphan_domain.clone(), "ghost".to_owned()));
    if locals.len() >= 4 {
        // A directory differing from its account only by case.
        let u = &mut users[locals[2]];
        let mut dir: Vec<char> = u.name.chars().collect();
        dir[0] = dir[0].to_ascii_uppercase();
        u.dir = Some(dir.into_iter().collect());
        // An enabled account that never logged in: no mailbox yet.
        let u = &mut users[locals[3]];
        u.enabled = true;
        u.dir = None;
        shares.retain(|s| {
            s.owner != users[locals[3]].address() && s.sharee != users[locals[3]].address()
        });
    }
    let deleted_folder = locals.first().map(|&i| {
        let removed = format!("removed.user@{}", users[i].domain);
        (
            users[i].address(),
            format!("{}{removed}", kc_core::store::DELETED_MAILBOX_PREFIX),
        )
    });
    let mut shares_by_owner: HashMap<String, Vec<usize>> = HashMap::new();
    let mut shares_by_sharee: HashMap<String, Vec<usize>> = HashMap::new();
    for (k, share) in shares.iter().enumerate() {
        shares_by_owner
            .entry(share.owner.clone())
            .or_default()
            .push(k);
        shares_by_sharee
            .entry(share.sharee.clone())
            .or_default()
            .push(k);
    }
    let full_names = users
        .iter()
        .map(|u| (u.address(), u.full_name.clone()))
        .collect();
    Plan {
        domains,
        users,
        shares,
        orphans,
        orphan_domain,
        deleted_folder,
        now,
        shares_by_owner,
        shares_by_sharee,
        full_names,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs kc-fixture's generation for tests: a fresh install in a new temporary directory.
pub fn temp_install(options: &Options) -> anyhow::Result<(tempfile::TempDir, Summary)> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let root = dir.path().join("kerio");
    let summary = generate(&root, options)?;
    Ok((dir, summary))
}

/// Which end of a share to look a user up by.
#[derive(Debug, Clone, Copy)]
enum Side {
    Owner,
    Sharee,
}

impl Plan {
    /// The shares `address` owns (or receives), in plan order.
    fn shares_of<'p>(&'p self, address: &str, side: Side) -> impl Iterator<Item = &'p Share> + 'p {
        let index = match side {
            Side::Owner => &self.shares_by_owner,
            Side::Sharee => &self.shares_by_sharee,
        };
        index
            .get(address)
            .into_iter()
            .flatten()
            .map(|&k| &self.shares[k])
    }
}
