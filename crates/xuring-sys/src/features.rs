//! `Features`: what a ring on this kernel can do, from probes, optionally masked down to an
//! older kernel's level.

use crate::{CancelFlags, FeatureFlags, KernelLevel, OpSet, Opcode, SetupFlags};

/// What a ring can do: the kernel's feature bits, the opcodes it implements and the setup
/// flags the ring was created with, all clamped to [`level`](Self::level).
///
/// Built from `io_uring_params.features`, `IORING_REGISTER_PROBE` and the setup flags the
/// kernel accepted: never from the kernel's version string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `IORING_FEAT_*` bits.
    pub flags: FeatureFlags,
    /// Supported opcodes.
    pub ops: OpSet,
    /// The setup flags the ring was created with.
    pub setup: SetupFlags,
    /// The `ASYNC_CANCEL` flags the kernel accepts (probed at setup).
    pub cancel: CancelFlags,
    /// The level everything above was clamped to.
    pub level: KernelLevel,
}

impl Features {
    /// Clamps probed values to `level`: whatever that kernel did not have is removed.
    pub fn from_probe(
        flags: FeatureFlags,
        ops: OpSet,
        setup: SetupFlags,
        cancel: CancelFlags,
        level: KernelLevel,
    ) -> Features {
        Features {
            flags: flags.clamp(level),
            ops: ops.clamp(level),
            setup: setup.clamp(level),
            cancel: cancel.clamp(level),
            level,
        }
    }

    /// Everything xuring knows of, at `Native` level: what a kernel-free backend reports.
    pub fn everything() -> Features {
        Features {
            flags: FeatureFlags::all(),
            ops: OpSet::all(),
            setup: SetupFlags::empty(),
            cancel: CancelFlags::all(),
            level: KernelLevel::Native,
        }
    }

    /// Whether `op` can be submitted.
    #[inline]
    pub fn supports(&self, op: Opcode) -> bool {
        self.ops.contains(op)
    }

    /// Whether the kernel reported `flag`.
    #[inline]
    pub fn has(&self, flag: FeatureFlags) -> bool {
        self.flags.contains(flag)
    }

    /// Whether the ring was created with `flag`.
    #[inline]
    pub fn has_setup(&self, flag: SetupFlags) -> bool {
        self.setup.contains(flag)
    }

    /// These features reduced further to `level` (never raised).
    pub fn clamp(self, level: KernelLevel) -> Features {
        let level = self.level.min(level);
        Features::from_probe(self.flags, self.ops, self.setup, self.cancel, level)
    }
}
