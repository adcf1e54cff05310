//! Token ids equal transformers' for every recorded input of every fixture, through both the
//! tokenizer.json and the vocab.txt paths.

mod common;

use common::{FIXTURES, files, reference};
use zeroshot::tokenizer::TokenizerFiles;
use zeroshot::{Checkpoint, Config, NliTokenizer};

/// Compares every token record of `reference_of` against `tokenizer`; panics listing each mismatch.
fn assert_parity(tokenizer: &NliTokenizer, reference_of: &str) {
    let reference = reference(reference_of);
    let records = reference["tokens"].as_array().expect("tokens");
    assert!(records.len() >= 60, "{reference_of}: only {} token records", records.len());
    // No max_length: transformers cuts nothing (a model of relative positions only); zeroshot
    // takes pairs up to its own bound whole.
    let max_length = reference["max_length"].as_u64().unwrap_or(zeroshot::config::MAX_RELATIVE_TOKENS as u64);
    assert_eq!(tokenizer.max_len() as u64, max_length, "{reference_of}: max_len");
    let mut failures = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let (premise, hypothesis) = (r["premise"].as_str().unwrap(), r["hypothesis"].as_str().unwrap());
        let expected: Vec<u32> = r["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got = tokenizer.encode_pair(premise, hypothesis).expect("encodes");
        if got.ids != expected || got.truncated != r["truncated"].as_bool().unwrap() {
            failures.push(format!(
                "record {i} ({premise:.40?} | {hypothesis:?}):\n  actual   {:?} truncated={}\n  expected {:?} truncated={}",
                got.ids, got.truncated, expected, r["truncated"]
            ));
        }
        // Token types where transformers hands the model some (BERT); elsewhere every type is 0.
        let types: Vec<u32> = match r.get("type_ids").filter(|_| tokenizer.reads_token_types()) {
            Some(t) => t.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect(),
            None => vec![0; got.ids.len()],
        };
        if got.type_ids != types {
            failures.push(format!("record {i}: token types {:?}, expected {types:?}", got.type_ids));
        }
    }
    assert!(failures.is_empty(), "{reference_of}: {} mismatches\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_fixture_matches_transformers() {
    for name in FIXTURES {
        let checkpoint = Checkpoint::load(files(name)).expect("loads");
        assert_parity(&checkpoint.tokenizer, name);
    }
}

/// The vocab.txt path must give what tokenizer.json gives (and vice versa) for the same limits.
#[test]
fn both_tokenizer_paths_agree_with_transformers() {
    let from_json = files("tokenizer-json").tokenizer_json.expect("has tokenizer.json");
    let from_vocab = files("typeform-layout").vocab_txt.expect("has vocab.txt");
    for (name, json, vocab) in
        [("typeform-layout", Some(&from_json), None), ("tokenizer-json", None, Some(&from_vocab))]
    {
        let f = files(name);
        let config = Config::from_json(&f.config_json).unwrap();
        let tok_files = TokenizerFiles {
            tokenizer_json: json.map(|v| &v[..]),
            vocab_txt: vocab.map(|v| &v[..]),
            ..f.tokenizer_files()
        };
        let tok = NliTokenizer::new(tok_files, &config).expect("tokenizer");
        assert_parity(&tok, name);
    }
}

#[test]
fn truncation_is_reported_and_respects_the_limit() {
    let checkpoint = Checkpoint::load(files("tokenizer-json")).unwrap();
    let long = "word ".repeat(500);
    let enc = checkpoint.tokenizer.encode_pair(&long, "This example is politics.").unwrap();
    assert!(enc.truncated);
    assert_eq!(enc.ids.len(), 64);
    let short = checkpoint.tokenizer.encode_pair("short text", "This example is politics.").unwrap();
    assert!(!short.truncated);
    assert_eq!(short.ids.len(), 10, "{:?}", short.ids);
}
