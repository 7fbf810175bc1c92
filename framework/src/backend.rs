//! The one place a backend is chosen: [`with_backend!`](crate::with_backend) binds a type to
//! the autodiff backend named by a [`BackendKind`] and runs generic
//! code with it; everything below is generic over burn's `Backend`.

use serde::{Deserialize, Serialize};

/// `with_backend!(kind, B, device, missing_cuda_error, body)`: evaluates `body` with type `B`
/// bound to `Autodiff<NdArray>`, `Autodiff<Flex>` or `Autodiff<Cuda>` and `device` to its default
/// device. Without the `cuda` feature, `BackendKind::Cuda` evaluates `missing_cuda_error` instead.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, $B:ident, $device:ident, $missing_cuda:expr, $body:expr) => {{
        match $kind {
            $crate::backend::BackendKind::Ndarray => {
                type $B = burn::backend::Autodiff<burn::backend::NdArray>;
                let $device: burn::tensor::Device<$B> = Default::default();
                $body
            }
            $crate::backend::BackendKind::Flex => {
                type $B = burn::backend::Autodiff<burn::backend::Flex>;
                let $device: burn::tensor::Device<$B> = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                type $B = burn::backend::Autodiff<burn::backend::Cuda>;
                let $device: burn::tensor::Device<$B> = Default::default();
                $body
            }
            #[cfg(not(feature = "cuda"))]
            $crate::backend::BackendKind::Cuda => $missing_cuda,
        }
    }};
}

/// Which burn backend runs the cells. Chosen once, at the top ([`with_backend!`](crate::with_backend)); everything below is generic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// burn-ndarray on the CPU (default).
    #[default]
    Ndarray,
    /// burn-flex on the CPU.
    Flex,
    /// burn-cuda (needs the `cuda` cargo feature and an NVIDIA GPU).
    Cuda,
}

/// A backend this binary cannot run on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend `{}` is not available: {reason}", backend.name())]
pub struct BackendUnavailable {
    pub backend: BackendKind,
    pub reason: &'static str,
}

/// The error for `backend = "cuda"` in a binary built without the `cuda` feature.
pub fn no_cuda() -> BackendUnavailable {
    BackendUnavailable {
        backend: BackendKind::Cuda,
        reason: "this binary was built without the `cuda` feature (cargo build --features cuda)",
    }
}

impl BackendKind {
    /// Whether this backend computes on the host CPU (ndarray, flex), where the search's hot
    /// loop runs on the host engine by default ([`crate::search::Engine::resolve`]).
    pub fn runs_on_host(self) -> bool {
        matches!(self, BackendKind::Ndarray | BackendKind::Flex)
    }

    /// The name an experiment file uses (`ndarray`, `flex`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Cuda => "cuda",
        }
    }

    /// The kind of burn backend `B` is (with or without autodiff); `None` for a backend this
    /// crate does not choose itself.
    pub fn of<B: burn::tensor::backend::Backend>() -> Option<Self> {
        use burn::backend::{Autodiff, Flex, NdArray};
        use std::any::TypeId;
        let id = TypeId::of::<B>();
        let is = |a: TypeId, b: TypeId| id == a || id == b;
        if is(TypeId::of::<NdArray>(), TypeId::of::<Autodiff<NdArray>>()) {
            return Some(BackendKind::Ndarray);
        }
        if is(TypeId::of::<Flex>(), TypeId::of::<Autodiff<Flex>>()) {
            return Some(BackendKind::Flex);
        }
        #[cfg(feature = "cuda")]
        {
            use burn::backend::Cuda;
            if is(TypeId::of::<Cuda>(), TypeId::of::<Autodiff<Cuda>>()) {
                return Some(BackendKind::Cuda);
            }
        }
        None
    }
}

/// Runs `f` with burn's random generator seeded with `seed` and held by this thread alone.
///
/// burn draws initialisation and dropout from one generator per backend, shared by every
/// thread: two cells seeding and drawing from it side by side (`run --jobs N`) would
/// interleave their draws, and their results would depend on thread timing. Every cell that
/// seeds it holds this lock from the seed to its last draw, so each cell sees exactly the
/// stream it would see running alone (cells that draw nothing never wait).
pub fn with_seeded_rng<B: burn::tensor::backend::Backend, T>(
    device: &B::Device,
    seed: u64,
    f: impl FnOnce() -> T,
) -> T {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A panic elsewhere leaves the generator's state meaningless but harmless: we reseed.
    let _held = RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    B::seed(device, seed);
    f()
}
