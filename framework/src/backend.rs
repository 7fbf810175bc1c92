//! The one place a backend is chosen: [`with_backend!`](crate::with_backend) binds a type to
//! the autodiff backend named by a [`BackendKind`](crate::config::BackendKind) and runs generic
//! code with it; everything below is generic over burn's `Backend`.

/// `with_backend!(kind, B, device, missing_cuda_error, body)`: evaluates `body` with type `B`
/// bound to `Autodiff<NdArray>`, `Autodiff<Flex>` or `Autodiff<Cuda>` and `device` to its default
/// device. Without the `cuda` feature, `BackendKind::Cuda` evaluates `missing_cuda_error` instead.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, $B:ident, $device:ident, $missing_cuda:expr, $body:expr) => {{
        match $kind {
            $crate::config::BackendKind::Ndarray => {
                type $B = burn::backend::Autodiff<burn::backend::NdArray>;
                let $device: burn::tensor::Device<$B> = Default::default();
                $body
            }
            $crate::config::BackendKind::Flex => {
                type $B = burn::backend::Autodiff<burn::backend::Flex>;
                let $device: burn::tensor::Device<$B> = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::config::BackendKind::Cuda => {
                type $B = burn::backend::Autodiff<burn::backend::Cuda>;
                let $device: burn::tensor::Device<$B> = Default::default();
                $body
            }
            #[cfg(not(feature = "cuda"))]
            $crate::config::BackendKind::Cuda => $missing_cuda,
        }
    }};
}

/// Whether `engine` runs the search's hot loop on the host engine for `backend` (the
/// run-time counterpart of [`crate::search::Engine::uses_host`]).
pub fn host_engine_runs(
    backend: crate::config::BackendKind,
    engine: crate::search::Engine,
) -> bool {
    crate::with_backend!(
        backend,
        B,
        _device,
        false,
        engine.uses_host::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>()
    )
}

/// Whether `B` computes on the host CPU (ndarray, flex), where the search's hot loop runs on
/// the host engine ([`crate::lm::host`]) instead of burn's op-by-op kernels.
pub fn runs_on_host<B: burn::tensor::backend::Backend>() -> bool {
    use std::any::TypeId;
    let id = TypeId::of::<B>();
    id == TypeId::of::<burn::backend::NdArray>() || id == TypeId::of::<burn::backend::Flex>()
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
