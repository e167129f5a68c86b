// SPDX-License-Identifier: GPL-2.0

//! The controller character device `/dev/rnvme<N>`: what nvme-cli and libnvme open to
//! manage a controller (the ioctls themselves are in [`crate::nvme::user_cmd`]).

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::miscdevice::MiscFile,
    nvme::{ctrl_core::CtrlCore, user_cmd},
};

/// What an open `/dev/rnvme<N>` acts on.
pub(crate) struct CtrlFile {
    core: Arc<CtrlCore>,
}

impl CtrlFile {
    /// The file operations of controller `core`.
    pub(crate) fn new(core: Arc<CtrlCore>) -> Self {
        Self { core }
    }
}

impl MiscFile for CtrlFile {
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        user_cmd::ctrl_ioctl(&self.core, cmd, arg)
    }
}
