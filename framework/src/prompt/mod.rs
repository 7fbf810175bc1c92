//! Prompts: templates filled with examples, verbalizers mapping classes to label tokens,
//! and padded batches ready for the model. Plain data in, plain data out: no files, no
//! configuration, no tensors.

pub mod batch;
pub mod template;
pub mod truncate;
pub mod verbalizer;

pub use batch::Batch;
pub use template::{Encoded, Template, TemplateError};
pub use truncate::{LengthLimit, Truncate};
pub use verbalizer::{Verbalizer, VerbalizerError};
