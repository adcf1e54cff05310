//! Model folders and tokenizer inputs that cannot work give a clear error, never a panic.

mod common;

use std::path::Path;

use common::{edit_json, files, fixture_dir};
use serde_json::json;
use zeroshot::tokenizer::TokenizerFiles;
use zeroshot::{Checkpoint, Config, ModelFiles, NliTokenizer};

/// A copy of a fixture folder in a temporary directory, minus `drop`.
fn copy_fixture(name: &str, drop: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if !drop.contains(&file.as_str()) {
            std::fs::copy(&path, dir.path().join(file)).unwrap();
        }
    }
    dir
}

fn dir_error(dir: &Path) -> String {
    match Checkpoint::from_dir(dir) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn pytorch_only_folder_says_how_to_get_safetensors() {
    let dir = copy_fixture("typeform-layout", &["model.safetensors"]);
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not read").unwrap();
    let msg = dir_error(dir.path());
    assert!(msg.contains("has pytorch_model.bin but no model.safetensors"), "{msg}");
    assert!(msg.contains("save_pretrained") && msg.contains("refs/pr/3"), "{msg}");
}

#[test]
fn missing_files_are_named() {
    let dir = copy_fixture("typeform-layout", &["model.safetensors"]);
    assert!(dir_error(dir.path()).ends_with("has no model.safetensors"));
    let dir = copy_fixture("typeform-layout", &["config.json"]);
    assert!(dir_error(dir.path()).ends_with("has no config.json"));
    let dir = copy_fixture("typeform-layout", &["vocab.txt"]);
    assert!(dir_error(dir.path()).ends_with(
        "has no tokenizer: it needs tokenizer.json, vocab.txt (BERT), or vocab.json and merges.txt (RoBERTa); \
         XLM-R and DeBERTa need tokenizer.json"
    ));
    let msg = dir_error(Path::new("/nonexistent/model"));
    assert!(msg.contains("/nonexistent/model has no model.safetensors"), "{msg}");
}

#[test]
fn unreadable_file_gives_an_io_error() {
    let dir = copy_fixture("typeform-layout", &["tokenizer_config.json"]);
    std::fs::create_dir(dir.path().join("tokenizer_config.json")).unwrap();
    let msg = dir_error(dir.path());
    assert!(msg.starts_with("cannot read ") && msg.contains("tokenizer_config.json"), "{msg}");
}

#[test]
fn broken_tokenizer_files_are_refused() {
    let config = Config::from_json(&files("typeform-layout").config_json).unwrap();
    let err = |json: Option<&[u8]>, vocab: Option<&[u8]>, tc: Option<&[u8]>| match NliTokenizer::new(
        TokenizerFiles { tokenizer_json: json, vocab_txt: vocab, tokenizer_config: tc, ..Default::default() },
        &config,
    ) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    assert!(err(Some(b"{\"version\": "), None, None).starts_with("tokenizer: tokenizer.json: "));
    assert_eq!(err(None, Some(b"hello\nworld\n"), None), "tokenizer: vocab.txt has no [SEP] token");
    assert!(err(None, Some(b"\xff\xfe"), None).contains("vocab.txt is not UTF-8"));
    assert!(err(None, None, None).contains("neither tokenizer.json nor vocab.txt"));
    let vocab = files("typeform-layout").vocab_txt.unwrap();
    assert!(err(None, Some(&vocab), Some(b"[1, 2]")).starts_with("tokenizer_config.json is not valid JSON"));
}

#[test]
fn a_hypothesis_that_leaves_no_room_is_an_error() {
    let checkpoint = Checkpoint::load(files("f16-relu")).unwrap(); // 40 tokens at most
    let long_label = format!("This example is {}.", "very ".repeat(40));
    let err = checkpoint.tokenizer.encode_pair("some text", &long_label).unwrap_err().to_string();
    assert!(err.contains("takes 47 tokens with the special tokens") && err.contains("40-token limit"), "{err}");
    // Exactly filling the limit leaves the premise nothing: also refused, as transformers does.
    let exact = format!("This example is {}.", "very ".repeat(33));
    let err = checkpoint.tokenizer.encode_pair("some text", &exact).unwrap_err().to_string();
    assert!(err.contains("takes 40 tokens"), "{err}");
    // One token shorter fits, with the premise cut to one token.
    let fits = format!("This example is {}.", "very ".repeat(32));
    let enc = checkpoint.tokenizer.encode_pair("some text", &fits).unwrap();
    assert_eq!((enc.ids.len(), enc.truncated), (40, true));
}

#[test]
fn token_ids_beyond_the_model_vocabulary_are_refused() {
    let f = files("typeform-layout");
    let small = edit_json(&f.config_json, |v| v["vocab_size"] = json!(2000));
    let config = Config::from_json(&small).unwrap();
    let tok = NliTokenizer::new(TokenizerFiles { tokenizer_json: None, ..f.tokenizer_files() }, &config).unwrap();
    let err = tok.encode_pair("zebra", "This example is fun.").unwrap_err().to_string();
    assert!(err.contains("outside the model's vocabulary of 2000"), "{err}");
    assert!(tok.encode_pair("a", ".").is_ok(), "ids below 2000 are fine");
}

#[test]
fn model_max_length_above_the_position_table_is_capped() {
    let f = files("typeform-layout");
    let config = Config::from_json(&edit_json(&f.config_json, |v| v["max_position_embeddings"] = json!(100))).unwrap();
    let tok = NliTokenizer::new(TokenizerFiles { tokenizer_json: None, ..f.tokenizer_files() }, &config).unwrap();
    assert_eq!(tok.max_len(), 100);
    let huge = br#"{"model_max_length": 1000000000000000019884624838656}"#;
    let tok =
        NliTokenizer::new(TokenizerFiles { tokenizer_config: Some(huge), ..f.tokenizer_files() }, &config).unwrap();
    assert_eq!(tok.max_len(), 100);
    let files_only = ModelFiles { tokenizer_config_json: None, ..files("typeform-layout") };
    assert_eq!(Checkpoint::load(files_only).unwrap().tokenizer.max_len(), 512);
}

/// A DeBERTa repo without tokenizer.json (only the SentencePiece spm.model, which zeroshot does
/// not read) is refused naming the file it needs, and so is one given a vocab.txt.
#[test]
fn a_deberta_without_tokenizer_json_names_the_file() {
    let dir = copy_fixture("deberta-v3", &["tokenizer.json"]);
    std::fs::write(dir.path().join("spm.model"), b"a SentencePiece protobuf").unwrap();
    let msg = dir_error(dir.path());
    assert!(msg.contains("has no tokenizer") && msg.contains("DeBERTa need tokenizer.json"), "{msg}");
    let f = files("deberta-v3");
    let config = Config::from_json(&f.config_json).unwrap();
    let vocab_only = TokenizerFiles { tokenizer_json: None, vocab_txt: Some(b"[PAD]\n[UNK]\n"), ..f.tokenizer_files() };
    let err = NliTokenizer::new(vocab_only, &config).err().expect("refused").to_string();
    assert!(err.contains("a DeBERTa needs tokenizer.json"), "{err}");
    let bpe = std::fs::read(fixture_dir("roberta-json").join("tokenizer.json")).unwrap();
    let err = NliTokenizer::new(TokenizerFiles { tokenizer_json: Some(&bpe), ..f.tokenizer_files() }, &config)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("is not a Unigram (SentencePiece) model"), "{err}");
}

/// Where transformers cuts nothing (relative positions only, no model_max_length: deberta-v3),
/// a pair over zeroshot's bound is refused with the reason, never cut; where model_max_length
/// binds (deberta-c2p: 512) the text is cut as transformers cuts it.
#[test]
fn a_text_too_long_for_an_uncut_model_is_refused_not_cut() {
    let limit = zeroshot::config::MAX_RELATIVE_TOKENS;
    let uncut = Checkpoint::load(files("deberta-v3")).unwrap().tokenizer;
    assert_eq!(uncut.max_len(), limit);
    let long = "word ".repeat(limit);
    let err = uncut.encode_pair(&long, "This example is politics.").unwrap_err().to_string();
    assert!(
        err.contains(&format!("over the {limit} zeroshot takes at once")) && err.contains("would not cut"),
        "{err}"
    );
    let fits = uncut.encode_pair(&"word ".repeat(limit / 8), "This example is politics.").unwrap();
    assert!(!fits.truncated && fits.ids.len() <= limit);
    let cut = Checkpoint::load(files("deberta-c2p")).unwrap().tokenizer;
    let enc = cut.encode_pair(&long, "This example is politics.").unwrap();
    assert_eq!((enc.ids.len(), enc.truncated), (512, true));
    // A model_max_length of exactly zeroshot's bound is transformers' cut, and so is zeroshot's.
    let f = files("deberta-v3");
    let config = Config::from_json(&f.config_json).unwrap();
    let at_bound = format!(r#"{{"model_max_length": {limit}, "tokenizer_class": "DebertaV2Tokenizer"}}"#);
    let tok = NliTokenizer::new(
        TokenizerFiles { tokenizer_config: Some(at_bound.as_bytes()), ..f.tokenizer_files() },
        &config,
    )
    .unwrap();
    let enc = tok.encode_pair(&long, "This example is politics.").unwrap();
    assert_eq!((enc.ids.len(), enc.truncated), (limit, true));
}
