//! `zeroshot convert`: the f16 and int8 files it writes, how close their scores stay to fp32,
//! that int8 stays int8 on the CPU, and what a damaged int8 file gets. Exactness against torch on
//! the dequantised weights is checked with the other fixtures (`typeform-layout-int8` and
//! `-f16` are in `common::FIXTURES`).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{RawTensor, files, fixture_dir, reference, rewrite_safetensors};
use safetensors::{Dtype, SafeTensors};
use zeroshot::backend::Backend;
use zeroshot::convert::{WeightFormat, convert, convert_dir};
use zeroshot::{Checkpoint, CpuBackend, Error, Options, ZeroShotClassifier};

fn weights_of(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// The committed converted fixtures are what the converter writes, byte for byte (the output is
/// deterministic: tensors and metadata in a fixed order).
#[test]
fn the_committed_converted_fixtures_are_what_convert_writes() {
    for format in [WeightFormat::F16, WeightFormat::Int8] {
        let dst = tempfile::tempdir().unwrap();
        convert_dir(&fixture_dir("typeform-layout"), &dst.path().join("m"), format).unwrap();
        let committed = fixture_dir(&format!("typeform-layout-{}", format.name()));
        assert!(weights_of(&dst.path().join("m")) == weights_of(&committed), "{} differs", format.name());
        for file in ["config.json", "vocab.txt", "tokenizer_config.json"] {
            assert_eq!(
                std::fs::read(dst.path().join("m").join(file)).unwrap(),
                std::fs::read(committed.join(file)).unwrap()
            );
        }
    }
}

/// Which tensor is stored how, with the metadata transformers needs (`format: pt`).
#[test]
fn converted_files_hold_what_the_format_says() {
    let src = files("typeform-layout").model_safetensors;
    let int8 = convert(&src, WeightFormat::Int8).unwrap();
    let f16 = convert(&src, WeightFormat::F16).unwrap();
    for (bytes, name) in [(&int8, "int8"), (&f16, "f16")] {
        let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!((meta["format"].as_str(), meta["zeroshot_weights"].as_str()), ("pt", name));
    }
    let file = SafeTensors::deserialize(&int8).unwrap();
    let lin1 = file.tensor("distilbert.transformer.layer.0.ffn.lin1.weight").unwrap();
    assert_eq!((lin1.dtype(), lin1.shape()), (Dtype::I8, &[40, 16][..]));
    let scale = file.tensor("distilbert.transformer.layer.0.ffn.lin1.weight_scale").unwrap();
    assert_eq!((scale.dtype(), scale.shape()), (Dtype::F32, &[40][..]));
    assert_eq!(file.tensor("distilbert.embeddings.word_embeddings.weight").unwrap().dtype(), Dtype::I8);
    for kept in ["distilbert.embeddings.position_embeddings.weight", "distilbert.transformer.layer.0.ffn.lin1.bias"] {
        assert_eq!(file.tensor(kept).unwrap().dtype(), Dtype::F32, "{kept}");
    }
    let all_f16 = SafeTensors::deserialize(&f16).unwrap().tensors().iter().all(|(_, t)| t.dtype() == Dtype::F16);
    assert!(all_f16, "every tensor of the f16 file is F16");
    // The word embedding dominates this tiny model: 16 int8 values + a 4-byte scale per word.
    assert!(
        int8.len() * 3 < src.len() && f16.len() * 2 <= src.len() + 8192,
        "{} {} {}",
        src.len(),
        int8.len(),
        f16.len()
    );
    let again = convert(&src, WeightFormat::Int8).unwrap();
    assert!(again == int8, "the converter is deterministic");
}

/// An f16 file's word embedding, which is only gathered, is kept as f16, read in place (the
/// Linears are widened to f32 on the CPU); an fp32 one is read in place too.
#[test]
fn the_word_embedding_is_never_widened_or_copied() {
    for name in ["typeform-layout-f16", "typeform-layout"] {
        let checkpoint = Checkpoint::load(files(name)).unwrap();
        let words = &checkpoint.weights.embeddings.word_embeddings;
        assert!(words.is_borrowed(), "{name}: the word embedding is read in place");
        let bytes = match words.values() {
            zeroshot::weights::Values::F16(halves) => halves.len(),
            zeroshot::weights::Values::F32(values) => values.len() * 4,
            _ => panic!("{name}: the word embedding is neither f16 nor f32"),
        };
        let per_value = if name.ends_with("f16") { 2 } else { 4 };
        assert_eq!(bytes, words.shape.iter().product::<usize>() * per_value, "{name}");
    }
}

/// An f16 word embedding kept as stored is still checked value by value: a NaN is refused by name.
#[test]
fn a_nan_in_an_f16_word_embedding_is_refused() {
    let f = files("typeform-layout-f16");
    let weights = common::rewrite_safetensors(&f.model_safetensors, |tensors| {
        let (_, t) = tensors.iter_mut().find(|(n, _)| n.ends_with("word_embeddings.weight")).unwrap();
        t.data[10..12].copy_from_slice(&half::f16::NAN.to_le_bytes());
    });
    let err = Checkpoint::load(zeroshot::ModelFiles { model_safetensors: weights, ..f }).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("word_embeddings.weight holds a non-finite value (NaN) at index 5"), "{msg}");
}

/// int8 weights are kept as int8, read in place from the file, by the loader and the CPU backend.
#[test]
fn the_cpu_keeps_int8_weights_as_int8() {
    let checkpoint = Checkpoint::load(files("typeform-layout-int8")).unwrap();
    let layer = &checkpoint.weights.layers[0];
    assert!(layer.attention.qkv.weight.is_int8(), "q | k | v concatenated stays int8");
    assert!(
        checkpoint.weights.embeddings.word_embeddings.is_int8()
            && checkpoint.weights.embeddings.word_embeddings.is_borrowed()
    );
    let mut weights = checkpoint.weights;
    let lin1 = weights.layers.remove(0).ffn.up;
    assert!(lin1.weight.is_int8() && lin1.weight.is_borrowed());
    let kept = CpuBackend::new(1).load_linear(lin1).unwrap();
    assert!(kept.weight.is_int8(), "the CPU backend holds int8 weights as int8");
    assert!(kept.weight.data().is_err(), "an f32-only op refuses int8 with an error");
}

/// Every family's Linears and word embedding become int8; the position and token-type tables,
/// which the embedding reads as f32, stay f32; the int8 copy loads with its weights int8.
#[test]
fn every_family_converts_its_linears_to_int8() {
    let deberta_tables = ["embeddings.position_embeddings.weight", "encoder.rel_embeddings.weight"];
    for (name, prefix) in
        [("bert-vocab", "bert"), ("roberta-bpe", "roberta"), ("xlmr-unigram", "roberta"), ("deberta-v2-abs", "deberta")]
    {
        let int8 = convert(&files(name).model_safetensors, WeightFormat::Int8).unwrap();
        let file = SafeTensors::deserialize(&int8).unwrap();
        let dtype = |t: &str| file.tensor(t).unwrap_or_else(|_| panic!("{name}: no {t}")).dtype();
        let query = if prefix == "deberta" { "query_proj" } else { "query" };
        for t in [
            &format!("encoder.layer.0.attention.self.{query}.weight")[..],
            "encoder.layer.1.output.dense.weight",
            "embeddings.word_embeddings.weight",
        ] {
            assert_eq!(dtype(&format!("{prefix}.{t}")), Dtype::I8, "{name} {t}");
        }
        let tables = ["embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"];
        for t in if prefix == "deberta" { deberta_tables } else { tables } {
            assert_eq!(dtype(&format!("{prefix}.{t}")), Dtype::F32, "{name} {t}");
        }
        let head = match prefix {
            "bert" => "bert.pooler.dense.weight",
            "deberta" => "pooler.dense.weight",
            _ => "classifier.out_proj.weight",
        };
        assert_eq!(dtype(head), Dtype::I8, "{name} {head}");
        let checkpoint =
            Checkpoint::load(zeroshot::ModelFiles { model_safetensors: Arc::new(int8), ..files(name) }).unwrap();
        assert!(checkpoint.weights.layers[1].ffn.down.weight.is_int8() && checkpoint.weights.pooler.weight.is_int8());
    }
}

/// Largest score difference from transformers' fp32 outputs over every pipeline case of a
/// fixture, and whether the top label agrees, for a converted copy.
fn drift(name: &str, format: WeightFormat) -> (f64, usize, usize) {
    let dst = tempfile::tempdir().unwrap();
    convert_dir(&fixture_dir(name), dst.path(), format).unwrap();
    let mut classifier =
        ZeroShotClassifier::new(Checkpoint::from_dir(dst.path()).unwrap(), CpuBackend::new(1)).unwrap();
    let (mut worst, mut agree, mut cases) = (0.0f64, 0, 0);
    for case in reference(name)["pipeline"].as_array().unwrap() {
        let labels: Vec<String> =
            case["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().into()).collect();
        let options = Options {
            hypothesis_template: case["template"].as_str().unwrap().into(),
            multi_label: case["multi_label"].as_bool().unwrap(),
        };
        let got = pollster::block_on(classifier.classify(case["text"].as_str().unwrap(), &labels, &options)).unwrap();
        let want = &case["expected"];
        for (label, score) in want["labels"].as_array().unwrap().iter().zip(want["scores"].as_array().unwrap()) {
            let at = got.labels.iter().position(|l| l == label.as_str().unwrap()).unwrap();
            worst = worst.max((got.scores[at] - score.as_f64().unwrap()).abs());
        }
        agree += usize::from(got.labels[0] == want["labels"][0].as_str().unwrap());
        cases += 1;
    }
    (worst, agree, cases)
}

/// f16 and int8 copies of every fixture against transformers' fp32 scores. Bounds from the
/// measured drift (printed), with room: f16 moves scores by at most 4.6e-3 and keeps every top
/// label; int8 moves them by up to 5.7e-2 and swaps 2 of 15 top labels (near ties) on these
/// tiny models, whose 16- to 24-wide rows get the coarsest per-row scales
/// (`bench/agreement.py` measures the full-size model on a 600-text corpus).
#[test]
fn converted_fixtures_stay_close_to_fp32() {
    let families =
        ["bert-vocab", "roberta-bpe", "roberta-json", "xlmr-unigram", "deberta-v3", "deberta-v2-abs", "deberta-c2p"];
    for name in ["typeform-layout", "tokenizer-json", "f16-relu"].into_iter().chain(families) {
        for (format, tol, min_agree) in [(WeightFormat::F16, 1e-2, 1.0), (WeightFormat::Int8, 0.1, 0.8)] {
            let (worst, agree, cases) = drift(name, format);
            println!("{name} {}: max |dscore| {worst:.2e}, top-1 {agree}/{cases}", format.name());
            assert!(worst <= tol, "{name} {}: max |dscore| {worst}, over {tol}", format.name());
            assert!(agree as f64 >= min_agree * cases as f64, "{name} {}: top-1 {agree}/{cases}", format.name());
        }
    }
}

fn load_err(bytes: Arc<Vec<u8>>) -> String {
    let mut f = files("typeform-layout");
    f.model_safetensors = bytes;
    match Checkpoint::load(f) {
        Ok(_) => panic!("a damaged int8 file loaded"),
        Err(e) => e.to_string(),
    }
}

/// Edits one tensor of the int8 fixture, by name.
fn int8_with(edit: impl FnOnce(&mut Vec<(String, RawTensor)>)) -> Arc<Vec<u8>> {
    rewrite_safetensors(&files("typeform-layout-int8").model_safetensors, edit)
}

const LIN1: &str = "distilbert.transformer.layer.0.ffn.lin1.weight";

#[test]
fn damaged_int8_files_are_refused_by_name() {
    let dropped = int8_with(|t| t.retain(|(n, _)| n != &format!("{LIN1}_scale")));
    assert!(load_err(dropped).contains(&format!("no tensor {LIN1}_scale")));
    let short = int8_with(|t| {
        let s = &mut t.iter_mut().find(|(n, _)| n == &format!("{LIN1}_scale")).unwrap().1;
        s.shape = vec![39];
        s.data.truncate(39 * 4);
    });
    assert!(load_err(short).contains("has shape [39], expected [40]"));
    for (value, message) in [(-1.0f32, "must be finite and not negative"), (f32::NAN, "non-finite value")] {
        let bad = int8_with(|t| {
            let s = &mut t.iter_mut().find(|(n, _)| n == &format!("{LIN1}_scale")).unwrap().1;
            s.data[8..12].copy_from_slice(&value.to_le_bytes());
        });
        let err = load_err(bad);
        assert!(err.contains(message) && err.contains("_scale"), "{err}");
    }
    let ln = "distilbert.transformer.layer.0.sa_layer_norm.weight";
    let int8_ln = int8_with(|t| {
        let w = &mut t.iter_mut().find(|(n, _)| n == ln).unwrap().1;
        (w.dtype, w.data) = (Dtype::I8, vec![1; 16]);
    });
    let err = load_err(int8_ln);
    assert!(err.contains(ln) && err.contains("dtype I8"), "{err}");
}

#[test]
fn convert_refuses_what_it_cannot_write_faithfully() {
    let int8 = files("typeform-layout-int8").model_safetensors;
    let err = convert(&int8, WeightFormat::F16).unwrap_err();
    assert!(matches!(err, Error::Convert(_)) && err.to_string().contains("already int8"), "{err}");
    let huge = rewrite_safetensors(&files("typeform-layout").model_safetensors, |t| {
        let w = &mut t.iter_mut().find(|(n, _)| n == LIN1).unwrap().1;
        w.data[4..8].copy_from_slice(&1e6f32.to_le_bytes());
    });
    let err = convert(&huge, WeightFormat::F16).unwrap_err().to_string();
    assert!(err.contains(LIN1) && err.contains("beyond f16's range"), "{err}");
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(dst.path().join("model.safetensors"), b"keep me").unwrap();
    let err = convert_dir(&fixture_dir("typeform-layout"), dst.path(), WeightFormat::Int8).unwrap_err().to_string();
    assert!(err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(dst.path().join("model.safetensors")).unwrap(), b"keep me");
}
