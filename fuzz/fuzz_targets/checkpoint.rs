//! A model folder's bytes through `Checkpoint::load`, and what loads through one classification.
//! Input: config.json, model.safetensors, a tokenizer file (tokenizer.json if it starts with `{`,
//! else vocab.txt), an optional tokenizer_config.json and an optional merges.txt (then the
//! tokenizer file is RoBERTa's vocab.json), each ended by SEP (see make_seeds.py).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use zeroshot::{Checkpoint, CpuBackend, ModelFiles, Options, ZeroShotClassifier};
use zeroshot_fuzz::classify_and_check;

const SEP: &[u8] = b"\n\x00--\x00\n";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let parts = split(data);
    let [config, weights, tokenizer, rest @ ..] = &parts[..] else { return };
    let merges = rest.get(1).map(|m| m.to_vec());
    let is_json = tokenizer.first() == Some(&b'{') && merges.is_none();
    let files = ModelFiles {
        config_json: config.to_vec(),
        model_safetensors: Arc::new(weights.to_vec()),
        tokenizer_json: is_json.then(|| tokenizer.to_vec()),
        vocab_txt: (!is_json && merges.is_none()).then(|| tokenizer.to_vec()),
        vocab_json: merges.is_some().then(|| tokenizer.to_vec()),
        merges_txt: merges,
        tokenizer_config_json: rest.first().map(|t| t.to_vec()),
    };
    let Ok(checkpoint) = Checkpoint::load(files) else { return };
    let Ok(mut c) = ZeroShotClassifier::new(checkpoint, CpuBackend::new(1)) else { return };
    let labels = vec!["sports".to_string(), "food".to_string()];
    classify_and_check(&mut c, "the text is about food", &labels, &Options::default());
});
