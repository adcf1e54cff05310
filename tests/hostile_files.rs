//! Model folders that claim what they cannot deliver, or are not files at all: each is an error
//! at load that names the file and field, never a panic, an endless read or a silent wrong model.

mod common;

use std::path::Path;

use common::{RawTensor, edit_json, files, fixture_dir, rewrite_safetensors};
use safetensors::Dtype;
use serde_json::json;
use zeroshot::{Checkpoint, CpuBackend, ModelFiles, Options, ZeroShotClassifier};

fn load_error(files: ModelFiles) -> String {
    match Checkpoint::load(files) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// typeform-layout with its config.json edited.
fn with_config(edit: impl FnOnce(&mut serde_json::Value)) -> ModelFiles {
    let f = files("typeform-layout");
    ModelFiles { config_json: edit_json(&f.config_json, edit), ..f }
}

/// tokenizer-json with its tokenizer.json edited.
fn with_tokenizer_json(edit: impl FnOnce(&mut serde_json::Value)) -> ModelFiles {
    let f = files("tokenizer-json");
    let json = edit_json(f.tokenizer_json.as_deref().unwrap(), edit);
    ModelFiles { tokenizer_json: Some(json), ..f }
}

#[test]
fn config_claims_are_checked_against_what_can_run() {
    let one_class = with_config(|v| {
        v["id2label"] = json!({"0": "ENTAILMENT"});
        v["label2id"] = json!({"ENTAILMENT": 0});
    });
    let msg = load_error(one_class);
    assert!(msg.starts_with("config.json: id2label names 1 label"), "{msg}");
    let msg = load_error(with_config(|v| v["max_position_embeddings"] = json!(1_000_000)));
    assert!(msg.starts_with("config.json: max_position_embeddings is 1000000; at most 8194"), "{msg}");
}

#[test]
fn layers_beyond_n_layers_mean_a_truncated_model() {
    let msg = load_error(with_config(|v| v["n_layers"] = json!(1)));
    assert!(msg.contains("n_layers is 1, but model.safetensors has distilbert.transformer.layer.1."), "{msg}");
    // Other unused tensors stay accepted, as transformers only warns about them.
    let f = files("typeform-layout");
    let extra = rewrite_safetensors(&f.model_safetensors, |t| {
        let data = vec![0u8; 8];
        t.push(("distilbert.transformer.extra.bias".into(), RawTensor { dtype: Dtype::F32, shape: vec![2], data }));
    });
    Checkpoint::load(ModelFiles { model_safetensors: extra, ..f }).expect("an extra tensor is ignored");
}

#[test]
fn non_finite_weights_are_named_at_load() {
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let f = files("f16-relu"); // f16 weights: the check runs after conversion
        let bytes = rewrite_safetensors(&f.model_safetensors, |tensors| {
            let (_, t) =
                tensors.iter_mut().find(|(n, _)| n == "distilbert.transformer.layer.2.ffn.lin2.weight").unwrap();
            t.data[6..8].copy_from_slice(&half::f16::from_f32(value).to_le_bytes());
        });
        let msg = load_error(ModelFiles { model_safetensors: bytes, ..f });
        assert_eq!(
            msg,
            format!(
                "model.safetensors: tensor distilbert.transformer.layer.2.ffn.lin2.weight holds a non-finite value ({shown}) at index 3"
            )
        );
    }
}

/// Finite weights whose products overflow: the text gets an error naming the label, not "NaN"
/// scores, and the classifier goes on working.
#[test]
fn overflowing_logits_are_an_error_for_that_text() {
    let f = files("typeform-layout");
    let bytes = rewrite_safetensors(&f.model_safetensors, |tensors| {
        let (_, t) = tensors.iter_mut().find(|(n, _)| n == "classifier.weight").unwrap();
        t.data = [3.0e38f32; 48].iter().flat_map(|v| v.to_le_bytes()).collect();
    });
    let checkpoint = Checkpoint::load(ModelFiles { model_safetensors: bytes, ..f }).expect("finite weights load");
    let mut c = ZeroShotClassifier::new(checkpoint, CpuBackend::new(1)).unwrap();
    let labels = vec!["sports".to_string(), "food".to_string()];
    for _ in 0..2 {
        let err = pollster::block_on(c.classify("a text", &labels, &Options::default())).unwrap_err().to_string();
        assert!(err.starts_with("the model's logits for label \"sports\" are not finite"), "{err}");
    }
}

#[test]
fn tokenizer_claims_are_checked() {
    for (max, ok) in [(-1, false), (0, false), (4, false), (5, true)] {
        let tc = format!("{{\"model_max_length\": {max}}}").into_bytes();
        let result = Checkpoint::load(ModelFiles { tokenizer_config_json: Some(tc), ..files("typeform-layout") });
        match result {
            Ok(c) => assert!(ok && c.tokenizer.max_len() == 5, "{max}"),
            Err(e) => assert!(
                !ok && e.to_string().starts_with(&format!("tokenizer_config.json: model_max_length is {max}")),
                "{max}: {e}"
            ),
        }
    }
    let msg = load_error(with_tokenizer_json(|v| v["post_processor"] = serde_json::Value::Null));
    assert!(
        msg.starts_with("tokenizer.json: post_processor must put a pair as special tokens, A, special tokens, B"),
        "{msg}"
    );
    let msg = load_error(with_tokenizer_json(|v| v["model"]["unk_token"] = json!("[NOPE]")));
    assert_eq!(msg, "tokenizer.json: model.unk_token \"[NOPE]\" is not in the vocabulary");
    let msg = load_error(with_tokenizer_json(|v| v["model"]["max_input_chars_per_word"] = json!(1_000_000_000)));
    assert!(msg.starts_with("tokenizer.json: model.max_input_chars_per_word is 1000000000; above 100"), "{msg}");
}

/// A copy of typeform-layout whose `file` is replaced by what `make` puts at that path.
fn folder_with(file: &str, make: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir("typeform-layout")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if name != file {
            std::fs::copy(&path, dir.path().join(name)).unwrap();
        }
    }
    make(&dir.path().join(file));
    dir
}

#[cfg(unix)]
#[test]
fn only_regular_files_of_a_sane_size_are_read() {
    let check = |file: &str, make: &dyn Fn(&Path), expected: &str| {
        let dir = folder_with(file, make);
        let msg = match Checkpoint::from_dir(dir.path()) {
            Ok(_) => panic!("{file}: expected an error"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(&format!("{file}: ")) && msg.contains(expected), "{msg}");
    };
    let not_regular = "not a regular file";
    check("model.safetensors", &|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(), not_regular);
    check("vocab.txt", &|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(), not_regular);
    let fifo = |p: &Path| assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success());
    check("config.json", &fifo, not_regular);
    // A sparse 300 MB config.json: refused from its size, without reading it.
    let sparse = |p: &Path| std::fs::File::create(p).unwrap().set_len(300 << 20).unwrap();
    check("config.json", &sparse, "over the 268435456-byte limit");
}
