//! zeroshot: zero-shot text classification with NLI encoder checkpoints (DistilBERT, BERT, RoBERTa,
//! XLM-RoBERTa, DeBERTa-v2/v3: `typeform/distilbert-base-uncased-mnli` and its kin), in the browser
//! and natively.
//!
//! Load path: [`files::ModelFiles`] (bytes of a Hub-layout folder) -> [`files::Checkpoint`]
//! ([`config::Config`] + [`weights::Weights`] + [`tokenizer::NliTokenizer`]), every part checked
//! against the others before anything runs. Then [`pipeline::ZeroShotClassifier`] runs
//! [`model::Encoder`] on a [`backend::Backend`] (CPU, or GPU through wgpu).

pub mod backend;
pub mod config;
pub mod convert;
pub mod error;
pub mod explain;
pub mod family;
pub mod files;
pub mod model;
pub mod pipeline;
pub mod relative;
pub mod synthetic;
pub mod template;
pub mod tokenizer;
// The browser binding offers both backends.
#[cfg(all(target_arch = "wasm32", feature = "gpu"))]
pub mod wasm;
pub mod weights;

pub use backend::cpu::CpuBackend;
pub use config::{Activation, Config};
pub use error::{Error, Result};
pub use explain::Explanation;
pub use files::{Checkpoint, ModelFiles};
pub use pipeline::{Classification, Options, ZeroShotClassifier};
pub use tokenizer::{NliTokenizer, PairEncoding};
pub use weights::Weights;
