//! Helpers shared by the integration tests: fixture paths, reference records, file surgery.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use zeroshot::ModelFiles;

/// The committed fixture checkpoints (see tests/fixtures/generate.py).
pub const FIXTURES: [&str; 3] = ["typeform-layout", "tokenizer-json", "f16-relu"];

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// transformers' outputs for one fixture.
pub fn reference(name: &str) -> Value {
    let path = fixture_dir(&format!("{name}.reference.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

pub fn files(name: &str) -> ModelFiles {
    ModelFiles::from_dir(&fixture_dir(name)).expect("fixture loads")
}

/// A JSON document with `edit` applied, as bytes.
pub fn edit_json(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(bytes).expect("JSON");
    edit(&mut value);
    serde_json::to_vec(&value).expect("JSON")
}

/// A tensor as it goes into a rewritten safetensors file.
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl safetensors::View for &RawTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Rewrites a safetensors file: `edit` may rename, change or drop tensors, or add new ones.
pub fn rewrite_safetensors(bytes: &[u8], edit: impl FnOnce(&mut Vec<(String, RawTensor)>)) -> Arc<Vec<u8>> {
    let file = safetensors::SafeTensors::deserialize(bytes).expect("safetensors");
    let mut tensors: Vec<(String, RawTensor)> = file
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            (
                name,
                RawTensor {
                    dtype: v.dtype(),
                    shape: v.shape().to_vec(),
                    data: v.data().to_vec(),
                },
            )
        })
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, &RawTensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    Arc::new(safetensors::serialize(views, None).expect("serialize"))
}
