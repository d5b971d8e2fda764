// SPDX-License-Identifier: GPL-2.0

//! LIO target core: backend ("backstore") drivers.
//!
//! A backend implements [`Backend`] and registers it with [`Registration`]. The target core
//! then calls it to attach HBAs (`/sys/kernel/config/target/core/<name>_<id>`), to allocate
//! devices inside them (`mkdir .../<name>_<id>/<dev>`), to configure, destroy and free them
//! and to pass them SCSI commands.
//!
//! It serves pass-through backends, those whose handler sees the CDBs (as `target_core_user`
//! and `target_core_pscsi`): their devices take LIO's pass-through attribute set, and the
//! target core's `passthrough_parse_cdb` parses every command and passes what it does not
//! emulate to [`Backend::execute`]. A backend that emulates SBC
//! itself (`iblock`, `fileio`) would need `sbc_parse_cdb` and the full attribute set,
//! which this abstraction does not offer. Scatter-gather lists are in
//! [`scatterlist`](crate::scatterlist), page references in [`page`](crate::page).
//!
//! C headers:
//! [`include/target/target_core_backend.h`](srctree/include/target/target_core_backend.h),
//! [`include/target/target_core_base.h`](srctree/include/target/target_core_base.h).

use crate::ffi::c_char;
use crate::page::PAGE_SIZE;
use crate::scatterlist::SgList;
use crate::{
    bindings,
    error::{from_result, to_result, Error, Result},
    init::PinInit,
    prelude::*,
    str::CStr,
    types::Opaque,
    ThisModule,
};
use core::{marker::PhantomData, mem::MaybeUninit, ptr, ptr::NonNull};

/// A SCSI sense reason (`sense_reason_t`) returned to the target core. `0` means success.
pub type SenseReason = bindings::sense_reason_t;

/// Success: no sense data.
pub const TCM_NO_SENSE: SenseReason = 0;
/// `ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE`.
pub const TCM_UNSUPPORTED_SCSI_OPCODE: SenseReason =
    bindings::tcm_sense_reason_table_TCM_UNSUPPORTED_SCSI_OPCODE as SenseReason;

/// `ILLEGAL REQUEST / INVALID FIELD IN CDB`.
pub const TCM_INVALID_CDB_FIELD: SenseReason =
    bindings::tcm_sense_reason_table_TCM_INVALID_CDB_FIELD as SenseReason;
/// `HARDWARE ERROR / LOGICAL UNIT COMMUNICATION FAILURE`.
pub const TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE: SenseReason =
    bindings::tcm_sense_reason_table_TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE as SenseReason;
/// Out of resources (`TASK SET FULL` / `BUSY`-like failure).
pub const TCM_OUT_OF_RESOURCES: SenseReason =
    bindings::tcm_sense_reason_table_TCM_OUT_OF_RESOURCES as SenseReason;
/// `NOT READY`: the logical unit is busy.
pub const TCM_LUN_BUSY: SenseReason = bindings::tcm_sense_reason_table_TCM_LUN_BUSY as SenseReason;
/// The command was aborted before the backend took it (`ABORTED COMMAND`, or `TASK ABORTED`
/// status if the initiator asked for task aborted status).
pub const TCM_CHECK_CONDITION_ABORT_CMD: SenseReason =
    bindings::tcm_sense_reason_table_TCM_CHECK_CONDITION_ABORT_CMD as SenseReason;

/// Peripheral device type of a direct-access block device (`TYPE_DISK`).
pub const TYPE_DISK: u32 = bindings::TYPE_DISK;

/// The device passes commands through: the target core does no SAM task attribute ordering
/// for it (`TRANSPORT_FLAG_PASSTHROUGH`).
pub const TRANSPORT_FLAG_PASSTHROUGH: u8 = bindings::TRANSPORT_FLAG_PASSTHROUGH as u8;
/// ALUA is left to the backend (`alua_support` = 0).
pub const TRANSPORT_FLAG_PASSTHROUGH_ALUA: u8 = bindings::TRANSPORT_FLAG_PASSTHROUGH_ALUA as u8;
/// Persistent reservations are left to the backend (`pgr_support` = 0).
pub const TRANSPORT_FLAG_PASSTHROUGH_PGR: u8 = bindings::TRANSPORT_FLAG_PASSTHROUGH_PGR as u8;

/// A target backend driver.
///
/// The target core serialises the configuration callbacks of one device through configfs;
/// they may run concurrently for different devices, hence the `Send + Sync` bounds.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The backend name, the prefix of its HBA directories (at most 15 bytes).
    const NAME: &'static CStr;
    /// The INQUIRY product identification reported for its devices (at most 15 bytes).
    const INQUIRY_PROD: &'static CStr;
    /// The INQUIRY product revision (at most 3 bytes).
    const INQUIRY_REV: &'static CStr;
    /// `TRANSPORT_FLAG_*` bits set on every new device.
    const TRANSPORT_FLAGS_DEFAULT: u8 = 0;
    /// `TRANSPORT_FLAG_*` bits that configfs may change.
    const TRANSPORT_FLAGS_CHANGEABLE: u8 = 0;

    /// Data of the whole backend, given to [`Registration::new`].
    type Data: Send + Sync;
    /// Data of one HBA.
    type HbaData: Send + Sync;
    /// Data of one device.
    type DevData: Send + Sync;

    /// Attaches an HBA numbered `host_id`.
    fn attach_hba(host_id: u32) -> Result<Self::HbaData>;

    /// Allocates a device called `name` in `hba`. Nothing is visible to initiators yet.
    fn alloc_device(hba: &Hba<Self>, name: &CStr) -> impl PinInit<Self::DevData, Error>;

    /// Configures the device (`echo 1 > enable`).
    fn configure_device(dev: &Device<Self>) -> Result;

    /// Undoes a successful [`Backend::configure_device`].
    fn destroy_device(dev: &Device<Self>);

    /// Called once when the target core frees the device, before its data is dropped.
    fn free_device(_dev: &Device<Self>) {}

    /// Parses a write to the `control` attribute. As for every store, `params` is what C code
    /// would read of the page (up to its first NUL), and on success the whole write is taken
    /// whatever count is returned.
    fn set_params(dev: &Device<Self>, params: &[u8]) -> Result<usize>;

    /// Writes the `info` attribute into `f` (output past one page is cut).
    fn show_params(dev: &Device<Self>, f: &mut ShowPage<'_>) -> core::fmt::Result;

    /// Device attributes of the backend, shown in `<dev>/attrib` after LIO's passthrough ones.
    const DEV_ATTRS: &'static [AttrDef] = &[];
    /// Device actions of the backend, shown in `<dev>/action`.
    const ACTION_ATTRS: &'static [AttrDef] = &[];

    /// Shows device attribute `id` (an index into [`Backend::DEV_ATTRS`]).
    fn dev_attr_show(_dev: &Device<Self>, _id: usize, _f: &mut ShowPage<'_>) -> Result {
        Err(EINVAL)
    }

    /// Stores `data` (up to the first NUL of the write) into device attribute `id`.
    fn dev_attr_store(_dev: &Device<Self>, _id: usize, _data: &[u8]) -> Result<usize> {
        Err(EINVAL)
    }

    /// Shows device action `id` (an index into [`Backend::ACTION_ATTRS`]).
    fn action_show(_dev: &Device<Self>, _id: usize, _f: &mut ShowPage<'_>) -> Result {
        Err(EINVAL)
    }

    /// Runs device action `id` with argument `data` (up to the first NUL of the write).
    fn action_store(_dev: &Device<Self>, _id: usize, _data: &[u8]) -> Result<usize> {
        Err(EINVAL)
    }

    /// Task management: the commands of the device that `tmf` aborts, given by the tag each
    /// carries ([`PendingCmd::set_tag`]; 0 when never set). The target core still waits for
    /// their completion. The iterator reads each tag when it reaches the command: consume it
    /// under the lock under which the backend sets tags, so that every tag it yields is the
    /// command's current one (the aborted commands are marked before this is called: see
    /// [`Cmd::is_aborted`]).
    fn tmr_notify(_dev: &Device<Self>, _tmf: Tmf, _aborted: &mut dyn Iterator<Item = usize>) {}

    /// Whether the backend batches work between [`Backend::plug`] and [`Backend::unplug`].
    const PLUG: bool = false;

    /// The target core is about to submit a batch of commands to `dev` (queued submission).
    /// Returns whether the device is now plugged by this caller: then [`Backend::unplug`]
    /// follows after the batch. At most one plug per device at a time (the abstraction keeps
    /// one `se_dev_plug` per device).
    fn plug(_dev: &Device<Self>) -> bool {
        false
    }

    /// The end of a batch that [`Backend::plug`] started.
    fn unplug(_dev: &Device<Self>) {}

    /// Returns the SCSI peripheral device type.
    fn device_type(_dev: &Device<Self>) -> u32 {
        TYPE_DISK
    }

    /// Returns the index of the last logical block.
    fn last_lba(dev: &Device<Self>) -> u64;

    /// Runs a command that the target core's passthrough parser (`passthrough_parse_cdb`) did
    /// not emulate itself. The backend owns `cmd` until it completes it; a command it cannot
    /// take is handed back with [`PendingCmd::reject`] and failed by the target core.
    ///
    /// `dev` is the command's device. Once `cmd` is completed, only the backend's own
    /// synchronisation with [`Backend::destroy_device`] keeps the device from going away
    /// before `execute` returns: a backend that completes commands from other threads must make
    /// `destroy_device` wait for running `execute` calls (e.g. under a common lock).
    fn execute(_dev: &Device<Self>, cmd: PendingCmd<Self>) -> Result<(), Rejected<Self>> {
        Err(cmd.reject(TCM_UNSUPPORTED_SCSI_OPCODE))
    }
}

/// An HBA (`struct se_hba`) of backend `T`.
#[repr(transparent)]
pub struct Hba<T: Backend>(Opaque<bindings::se_hba>, PhantomData<T>);

impl<T: Backend> Hba<T> {
    /// # Safety
    ///
    /// `ptr` must point to an `se_hba` of backend `T` attached by [`Registration`] and not yet
    /// detached, for the lifetime `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::se_hba) -> &'a Self {
        // SAFETY: `Hba` is a transparent wrapper of `se_hba`; the caller guarantees validity.
        unsafe { &*ptr.cast() }
    }

    /// The HBA number (`hba_id`), as in the configfs directory name `<name>_<hba_id>`.
    pub fn id(&self) -> u32 {
        // SAFETY: `hba_id` is set by the target core before `attach_hba` and never changes.
        unsafe { (*self.0.get()).hba_id }
    }

    /// The backend's data for this HBA.
    pub fn data(&self) -> &T::HbaData {
        // SAFETY: `hba_ptr` was set by `attach_hba_cb` to a leaked `KBox<T::HbaData>` that lives
        // until `detach_hba_cb`, which cannot run while `self` is borrowed.
        unsafe { &*(*self.0.get()).hba_ptr.cast::<T::HbaData>() }
    }
}

/// A device (`struct se_device`) of backend `T`, with the backend's data.
///
/// The target core owns it: it is created by [`Backend::alloc_device`] and freed (after an RCU
/// grace period, as the target core may still look it up under RCU) when configfs removes it.
#[repr(C)]
#[pin_data]
pub struct Device<T: Backend> {
    #[pin]
    se_dev: Opaque<bindings::se_device>,
    /// Handed to the target core by `plug_device_cb` (one plug at a time, see
    /// [`Backend::plug`]).
    #[pin]
    plug: Opaque<bindings::se_dev_plug>,
    #[pin]
    data: T::DevData,
}

impl<T: Backend> core::ops::Deref for Device<T> {
    type Target = T::DevData;

    fn deref(&self) -> &T::DevData {
        &self.data
    }
}

/// Attributes of a device (`struct se_dev_attrib`) a backend sets when configuring it.
#[derive(Clone, Copy, Debug, Default)]
pub struct HwLimits {
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Largest transfer in blocks.
    pub max_sectors: u32,
    /// Queue depth.
    pub queue_depth: u32,
}

impl<T: Backend> Device<T> {
    /// # Safety
    ///
    /// `ptr` must point to the `se_dev` field of a live `Device<T>` for the lifetime `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::se_device) -> &'a Self {
        let off = core::mem::offset_of!(Self, se_dev);
        // SAFETY: By the safety requirements, `ptr` is inside a `Device<T>` at offset `off`.
        unsafe { &*ptr.cast::<u8>().sub(off).cast::<Self>() }
    }

    fn raw(&self) -> *mut bindings::se_device {
        self.se_dev.get()
    }

    /// The HBA this device belongs to.
    pub fn hba(&self) -> &Hba<T> {
        // SAFETY: `se_hba` is set by `target_alloc_device` right after `alloc_device` returns and
        // the HBA outlives its devices. Callbacks only run after that point.
        unsafe { Hba::from_raw((*self.raw()).se_hba) }
    }

    /// The backend's module-wide data (given to [`Registration::new`]).
    pub fn backend_data(&self) -> &T::Data {
        // SAFETY: `transport` is set by `target_alloc_device` to our ops table, which is the
        // first field (`repr(C)`) of our `RegInner<T>`. The target core holds a reference on the
        // backend module while the device exists, so the registration outlives `self`.
        unsafe { &(*(*self.raw()).transport.cast::<RegInner<T>>()).data }
    }

    /// The device's index in the target core (`dev_index`).
    pub fn index(&self) -> u32 {
        // SAFETY: Plain read of a field set once by the target core.
        unsafe { (*self.raw()).dev_index }
    }

    /// Whether the device has been configured (enabled) successfully.
    pub fn is_configured(&self) -> bool {
        // SAFETY: `self.raw()` is a valid `se_device`.
        unsafe { bindings::target_dev_configured(self.raw()) }
    }

    /// Sets the hardware limits; called from [`Backend::configure_device`].
    pub fn set_hw_limits(&self, hw: HwLimits) {
        // SAFETY: `dev_attrib` belongs to this device; the target core reads these fields only
        // after `configure_device` returns, which is when backends set them.
        unsafe {
            let a = ptr::addr_of_mut!((*self.raw()).dev_attrib);
            (*a).hw_block_size = hw.block_size;
            (*a).hw_max_sectors = hw.max_sectors;
            (*a).hw_queue_depth = hw.queue_depth;
        }
    }

    /// The current hardware limits.
    pub fn hw_limits(&self) -> HwLimits {
        // SAFETY: Reads of plain integer fields of this device.
        unsafe {
            let a = ptr::addr_of!((*self.raw()).dev_attrib);
            HwLimits {
                block_size: (*a).hw_block_size,
                max_sectors: (*a).hw_max_sectors,
                queue_depth: (*a).hw_queue_depth,
            }
        }
    }

    /// The logical block size the initiator sees (`block_size`).
    pub fn block_size(&self) -> u32 {
        // SAFETY: Read of a plain integer field of this device.
        unsafe { (*self.raw()).dev_attrib.block_size }
    }

    /// How many LUNs export the device (`export_count`).
    pub fn export_count(&self) -> u32 {
        // SAFETY: Read of a plain integer field of this device.
        unsafe { core::ptr::read_volatile(ptr::addr_of!((*self.raw()).export_count)) }
    }

    /// Whether write-cache emulation is on (`emulate_write_cache`).
    pub fn write_cache(&self) -> bool {
        // SAFETY: Read of a plain field of this device.
        unsafe {
            core::ptr::read_volatile(ptr::addr_of!((*self.raw()).dev_attrib.emulate_write_cache))
        }
    }

    /// Turns write-cache emulation on or off.
    pub fn set_write_cache(&self, on: bool) {
        // SAFETY: Write of a plain field of this device, as configfs stores do.
        unsafe {
            core::ptr::write_volatile(
                ptr::addr_of_mut!((*self.raw()).dev_attrib.emulate_write_cache),
                on,
            )
        }
    }
}

/// A SCSI command (`struct se_cmd`) for a device of backend `T`.
#[repr(transparent)]
pub struct Cmd<T: Backend>(Opaque<bindings::se_cmd>, PhantomData<T>);

impl<T: Backend> Cmd<T> {
    /// # Safety
    ///
    /// `ptr` must point to a live `se_cmd` addressed to a device of backend `T` for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::se_cmd) -> &'a Self {
        // SAFETY: Transparent wrapper; the caller guarantees validity.
        unsafe { &*ptr.cast() }
    }

    fn raw(&self) -> *mut bindings::se_cmd {
        self.0.get()
    }

    /// The device the command is addressed to.
    pub fn device(&self) -> &Device<T> {
        // SAFETY: `se_dev` of a command passed to backend `T` is a `Device<T>` that outlives it.
        unsafe { Device::from_raw((*self.raw()).se_dev) }
    }

    /// The CDB, as long as its operation code says (`scsi_command_size`).
    pub fn cdb(&self) -> &[u8] {
        // SAFETY: `t_task_cdb` points to the command's CDB buffer (at least 16 bytes, more for
        // variable-length CDBs whose length `scsi_command_size` reads from the CDB, which the
        // target core validated when it set the buffer up). It does not change while queued.
        unsafe {
            let cdb = (*self.raw()).t_task_cdb;
            core::slice::from_raw_parts(cdb, bindings::scsi_command_size(cdb) as usize)
        }
    }

    /// Whether a task management function aborted the command (`CMD_T_ABORTED`). The target
    /// core sets it before it calls [`Backend::tmr_notify`] for the command, so a backend that
    /// checks it under the lock its `tmr_notify` takes either sees it set or has the command
    /// in the list that `tmr_notify` gets.
    pub fn is_aborted(&self) -> bool {
        // SAFETY: `transport_state` is a field of the live command; the target core changes it
        // under `t_state_lock`, and a single aligned load of it (as C's unlocked test) is fine.
        let state = unsafe { ptr::read_volatile(ptr::addr_of!((*self.raw()).transport_state)) };
        state & bindings::CMD_T_ABORTED != 0
    }

    /// The direction of the data transfer.
    pub fn direction(&self) -> DataDir {
        // SAFETY: Plain field set by the target core before the backend sees the command.
        let (dir, flags) = unsafe { ((*self.raw()).data_direction, (*self.raw()).se_cmd_flags) };
        if flags & bindings::se_cmd_flags_table_SCF_BIDI != 0 {
            return DataDir::Bidi;
        }
        match dir {
            bindings::dma_data_direction_DMA_TO_DEVICE => DataDir::ToDevice,
            bindings::dma_data_direction_DMA_FROM_DEVICE => DataDir::FromDevice,
            _ => DataDir::None,
        }
    }

    /// The expected transfer length in bytes (of the Data-In part for bidirectional commands).
    pub fn data_length(&self) -> u32 {
        // SAFETY: Plain field set by the target core before the backend sees the command.
        unsafe { (*self.raw()).data_length }
    }

    /// The data buffer: Data-Out for writes and bidirectional commands, Data-In for reads.
    pub fn data_sg(&self) -> SgList<'_> {
        // SAFETY: The target core allocated the list before executing the command; it lives
        // as long as the command.
        unsafe { SgList::new((*self.raw()).t_data_sg, (*self.raw()).t_data_nents) }
    }

    /// The Data-In buffer of a bidirectional command (empty otherwise).
    pub fn bidi_sg(&self) -> SgList<'_> {
        // SAFETY: As in `data_sg`.
        unsafe {
            SgList::new(
                (*self.raw()).t_bidi_data_sg,
                (*self.raw()).t_bidi_data_nents,
            )
        }
    }
}

/// A task management function (`enum tcm_tmreq_table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tmf {
    /// ABORT TASK.
    AbortTask,
    /// ABORT TASK SET.
    AbortTaskSet,
    /// CLEAR ACA.
    ClearAca,
    /// CLEAR TASK SET.
    ClearTaskSet,
    /// LOGICAL UNIT RESET.
    LunReset,
    /// TARGET WARM RESET.
    TargetWarmReset,
    /// TARGET COLD RESET.
    TargetColdReset,
    /// The LOGICAL UNIT RESET that a PERSISTENT RESERVE OUT with PREEMPT AND ABORT makes.
    LunResetPro,
    /// Anything else.
    Other,
}

impl Tmf {
    /// The function of the target core's `enum tcm_tmreq_table` value `t`.
    pub fn from_raw(t: bindings::tcm_tmreq_table) -> Self {
        match t {
            bindings::tcm_tmreq_table_TMR_ABORT_TASK => Tmf::AbortTask,
            bindings::tcm_tmreq_table_TMR_ABORT_TASK_SET => Tmf::AbortTaskSet,
            bindings::tcm_tmreq_table_TMR_CLEAR_ACA => Tmf::ClearAca,
            bindings::tcm_tmreq_table_TMR_CLEAR_TASK_SET => Tmf::ClearTaskSet,
            bindings::tcm_tmreq_table_TMR_LUN_RESET => Tmf::LunReset,
            bindings::tcm_tmreq_table_TMR_TARGET_WARM_RESET => Tmf::TargetWarmReset,
            bindings::tcm_tmreq_table_TMR_TARGET_COLD_RESET => Tmf::TargetColdReset,
            bindings::tcm_tmreq_table_TMR_LUN_RESET_PRO => Tmf::LunResetPro,
            _ => Tmf::Other,
        }
    }
}

/// Direction of a command's data transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// No data.
    None,
    /// Data-Out: initiator to device (writes).
    ToDevice,
    /// Data-In: device to initiator (reads).
    FromDevice,
    /// Both: Data-Out in [`Cmd::data_sg`], Data-In in [`Cmd::bidi_sg`].
    Bidi,
}

/// A command owned by the backend until it completes it. Dropping it without completing
/// completes it with `CHECK CONDITION`, so the initiator is never left waiting.
pub struct PendingCmd<T: Backend> {
    cmd: NonNull<bindings::se_cmd>,
    _p: PhantomData<T>,
}

// SAFETY: The target core allows completing a command from any context.
unsafe impl<T: Backend> Send for PendingCmd<T> {}
// SAFETY: Shared references only read fields that do not change while the command is queued;
// the backend's fields (tag, sense, flags) are only written through `&mut self`.
unsafe impl<T: Backend> Sync for PendingCmd<T> {}

/// A command the backend refused in [`Backend::execute`], with the reason.
pub struct Rejected<T: Backend>(PendingCmd<T>, SenseReason);

/// SCSI status `GOOD`.
pub const SAM_STAT_GOOD: u8 = bindings::sam_status_SAM_STAT_GOOD as u8;
/// SCSI status `CHECK CONDITION`.
pub const SAM_STAT_CHECK_CONDITION: u8 = bindings::sam_status_SAM_STAT_CHECK_CONDITION as u8;
/// SCSI status `TASK ABORTED`.
pub const SAM_STAT_TASK_ABORTED: u8 = bindings::sam_status_SAM_STAT_TASK_ABORTED as u8;
/// SCSI status `TASK SET FULL`.
pub const SAM_STAT_TASK_SET_FULL: u8 = bindings::sam_status_SAM_STAT_TASK_SET_FULL as u8;
/// SCSI status `BUSY`.
pub const SAM_STAT_BUSY: u8 = bindings::sam_status_SAM_STAT_BUSY as u8;
/// Size of the sense data a backend may return.
pub const SENSE_BUFFER_SIZE: usize = bindings::TRANSPORT_SENSE_BUFFER as usize;

impl<T: Backend> core::ops::Deref for PendingCmd<T> {
    type Target = Cmd<T>;

    fn deref(&self) -> &Cmd<T> {
        // SAFETY: The command is live until completed, which consumes `self`.
        unsafe { Cmd::from_raw(self.cmd.as_ptr()) }
    }
}

impl<T: Backend> PendingCmd<T> {
    /// Hands the command back to the target core, which fails it with `reason`.
    pub fn reject(self, reason: SenseReason) -> Rejected<T> {
        Rejected(self, reason)
    }

    fn into_raw(self) -> *mut bindings::se_cmd {
        let p = self.cmd.as_ptr();
        core::mem::forget(self);
        // Completing: the backend's tag must not outlive its ownership. Written only if set, so
        // a backend that clears the tag under its lock before it completes unlocked leaves no
        // write here that races with its `tmr_notify` reading the tag.
        // SAFETY: The command is live; the backend owned it until now.
        unsafe {
            if !(*p).priv_.is_null() {
                (*p).priv_ = ptr::null_mut();
            }
        }
        p
    }

    /// Completes the command with SCSI `status`.
    pub fn complete(self, status: u8) {
        // SAFETY: The command is live and completed exactly once, here.
        unsafe { bindings::target_complete_cmd(self.into_raw(), status) };
    }

    /// Completes the command with `status` and `len` bytes transferred (the target core reports
    /// the residual to the initiator).
    pub fn complete_with_length(self, status: u8, len: u32) {
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        // SAFETY: As in `complete`.
        unsafe { bindings::target_complete_cmd_with_length(self.into_raw(), status, len) };
    }

    /// Copies `sense` (fixed or descriptor format) into the command's sense buffer, to go out
    /// with a `CHECK CONDITION` completion.
    pub fn set_sense(&mut self, sense: &[u8; SENSE_BUFFER_SIZE]) {
        let mut buf = *sense;
        // SAFETY: The command is live; the function copies `TRANSPORT_SENSE_BUFFER` bytes.
        unsafe { bindings::transport_copy_sense_to_cmd(self.cmd.as_ptr(), buf.as_mut_ptr()) };
    }

    /// The CPU the fabric submitted the command on (`se_cmd->cpuid`), where the target core
    /// runs its completion work by default.
    pub fn cpu(&self) -> i32 {
        // SAFETY: Plain field set when the command was initialised, not changed after.
        unsafe { (*self.cmd.as_ptr()).cpuid }
    }

    /// Tags the command with a backend value (stored in `se_cmd->priv`), which
    /// [`Backend::tmr_notify`] reports for aborted commands. 0 means untagged.
    pub fn set_tag(&mut self, tag: usize) {
        // SAFETY: `priv` belongs to the backend while it owns the command.
        unsafe { (*self.cmd.as_ptr()).priv_ = tag as *mut crate::ffi::c_void };
    }

    /// The tag set with [`PendingCmd::set_tag`].
    pub fn tag(&self) -> usize {
        // SAFETY: As in `set_tag`.
        unsafe { (*self.cmd.as_ptr()).priv_ as usize }
    }

    /// Lets a failed read still return data (`SCF_TREAT_READ_AS_NORMAL`).
    pub fn set_treat_read_as_normal(&mut self) {
        // SAFETY: The backend may set this flag on a command it owns before completing it.
        unsafe {
            (*self.cmd.as_ptr()).se_cmd_flags |=
                bindings::se_cmd_flags_table_SCF_TREAT_READ_AS_NORMAL
        };
    }
}

impl<T: Backend> Drop for PendingCmd<T> {
    fn drop(&mut self) {
        // SAFETY: The command is live and was not completed (completing consumes `self`).
        unsafe { bindings::target_complete_cmd(self.cmd.as_ptr(), SAM_STAT_CHECK_CONDITION) };
    }
}

/// The ops table and the backend data, at a fixed address while registered.
#[repr(C)]
#[pin_data]
struct RegInner<T: Backend> {
    #[pin]
    ops: Opaque<bindings::target_backend_ops>,
    data: T::Data,
}

/// A registered backend. Dropping it unregisters the backend (waiting for pending frees).
pub struct Registration<T: Backend> {
    inner: Pin<KBox<RegInner<T>>>,
    // The ops table points into these arrays; their heap buffers do not move with `Self`.
    _dev_attrs: AttrSet,
    _action_attrs: AttrSet,
    _p: PhantomData<T>,
}

// SAFETY: The ops table is only read by the target core after registration.
unsafe impl<T: Backend> Send for Registration<T> {}
// SAFETY: `&Registration` gives no access to anything.
unsafe impl<T: Backend> Sync for Registration<T> {}

fn copy_name<const N: usize>(dst: &mut [c_char; N], src: &CStr) -> Result {
    let src = src.as_bytes();
    if src.len() >= N {
        return Err(EINVAL);
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s as c_char;
    }
    Ok(())
}

impl<T: Backend> Registration<T> {
    /// Registers backend `T` with module-wide data `data`. Its devices get LIO's passthrough
    /// attributes (with the persistent reservation ones) plus [`Backend::DEV_ATTRS`] under
    /// `<dev>/attrib`, and
    /// [`Backend::ACTION_ATTRS`] under `<dev>/action`.
    ///
    /// Fails with `EEXIST` if a backend of the same name is registered already.
    // The address of a `static mut` takes `unsafe` before Rust 1.82 (6.12 supports 1.78).
    #[allow(unused_unsafe)]
    pub fn new(module: &'static ThisModule, data: T::Data) -> Result<Self> {
        let dev_attrs = AttrSet::new(
            module,
            // SAFETY: Only the addresses of the target core's attribute tables are taken.
            unsafe {
                &[
                    ptr::addr_of!(bindings::passthrough_attrib_attrs).cast(),
                    ptr::addr_of!(bindings::passthrough_pr_attrib_attrs).cast(),
                ]
            },
            T::DEV_ATTRS,
            &show_fns::<T, GROUP_ATTRIB>(),
            &store_fns::<T, GROUP_ATTRIB>(),
        )?;
        let action_attrs = AttrSet::new(
            module,
            &[],
            T::ACTION_ATTRS,
            &show_fns::<T, GROUP_ACTION>(),
            &store_fns::<T, GROUP_ACTION>(),
        )?;
        let inner = KBox::pin_init(
            pin_init!(RegInner::<T> {
                ops <- Opaque::ffi_init(|p: *mut bindings::target_backend_ops| {
                    // SAFETY: `p` is valid for writes of the ops table; all-zero is valid.
                    unsafe { p.write_bytes(0, 1) };
                }),
                data,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` was just zeroed and is not shared yet.
        let o = unsafe { &mut *inner.ops.get() };
        copy_name(&mut o.name, T::NAME)?;
        copy_name(&mut o.inquiry_prod, T::INQUIRY_PROD)?;
        copy_name(&mut o.inquiry_rev, T::INQUIRY_REV)?;
        o.owner = module.as_ptr();
        o.transport_flags_default = T::TRANSPORT_FLAGS_DEFAULT;
        o.transport_flags_changeable = T::TRANSPORT_FLAGS_CHANGEABLE;
        o.attach_hba = Some(attach_hba_cb::<T>);
        o.detach_hba = Some(detach_hba_cb::<T>);
        o.alloc_device = Some(alloc_device_cb::<T>);
        o.configure_device = Some(configure_device_cb::<T>);
        o.destroy_device = Some(destroy_device_cb::<T>);
        o.free_device = Some(free_device_cb::<T>);
        o.set_configfs_dev_params = Some(set_params_cb::<T>);
        o.show_configfs_dev_params = Some(show_params_cb::<T>);
        o.parse_cdb = Some(parse_cdb_cb::<T>);
        o.get_device_type = Some(device_type_cb::<T>);
        o.tmr_notify = Some(tmr_notify_cb::<T>);
        if T::PLUG {
            o.plug_device = Some(plug_device_cb::<T>);
            o.unplug_device = Some(unplug_device_cb::<T>);
        }
        o.get_blocks = Some(get_blocks_cb::<T>);
        o.tb_dev_attrib_attrs = dev_attrs.as_ptr();
        o.tb_dev_action_attrs = action_attrs.as_ptr();
        // SAFETY: `ops` is a fully initialised ops table that stays at a fixed address (pinned
        // box) until `Drop` unregisters it; `Hba::backend_data` relies on it being `RegInner`'s
        // first field.
        to_result(unsafe { bindings::transport_backend_register(inner.ops.get()) })?;
        Ok(Self {
            inner,
            _dev_attrs: dev_attrs,
            _action_attrs: action_attrs,
            _p: PhantomData,
        })
    }
}

impl<T: Backend> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: The ops table was registered in `new`. Unregistering waits (`rcu_barrier`) for
        // the RCU callbacks of freed devices, which run code of this module.
        unsafe { bindings::target_backend_unregister(self.inner.ops.get()) };
    }
}

/// A configfs attribute of a backend's devices.
#[derive(Clone, Copy, Debug)]
pub struct AttrDef {
    /// File name.
    pub name: &'static CStr,
    /// Whether it can be read.
    pub read: bool,
    /// Whether it can be written.
    pub write: bool,
}

impl AttrDef {
    /// A read-write attribute.
    pub const fn rw(name: &'static CStr) -> Self {
        Self {
            name,
            read: true,
            write: true,
        }
    }

    /// A read-only attribute.
    pub const fn ro(name: &'static CStr) -> Self {
        Self {
            name,
            read: true,
            write: false,
        }
    }

    /// A write-only attribute.
    pub const fn wo(name: &'static CStr) -> Self {
        Self {
            name,
            read: false,
            write: true,
        }
    }
}

/// Most attributes a backend may declare in each of [`Backend::DEV_ATTRS`] and
/// [`Backend::ACTION_ATTRS`].
pub const MAX_ATTRS: usize = 16;

/// The configfs attributes of one group and the NULL-terminated pointer array the target
/// core takes. The attributes are boxed, so their addresses do not change.
struct AttrSet {
    _attrs: KVec<KBox<Opaque<bindings::configfs_attribute>>>,
    ptrs: KVec<*mut bindings::configfs_attribute>,
}

type ShowFn = unsafe extern "C" fn(*mut bindings::config_item, *mut c_char) -> isize;
type StoreFn = unsafe extern "C" fn(*mut bindings::config_item, *const c_char, usize) -> isize;

impl AttrSet {
    fn new(
        module: &'static ThisModule,
        bases: &[*const *mut bindings::configfs_attribute],
        defs: &[AttrDef],
        show: &[ShowFn],
        store: &[StoreFn],
    ) -> Result<Self> {
        if defs.len() > MAX_ATTRS {
            return Err(EINVAL);
        }
        let mut attrs = KVec::new();
        let mut ptrs = KVec::new();
        for &base in bases {
            let mut i = 0;
            loop {
                // SAFETY: `base` is a NULL-terminated array exported by the built-in target
                // core, which never changes it; `i` stays within it.
                let a = unsafe { *base.add(i) };
                if a.is_null() {
                    break;
                }
                ptrs.push(a, GFP_KERNEL)?;
                i += 1;
            }
        }
        for (i, d) in defs.iter().enumerate() {
            // SAFETY: All-zero is an unset attribute; the fields are set below.
            let mut a: bindings::configfs_attribute = unsafe { core::mem::zeroed() };
            a.ca_name = d.name.as_char_ptr();
            a.ca_owner = module.as_ptr();
            a.ca_mode = (if d.read { 0o444 } else { 0 } | if d.write { 0o200 } else { 0 }) as _;
            // `Backend` builds `show` and `store` with an entry per attribute; a shorter
            // table is refused, not indexed past.
            a.show = if d.read {
                Some(*show.get(i).ok_or(EINVAL)?)
            } else {
                None
            };
            a.store = if d.write {
                Some(*store.get(i).ok_or(EINVAL)?)
            } else {
                None
            };
            let b = KBox::new(Opaque::new(a), GFP_KERNEL)?;
            ptrs.push(b.get(), GFP_KERNEL)?;
            attrs.push(b, GFP_KERNEL)?;
        }
        ptrs.push(ptr::null_mut(), GFP_KERNEL)?;
        Ok(Self {
            _attrs: attrs,
            ptrs,
        })
    }

    fn as_ptr(&self) -> *mut *mut bindings::configfs_attribute {
        self.ptrs.as_ptr().cast_mut()
    }
}

/// Which group an attribute callback belongs to.
const GROUP_ATTRIB: u8 = 0;
const GROUP_ACTION: u8 = 1;

/// Finds the device of a configfs item of its `attrib` or `action` group.
///
/// # Safety
///
/// `item` must be the item of the `attrib` (`GROUP_ATTRIB`) or `action` (`GROUP_ACTION`) group
/// of a live device of backend `T`.
unsafe fn item_device<'a, T: Backend, const G: u8>(
    item: *mut bindings::config_item,
) -> &'a Device<T> {
    // `cg_item` is the first field of `config_group`.
    let group = item.cast::<u8>();
    // SAFETY: By the safety requirements, the group is embedded in an `se_device` at the
    // offsets below.
    unsafe {
        let dev = if G == GROUP_ATTRIB {
            group
                .sub(core::mem::offset_of!(bindings::se_dev_attrib, da_group))
                .sub(core::mem::offset_of!(bindings::se_device, dev_attrib))
        } else {
            group.sub(core::mem::offset_of!(bindings::se_device, dev_action_group))
        };
        Device::from_raw(dev.cast())
    }
}

/// The one-page buffer of a configfs `show`: text through [`core::fmt::Write`], or bytes as
/// they are through [`ShowPage::write_bytes`] (C shows its strings byte for byte, UTF-8 or
/// not). Output past the page is cut, and the write that did not fit fails.
///
/// # Invariants
///
/// `len <= buf.len()`.
pub struct ShowPage<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl ShowPage<'_> {
    /// # Safety
    ///
    /// `page` must be valid for writes of `PAGE_SIZE` bytes, and used by nothing else, for
    /// the lifetime of the result.
    unsafe fn from_raw(page: *mut u8) -> Self {
        // SAFETY: As the caller promises.
        let buf = unsafe { core::slice::from_raw_parts_mut(page, PAGE_SIZE) };
        // INVARIANT: 0 <= any length.
        Self { buf, len: 0 }
    }

    /// Appends `bytes`, as many as fit.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> core::fmt::Result {
        let room = self.buf.get_mut(self.len..).unwrap_or_default();
        let n = bytes.len().min(room.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            // INVARIANT: `n` bytes fitted after `len`.
            self.len += n;
        }
        if n == bytes.len() {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }

    /// The number of bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl core::fmt::Write for ShowPage<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes())
    }
}

/// `show` of device attribute `ID` of group `G` (configfs).
///
/// # Safety
///
/// `item` is the `attrib` (or `action`) group item of a device of backend `T` that this
/// abstraction registered, and `page` a buffer of `PAGE_SIZE` bytes owned by the caller.
unsafe extern "C" fn attr_show_cb<T: Backend, const G: u8, const ID: usize>(
    item: *mut bindings::config_item,
    page: *mut c_char,
) -> isize {
    // SAFETY: configfs calls this for an attribute of group `G` of a live device.
    let dev = unsafe { item_device::<T, G>(item) };
    // SAFETY: configfs passes a buffer of `PAGE_SIZE` bytes, ours until we return.
    let mut f = unsafe { ShowPage::from_raw(page.cast()) };
    let r = if G == GROUP_ATTRIB {
        T::dev_attr_show(dev, ID, &mut f)
    } else {
        T::action_show(dev, ID, &mut f)
    };
    match r {
        Ok(()) => f.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `store` of device attribute `ID` of group `G` (configfs).
///
/// # Safety
///
/// `item` is as for [`attr_show_cb`]; `page` points to `count` readable bytes.
unsafe extern "C" fn attr_store_cb<T: Backend, const G: u8, const ID: usize>(
    item: *mut bindings::config_item,
    page: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: As in `attr_show_cb`.
    let dev = unsafe { item_device::<T, G>(item) };
    // SAFETY: configfs passes `count` bytes.
    let data = unsafe { core::slice::from_raw_parts(page.cast::<u8>(), count) };
    let data = c_string_part(data);
    let r = if G == GROUP_ATTRIB {
        T::dev_attr_store(dev, ID, data)
    } else {
        T::action_store(dev, ID, data)
    };
    match r {
        // The whole write was taken, terminator and all.
        Ok(_) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// What C code reads of a configfs store's page: the bytes before the first NUL. Writers such
/// as tcmu-runner include the terminator (`"1\0"`), and C's `kstrtou8(page)` or
/// `kstrdup(page)` stop there.
fn c_string_part(data: &[u8]) -> &[u8] {
    data.split(|&b| b == 0).next().unwrap_or(data)
}

macro_rules! attr_fns {
    ($f:ident, $t:ident, $g:expr, $($i:literal)*) => {
        [$($f::<$t, { $g }, $i>),*]
    };
}

fn show_fns<T: Backend, const G: u8>() -> [ShowFn; MAX_ATTRS] {
    attr_fns!(attr_show_cb, T, G, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
}

fn store_fns<T: Backend, const G: u8>() -> [StoreFn; MAX_ATTRS] {
    attr_fns!(attr_store_cb, T, G, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
}

/// `target_backend_ops::attach_hba`.
///
/// # Safety
///
/// `hba` is a valid HBA of backend `T` being attached, not yet shared by the target core.
unsafe extern "C" fn attach_hba_cb<T: Backend>(hba: *mut bindings::se_hba, host_id: u32) -> i32 {
    from_result(|| {
        let data = KBox::new(T::attach_hba(host_id)?, GFP_KERNEL)?;
        // SAFETY: The target core passes a valid HBA that it does not share before this returns.
        unsafe { (*hba).hba_ptr = KBox::into_raw(data).cast() };
        Ok(0)
    })
}

/// `target_backend_ops::detach_hba`.
///
/// # Safety
///
/// `hba` was attached by [`attach_hba_cb`] and is detached once, with no device left in it.
unsafe extern "C" fn detach_hba_cb<T: Backend>(hba: *mut bindings::se_hba) {
    // SAFETY: The HBA is valid; `hba_ptr` holds the box leaked by `attach_hba_cb`, and the target
    // core detaches an HBA only once, after all its devices are gone.
    unsafe {
        drop(KBox::from_raw((*hba).hba_ptr.cast::<T::HbaData>()));
        (*hba).hba_ptr = ptr::null_mut();
    }
}

/// `target_backend_ops::alloc_device`.
///
/// # Safety
///
/// `hba` is an HBA attached by [`attach_hba_cb`] and `name` a NUL-terminated string.
unsafe extern "C" fn alloc_device_cb<T: Backend>(
    hba: *mut bindings::se_hba,
    name: *const c_char,
) -> *mut bindings::se_device {
    // SAFETY: The target core passes an attached HBA of this backend.
    let hba = unsafe { Hba::<T>::from_raw(hba) };
    // SAFETY: `name` is the NUL-terminated configfs item name.
    let name = unsafe { CStr::from_char_ptr(name) };
    let init = try_pin_init!(Device::<T> {
        se_dev <- Opaque::ffi_init(|p: *mut bindings::se_device| {
            // SAFETY: An all-zero `se_device` is what the target core expects from a backend.
            unsafe { p.write_bytes(0, 1) };
        }),
        plug <- Opaque::ffi_init(|p: *mut bindings::se_dev_plug| {
            // SAFETY: Plain data, filled in by the target core when used.
            unsafe { p.write_bytes(0, 1) };
        }),
        data <- T::alloc_device(hba, name),
    }? Error);
    let Ok(dev) = KBox::pin_init(init, GFP_KERNEL) else {
        return ptr::null_mut();
    };
    // SAFETY: Ownership passes to the target core, which gives it back in `free_device_cb`; the
    // device is never moved, it is only reached through this pointer.
    let dev = KBox::into_raw(unsafe { Pin::into_inner_unchecked(dev) });
    // SAFETY: `dev` is valid; `se_dev` is a field of it.
    unsafe { Opaque::raw_get(ptr::addr_of!((*dev).se_dev)) }
}

/// `target_backend_ops::configure_device`.
///
/// # Safety
///
/// `dev` was allocated by [`alloc_device_cb`] and not yet freed.
unsafe extern "C" fn configure_device_cb<T: Backend>(dev: *mut bindings::se_device) -> i32 {
    // SAFETY: The target core passes a device allocated by `alloc_device_cb`.
    let dev = unsafe { Device::<T>::from_raw(dev) };
    from_result(|| T::configure_device(dev).map(|()| 0))
}

/// `target_backend_ops::destroy_device`.
///
/// # Safety
///
/// As for [`configure_device_cb`]; called once, after a successful configuration.
unsafe extern "C" fn destroy_device_cb<T: Backend>(dev: *mut bindings::se_device) {
    // SAFETY: As in `configure_device_cb`.
    T::destroy_device(unsafe { Device::<T>::from_raw(dev) });
}

/// `target_backend_ops::free_device`.
///
/// # Safety
///
/// `se_dev` was allocated by [`alloc_device_cb`]; the target core frees it once and uses it
/// no more, except under RCU until a grace period passes.
unsafe extern "C" fn free_device_cb<T: Backend>(se_dev: *mut bindings::se_device) {
    let off = core::mem::offset_of!(Device<T>, se_dev);
    // SAFETY: `se_dev` is the `se_dev` field of a `Device<T>` leaked by `alloc_device_cb`.
    let dev = unsafe { se_dev.cast::<u8>().sub(off).cast::<Device<T>>() };
    // SAFETY: `dev` is valid; the target core makes no further backend calls for it.
    T::free_device(unsafe { &*dev });
    // SAFETY: The backend data is dropped exactly once, here; only the `se_device` (which the
    // target core may still read under RCU) stays alive until `free_device_rcu`.
    unsafe { ptr::drop_in_place(ptr::addr_of_mut!((*dev).data)) };
    // SAFETY: `rcu_head` belongs to the device and is not in use by anyone else.
    unsafe {
        bindings::call_rcu(
            ptr::addr_of_mut!((*se_dev).callback_head),
            Some(free_device_rcu::<T>),
        )
    };
}

/// The RCU callback that frees a device after [`free_device_cb`].
///
/// # Safety
///
/// `head` is the `callback_head` of a device's `se_device` passed to `call_rcu` by
/// [`free_device_cb`]; a grace period has passed.
unsafe extern "C" fn free_device_rcu<T: Backend>(head: *mut bindings::callback_head) {
    let off = core::mem::offset_of!(Device<T>, se_dev)
        + core::mem::offset_of!(bindings::se_device, callback_head);
    // SAFETY: `head` is the `rcu_head` of the `se_dev` of a `Device<T>` (see `free_device_cb`),
    // whose data was dropped already: free the memory without dropping anything again.
    unsafe {
        let dev = head.cast::<u8>().sub(off).cast::<MaybeUninit<Device<T>>>();
        drop(KBox::from_raw(dev));
    }
}

/// `target_backend_ops::set_configfs_dev_params` (the `control` attribute).
///
/// # Safety
///
/// As for [`configure_device_cb`]; `page` points to `count` readable bytes.
unsafe extern "C" fn set_params_cb<T: Backend>(
    dev: *mut bindings::se_device,
    page: *const c_char,
    count: isize,
) -> isize {
    // SAFETY: As in `configure_device_cb`.
    let dev = unsafe { Device::<T>::from_raw(dev) };
    let Ok(len) = usize::try_from(count) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: configfs passes a buffer holding `count` bytes.
    let params = unsafe { core::slice::from_raw_parts(page.cast::<u8>(), len) };
    match T::set_params(dev, c_string_part(params)) {
        Ok(_) => count,
        Err(e) => e.to_errno() as isize,
    }
}

/// `target_backend_ops::show_configfs_dev_params` (the `info` attribute).
///
/// # Safety
///
/// As for [`configure_device_cb`]; `page` is a buffer of `PAGE_SIZE` bytes.
unsafe extern "C" fn show_params_cb<T: Backend>(
    dev: *mut bindings::se_device,
    page: *mut c_char,
) -> isize {
    // SAFETY: As in `configure_device_cb`.
    let dev = unsafe { Device::<T>::from_raw(dev) };
    // SAFETY: configfs passes a buffer of `PAGE_SIZE` bytes, ours until we return.
    let mut f = unsafe { ShowPage::from_raw(page.cast()) };
    // Output longer than a page is cut; what fitted is returned.
    let _ = T::show_params(dev, &mut f);
    f.len() as isize
}

/// `target_backend_ops::parse_cdb`.
///
/// # Safety
///
/// `cmd` is a live command of a device of backend `T`, being set up by the target core.
unsafe extern "C" fn parse_cdb_cb<T: Backend>(cmd: *mut bindings::se_cmd) -> SenseReason {
    // SAFETY: The target core passes a live command; the passthrough parser emulates what LIO
    // handles itself and sets `execute_cb` as the command's `execute_cmd` for the rest.
    unsafe { bindings::passthrough_parse_cdb(cmd, Some(execute_cb::<T>)) }
}

/// `se_cmd::execute_cmd`, set by [`parse_cdb_cb`].
///
/// # Safety
///
/// `cmd` is a live command of a device of backend `T` that the target core hands over until
/// it is completed.
unsafe extern "C" fn execute_cb<T: Backend>(cmd: *mut bindings::se_cmd) -> SenseReason {
    let Some(cmd) = NonNull::new(cmd) else {
        return TCM_UNSUPPORTED_SCSI_OPCODE;
    };
    // The target core hands the command over: it waits for a completion (or a nonzero
    // return, in which case it fails the command itself).
    let pending = PendingCmd::<T> {
        cmd,
        _p: PhantomData,
    };
    // SAFETY: The command's device is a `Device<T>`; it is valid during this call (see the
    // contract of `Backend::execute`).
    let dev = unsafe { Device::<T>::from_raw((*cmd.as_ptr()).se_dev) };
    match T::execute(dev, pending) {
        Ok(()) => TCM_NO_SENSE,
        Err(Rejected(p, reason)) => {
            // The target core completes a command whose execution failed: do not.
            core::mem::forget(p);
            reason
        }
    }
}

/// `target_backend_ops::plug_device`.
///
/// # Safety
///
/// As for [`configure_device_cb`].
unsafe extern "C" fn plug_device_cb<T: Backend>(
    se_dev: *mut bindings::se_device,
) -> *mut bindings::se_dev_plug {
    // SAFETY: As in `configure_device_cb`.
    let dev = unsafe { Device::<T>::from_raw(se_dev) };
    if T::plug(dev) {
        // The backend allows one plug at a time: the target core has this one to itself
        // until it passes it to `unplug_device_cb`.
        dev.plug.get()
    } else {
        ptr::null_mut()
    }
}

/// `target_backend_ops::unplug_device`.
///
/// # Safety
///
/// `se_plug` was returned by [`plug_device_cb`] and is unplugged once.
unsafe extern "C" fn unplug_device_cb<T: Backend>(se_plug: *mut bindings::se_dev_plug) {
    // SAFETY: `se_plug` is a plug returned by `plug_device_cb`, whose `se_dev` the target
    // core set to its device (and holds a reference to until this returns).
    let dev = unsafe { Device::<T>::from_raw((*se_plug).se_dev) };
    T::unplug(dev);
}

/// `target_backend_ops::tmr_notify`.
///
/// # Safety
///
/// As for [`configure_device_cb`]; `list` is the target core's list of the commands the
/// task management function aborts, valid and not changed during the call.
unsafe extern "C" fn tmr_notify_cb<T: Backend>(
    se_dev: *mut bindings::se_device,
    tmf: bindings::tcm_tmreq_table,
    list: *mut bindings::list_head,
) {
    // SAFETY: As in `configure_device_cb`.
    let dev = unsafe { Device::<T>::from_raw(se_dev) };
    let off = core::mem::offset_of!(bindings::se_cmd, state_list);
    let mut pos = list;
    let mut tags = core::iter::from_fn(|| {
        // SAFETY: The target core passes a list of aborted commands (linked by `state_list`)
        // that it does not change during this call.
        unsafe {
            pos = (*pos).next;
            if pos == list {
                return None;
            }
            let cmd = pos.cast::<u8>().sub(off).cast::<bindings::se_cmd>();
            Some((*cmd).priv_ as usize)
        }
    });
    T::tmr_notify(dev, Tmf::from_raw(tmf), &mut tags);
}

/// `target_backend_ops::get_device_type`.
///
/// # Safety
///
/// As for [`configure_device_cb`].
unsafe extern "C" fn device_type_cb<T: Backend>(dev: *mut bindings::se_device) -> u32 {
    // SAFETY: As in `configure_device_cb`.
    T::device_type(unsafe { Device::<T>::from_raw(dev) })
}

/// `target_backend_ops::get_blocks`.
///
/// # Safety
///
/// As for [`configure_device_cb`].
unsafe extern "C" fn get_blocks_cb<T: Backend>(
    dev: *mut bindings::se_device,
) -> bindings::sector_t {
    // SAFETY: As in `configure_device_cb`.
    T::last_lba(unsafe { Device::<T>::from_raw(dev) })
}
