//! What the planners read of an install, loaded once: where its parts are and both config
//! files. A writer loads it after taking the install's lock, so nothing changes the files
//! between the reading and the change, and hands it to its planner (which edits its own copy
//! of the configuration); a tool that reports then acts, as the orphan finder does, uses one
//! model for both.

use crate::account::Layout;
use crate::config::{Config, ConfigError};
use crate::install::Install;

/// An install as the planners see it.
#[derive(Debug, Clone)]
pub struct Model<'i> {
    /// The install it was loaded from: its root, store and config paths.
    pub install: &'i Install,
    /// Where the store's parts are, relative to the root (the paths of steps).
    pub layout: Layout,
    /// mailserver.cfg and users.cfg, parsed and checked.
    pub config: Config,
}

impl<'i> Model<'i> {
    /// Reads both config files of `install` (in parallel).
    pub fn load(install: &'i Install) -> Result<Model<'i>, ConfigError> {
        Ok(Model {
            install,
            layout: Layout::new(install),
            config: Config::load(&install.root)?,
        })
    }
}
