//! (text, labels, template, multi-label) through the tiny model's classifier.
//! Input: a flags byte (bit 0: multi-label), then `template\nlabels\ntext` as UTF-8; labels are
//! comma-separated, as the CLI and the page take them.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use zeroshot::pipeline::parse_labels;
use zeroshot::{Checkpoint, CpuBackend, ModelFiles, Options, ZeroShotClassifier};
use zeroshot_fuzz::classify_and_check;

fn tiny() -> ZeroShotClassifier<CpuBackend> {
    let files = ModelFiles {
        config_json: include_bytes!("../tiny-model/config.json").to_vec(),
        model_safetensors: Arc::new(include_bytes!("../tiny-model/model.safetensors").to_vec()),
        tokenizer_json: None,
        vocab_txt: Some(include_bytes!("../tiny-model/vocab.txt").to_vec()),
        vocab_json: None,
        merges_txt: None,
        tokenizer_config_json: Some(include_bytes!("../tiny-model/tokenizer_config.json").to_vec()),
    };
    let checkpoint = Checkpoint::load(files).expect("the tiny model loads");
    ZeroShotClassifier::new(checkpoint, CpuBackend::new(1)).expect("the tiny model builds")
}

thread_local! {
    static CLASSIFIER: RefCell<ZeroShotClassifier<CpuBackend>> = RefCell::new(tiny());
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Ok(rest) = std::str::from_utf8(rest) else { return };
    let mut parts = rest.splitn(3, '\n');
    let (Some(template), Some(labels), Some(text)) = (parts.next(), parts.next(), parts.next()) else { return };
    let options = Options { hypothesis_template: template.to_string(), multi_label: flags & 1 == 1 };
    let labels = parse_labels(labels);
    CLASSIFIER.with_borrow_mut(|c| classify_and_check(c, text, &labels, &options));
});
