// SPDX-License-Identifier: GPL-2.0

//! Generic netlink families.
//!
//! A driver describes its family with [`Family`] and registers it with [`Registration`],
//! which owns the family's data. Requests (`doit` operations) reach [`Family::doit`] with the
//! family data and an [`Info`] giving typed access to the validated attributes; multicast
//! events are built with [`Message`].
//!
//! C header: [`include/net/genetlink.h`](srctree/include/net/genetlink.h)

use crate::{
    alloc::Flags,
    bindings,
    error::{from_result, to_result, Result},
    ffi::{c_char, c_int},
    prelude::*,
    str::CStr,
    types::Opaque,
    ThisModule,
};
use core::{marker::PhantomData, ptr::NonNull};

/// Type of an attribute in a family's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    /// `NLA_U8`.
    U8,
    /// `NLA_U32`.
    U32,
    /// `NLA_S32`.
    S32,
    /// `NLA_STRING` (NUL-terminated).
    String,
}

impl AttrType {
    fn raw(self) -> u8 {
        (match self {
            AttrType::U8 => bindings::NLA_U8,
            AttrType::U32 => bindings::NLA_U32,
            AttrType::S32 => bindings::NLA_S32,
            AttrType::String => bindings::NLA_STRING,
        }) as u8
    }
}

/// An operation of a family.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// The command number.
    pub cmd: u8,
    /// Whether only `CAP_NET_ADMIN` may send it (`GENL_ADMIN_PERM`).
    pub admin: bool,
}

/// A generic netlink family: its description and its request handler.
pub trait Family: Send + Sync + Sized + 'static {
    /// The family name (at most 15 bytes).
    const NAME: &'static CStr;
    /// The family version.
    const VERSION: u32;
    /// Attribute types by attribute number (index 0 is unused).
    const POLICY: &'static [Option<AttrType>];
    /// The operations accepted.
    const OPS: &'static [Op];
    /// Multicast group names; events are sent to a group by its index here.
    const MCGRPS: &'static [&'static CStr];

    /// Handles request `cmd`, whose attributes were validated against [`Family::POLICY`].
    fn doit(&self, cmd: u8, info: &Info<'_>) -> Result;
}

/// A received request.
pub struct Info<'a> {
    info: &'a bindings::genl_info,
    maxattr: usize,
}

impl Info<'_> {
    fn attr(&self, n: u16) -> Option<*const bindings::nlattr> {
        if usize::from(n) > self.maxattr || self.info.attrs.is_null() {
            return None;
        }
        // SAFETY: `attrs` has `maxattr + 1` entries, filled by the netlink core.
        let a = unsafe { *self.info.attrs.add(n.into()) };
        (!a.is_null()).then_some(a.cast_const())
    }

    /// Whether attribute `n` is present.
    pub fn has(&self, n: u16) -> bool {
        self.attr(n).is_some()
    }

    /// Attribute `n` as a `u8` (validated as `NLA_U8` by the policy).
    pub fn u8(&self, n: u16) -> Option<u8> {
        // SAFETY: The netlink core validated the attribute's type and length.
        self.attr(n).map(|a| unsafe { bindings::nla_get_u8(a) })
    }

    /// Attribute `n` as a `u32` (validated as `NLA_U32` by the policy).
    pub fn u32(&self, n: u16) -> Option<u32> {
        // SAFETY: As in `u8`.
        self.attr(n).map(|a| unsafe { bindings::nla_get_u32(a) })
    }

    /// Attribute `n` as an `i32` (validated as `NLA_S32` by the policy).
    pub fn s32(&self, n: u16) -> Option<i32> {
        // SAFETY: As in `u8`.
        self.attr(n).map(|a| unsafe { bindings::nla_get_s32(a) })
    }
}

/// The family structure and data, at a fixed address while registered.
#[repr(C)]
#[pin_data]
struct RegInner<T: Family> {
    #[pin]
    family: Opaque<bindings::genl_family>,
    data: T,
}

/// A registered family. Dropping it unregisters the family.
pub struct Registration<T: Family> {
    inner: Pin<KBox<RegInner<T>>>,
    _ops: KVec<bindings::genl_small_ops>,
    _policy: KVec<bindings::nla_policy>,
    _mcgrps: KVec<bindings::genl_multicast_group>,
}

// SAFETY: The C structures are immutable once registered; `T` is `Send + Sync`.
unsafe impl<T: Family> Send for Registration<T> {}
// SAFETY: As above.
unsafe impl<T: Family> Sync for Registration<T> {}

fn copy_name(dst: &mut [c_char; 16], src: &CStr) -> Result {
    let src = src.as_bytes();
    if src.len() >= dst.len() {
        return Err(EINVAL);
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
    Ok(())
}

impl<T: Family> Registration<T> {
    /// Registers the family `T` with data `data`.
    pub fn new(module: &'static ThisModule, data: T) -> Result<Self> {
        let flags = GFP_KERNEL;
        // SAFETY: All-zero is a valid "unset" value of these plain C structures.
        let zero_op: bindings::genl_small_ops = unsafe { core::mem::zeroed() };
        let mut ops = KVec::with_capacity(T::OPS.len(), flags)?;
        for op in T::OPS {
            let mut o = zero_op;
            o.cmd = op.cmd;
            o.flags = if op.admin {
                bindings::GENL_ADMIN_PERM as u8
            } else {
                0
            };
            o.validate = (bindings::genl_validate_flags_GENL_DONT_VALIDATE_STRICT
                | bindings::genl_validate_flags_GENL_DONT_VALIDATE_DUMP)
                as u8;
            o.doit = Some(doit_cb::<T>);
            ops.push(o, flags)?;
        }
        // SAFETY: As above.
        let zero_pol: bindings::nla_policy = unsafe { core::mem::zeroed() };
        let mut policy = KVec::with_capacity(T::POLICY.len().max(1), flags)?;
        for p in T::POLICY {
            let mut e = zero_pol;
            if let Some(t) = p {
                e.type_ = t.raw();
            }
            policy.push(e, flags)?;
        }
        if policy.is_empty() {
            policy.push(zero_pol, flags)?;
        }
        // SAFETY: As above.
        let zero_grp: bindings::genl_multicast_group = unsafe { core::mem::zeroed() };
        let mut mcgrps = KVec::with_capacity(T::MCGRPS.len(), flags)?;
        for name in T::MCGRPS {
            let mut g = zero_grp;
            copy_name(&mut g.name, name)?;
            mcgrps.push(g, flags)?;
        }

        let inner = KBox::pin_init(
            pin_init!(RegInner::<T> {
                family <- Opaque::ffi_init(|p: *mut bindings::genl_family| {
                    // SAFETY: `p` is valid for writes; all-zero is the unset family.
                    unsafe { p.write_bytes(0, 1) };
                }),
                data,
            }),
            flags,
        )?;
        // SAFETY: The family was just zeroed and is not shared yet.
        let f = unsafe { &mut *inner.family.get() };
        copy_name(&mut f.name, T::NAME)?;
        f.version = T::VERSION;
        f.maxattr = (policy.len() - 1) as u32;
        f.policy = policy.as_ptr();
        f.set_netnsok(1);
        f.small_ops = ops.as_ptr();
        f.n_small_ops = u8::try_from(ops.len()).map_err(|_| EINVAL)?;
        f.resv_start_op = T::OPS
            .iter()
            .map(|o| o.cmd)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        f.mcgrps = mcgrps.as_ptr();
        f.n_mcgrps = u8::try_from(mcgrps.len()).map_err(|_| EINVAL)?;
        f.module = module.as_ptr();
        // SAFETY: The family and the arrays it points to live at fixed addresses (boxed and
        // vector buffers owned by `Self`) until `Drop` unregisters it.
        to_result(unsafe { bindings::genl_register_family(inner.family.get()) })?;
        Ok(Self {
            inner,
            _ops: ops,
            _policy: policy,
            _mcgrps: mcgrps,
        })
    }

    /// The family data.
    pub fn data(&self) -> &T {
        &self.inner.data
    }

    /// Starts an event message for command `cmd`.
    pub fn message(&self, cmd: u8, flags: Flags) -> Result<Message<'_, T>> {
        // SAFETY: FFI call; the size fits our small messages.
        let skb =
            NonNull::new(unsafe { bindings::genlmsg_new(1024, flags.as_raw()) }).ok_or(ENOMEM)?;
        // SAFETY: `skb` is a new message and the family is registered.
        let hdr =
            unsafe { bindings::genlmsg_put(skb.as_ptr(), 0, 0, self.inner.family.get(), 0, cmd) };
        if hdr.is_null() {
            // SAFETY: `skb` is ours and was not sent.
            unsafe { bindings::nlmsg_free(skb.as_ptr()) };
            return Err(ENOMEM);
        }
        Ok(Message {
            reg: self,
            skb,
            hdr,
            _p: PhantomData,
        })
    }
}

impl<T: Family> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`. Unregistering waits for running operations.
        unsafe { bindings::genl_unregister_family(self.inner.family.get()) };
    }
}

/// A netlink message being built; dropping it without sending frees it.
pub struct Message<'a, T: Family> {
    reg: &'a Registration<T>,
    skb: NonNull<bindings::sk_buff>,
    hdr: *mut crate::ffi::c_void,
    _p: PhantomData<T>,
}

impl<T: Family> Message<'_, T> {
    /// Adds a `u32` attribute.
    pub fn put_u32(&mut self, attr: u16, v: u32) -> Result {
        // SAFETY: `skb` is a message under construction, owned by `self`.
        to_result(unsafe { bindings::nla_put_u32(self.skb.as_ptr(), attr.into(), v) })
    }

    /// Adds a `u8` attribute.
    pub fn put_u8(&mut self, attr: u16, v: u8) -> Result {
        // SAFETY: As in `put_u32`.
        to_result(unsafe { bindings::nla_put_u8(self.skb.as_ptr(), attr.into(), v) })
    }

    /// Adds a `u64` attribute, aligned with padding attribute `pad`.
    pub fn put_u64(&mut self, attr: u16, v: u64, pad: u16) -> Result {
        // SAFETY: As in `put_u32`.
        to_result(unsafe {
            bindings::nla_put_u64_64bit(self.skb.as_ptr(), attr.into(), v, pad.into())
        })
    }

    /// Adds a NUL-terminated string attribute.
    pub fn put_string(&mut self, attr: u16, s: &CStr) -> Result {
        // SAFETY: As in `put_u32`; `s` is NUL-terminated.
        to_result(unsafe {
            bindings::nla_put_string(self.skb.as_ptr(), attr.into(), s.as_char_ptr())
        })
    }

    /// Sends the message to multicast group `group` (an index into [`Family::MCGRPS`]) in all
    /// network namespaces. Fails with `ESRCH` if nobody listens.
    pub fn multicast(self, group: u32) -> Result {
        let skb = self.skb.as_ptr();
        let family = self.reg.inner.family.get();
        // SAFETY: The message is complete; ending it fixes up its length.
        unsafe { bindings::genlmsg_end(skb, self.hdr) };
        core::mem::forget(self);
        // SAFETY: The family is registered; the call consumes `skb` in all cases.
        to_result(unsafe { bindings::genlmsg_multicast_allns(family, skb, 0, group) })
    }
}

impl<T: Family> Drop for Message<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The message was not sent (sending forgets `self`).
        unsafe { bindings::nlmsg_free(self.skb.as_ptr()) };
    }
}

/// `genl_ops::doit` of an operation of family `T`.
///
/// # Safety
///
/// `info` is the request being processed, with its attributes parsed by the netlink core
/// against the family's policy; the family is registered.
unsafe extern "C" fn doit_cb<T: Family>(
    _skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    from_result(|| {
        // SAFETY: The netlink core passes a valid request for our family, whose `family`
        // pointer is the first field (`repr(C)`) of our `RegInner<T>`, registered (so alive)
        // while operations run.
        let (info, inner, cmd) = unsafe {
            let info = &*info;
            let inner = &*info.family.cast::<RegInner<T>>();
            (info, inner, (*info.genlhdr).cmd)
        };
        // SAFETY: Registered family: `maxattr` is what we set.
        let maxattr = unsafe { (*inner.family.get()).maxattr } as usize;
        inner.data.doit(cmd, &Info { info, maxattr })?;
        Ok(0)
    })
}
