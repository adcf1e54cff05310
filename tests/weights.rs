//! model.safetensors: every tensor checked against the config, dtypes converted, names with and
//! without the `distilbert.` prefix, extra tensors ignored, F32 read in place.

mod common;

use std::sync::Arc;

use common::{RawTensor, files, rewrite_safetensors};
use safetensors::Dtype;
use zeroshot::{Config, Weights};

fn typeform() -> (Config, Arc<Vec<u8>>) {
    let f = files("typeform-layout");
    (Config::from_json(&f.config_json).unwrap(), f.model_safetensors)
}

fn load_err(bytes: Arc<Vec<u8>>, config: &Config) -> String {
    match Weights::from_safetensors(bytes, config) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn as_f32(t: &RawTensor) -> Vec<f32> {
    t.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn f32_weights_load_in_place() {
    let (config, bytes) = typeform();
    let w = Weights::from_safetensors(bytes, &config).unwrap();
    assert_eq!(w.layers.len(), 2);
    assert_eq!(w.embeddings.word_embeddings.shape, vec![30522, 16]);
    assert_eq!(w.classifier.weight.shape, vec![3, 16]);
    assert!(w.embeddings.word_embeddings.is_borrowed(), "aligned F32 must not be copied");
    assert!(w.layers[1].ffn.up.weight.is_borrowed());
}

/// q_lin, k_lin and v_lin become one [3*dim, dim] Linear: rows and biases in that order, as in the file.
/// The two int8 layouts read back as the f32 values they stand for: a scale per row (the file's
/// [out, in]) and a scale per column (the native CPU's transposed [in, out]).
#[test]
fn int8_tensors_dequantise_by_row_and_by_column() {
    use zeroshot::weights::Tensor;
    let q = vec![1i8, -2, 3, 4, 5, -6];
    let by_row = Tensor::from_int8(vec![2, 3], q.clone(), vec![0.5, 2.0]);
    assert_eq!(by_row.dequantized(), vec![0.5, -1.0, 1.5, 8.0, 10.0, -12.0]);
    let by_column = Tensor::from_int8_by_column(vec![2, 3], q, vec![0.5, 2.0, -1.0]);
    assert_eq!(by_column.dequantized(), vec![0.5, -4.0, -3.0, 2.0, 10.0, 6.0]);
    assert!(by_column.is_int8() && by_column.data().is_err(), "int8 is never read as f32 by mistake");
}

#[test]
fn q_k_v_are_stacked_in_order_without_a_copy() {
    let (config, bytes) = typeform();
    let w = Weights::from_safetensors(bytes.clone(), &config).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |name: &str| -> Vec<f32> {
        let t = file.tensor(&format!("distilbert.transformer.layer.1.attention.{name}")).unwrap();
        t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let qkv = &w.layers[1].attention.qkv;
    assert_eq!(qkv.weight.shape, vec![3 * 16, 16]);
    assert_eq!(qkv.bias.shape, vec![3 * 16]);
    let want_w: Vec<f32> = ["q_lin", "k_lin", "v_lin"].iter().flat_map(|n| read(&format!("{n}.weight"))).collect();
    let want_b: Vec<f32> = ["q_lin", "k_lin", "v_lin"].iter().flat_map(|n| read(&format!("{n}.bias"))).collect();
    assert_eq!(qkv.weight.dequantized(), want_w);
    assert!(qkv.weight.is_borrowed(), "q, k and v are read in place from the file, not copied");
    assert!(qkv.weight.data().unwrap_err().to_string().contains("stacked"), "one block only when joined");
    let joined = Weights::from_safetensors(bytes, &config).unwrap().layers.swap_remove(1).attention.qkv.weight.joined();
    assert_eq!(joined.data().unwrap(), &want_w[..]);
    assert_eq!(qkv.bias.data().unwrap(), &want_b[..]);
}

#[test]
fn every_fixture_loads() {
    for name in common::FIXTURES {
        zeroshot::Checkpoint::load(files(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn f16_and_bf16_convert_to_the_same_values() {
    let (config, bytes) = typeform();
    let reference = Weights::from_safetensors(bytes.clone(), &config).unwrap();
    for dtype in [Dtype::F16, Dtype::BF16] {
        let converted = rewrite_safetensors(&bytes, |tensors| {
            for (_, t) in tensors.iter_mut() {
                t.data = as_f32(t)
                    .iter()
                    .flat_map(|&x| match dtype {
                        Dtype::F16 => half::f16::from_f32(x).to_le_bytes(),
                        _ => half::bf16::from_f32(x).to_le_bytes(),
                    })
                    .collect();
                t.dtype = dtype;
            }
        });
        let w = Weights::from_safetensors(converted, &config).unwrap();
        let tol = if dtype == Dtype::F16 { 1e-3 } else { 8e-3 };
        let (a, b) = (
            w.layers[0].attention.output.weight.data().unwrap(),
            reference.layers[0].attention.output.weight.data().unwrap(),
        );
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * y.abs().max(1.0), "{dtype:?} index {i}: actual {x}, expected {y}");
        }
        assert!(!w.layers[0].attention.output.weight.is_borrowed());
    }
}

#[test]
fn names_without_the_distilbert_prefix_and_extra_tensors_are_accepted() {
    let (config, bytes) = typeform();
    let renamed = rewrite_safetensors(&bytes, |tensors| {
        for (name, _) in tensors.iter_mut() {
            if let Some(rest) = name.strip_prefix("distilbert.") {
                *name = rest.to_string();
            }
        }
        tensors.push((
            "distilbert.embeddings.position_ids".into(),
            RawTensor { dtype: Dtype::I64, shape: vec![2], data: vec![0; 16] },
        ));
    });
    let w = Weights::from_safetensors(renamed, &config).unwrap();
    let original = Weights::from_safetensors(bytes, &config).unwrap();
    assert_eq!(w.layers[1].output_norm.bias.data().unwrap(), original.layers[1].output_norm.bias.data().unwrap());
}

#[test]
fn a_missing_tensor_is_named() {
    let (config, bytes) = typeform();
    let cut = rewrite_safetensors(&bytes, |t| t.retain(|(n, _)| n != "distilbert.transformer.layer.1.ffn.lin2.bias"));
    let msg = load_err(cut, &config);
    assert!(msg.contains("no tensor distilbert.transformer.layer.1.ffn.lin2.bias"), "{msg}");
    let no_head = rewrite_safetensors(&bytes, |t| t.retain(|(n, _)| n != "classifier.weight"));
    assert!(load_err(no_head, &config).contains("no tensor classifier.weight"));
}

#[test]
fn a_wrong_shape_names_tensor_and_both_shapes() {
    let (mut config, bytes) = typeform();
    config.hidden_dim = 41;
    let msg = load_err(bytes.clone(), &config);
    assert_eq!(
        msg,
        "tensor distilbert.transformer.layer.0.ffn.lin1.weight has shape [40, 16], expected [41, 16] from config.json"
    );
    let (config, _) = typeform();
    let extra_label = rewrite_safetensors(&bytes, |tensors| {
        let (_, t) = tensors.iter_mut().find(|(n, _)| n == "classifier.bias").unwrap();
        t.shape = vec![4];
        t.data.extend_from_slice(&[0; 4]);
    });
    assert!(load_err(extra_label, &config).contains("tensor classifier.bias has shape [4], expected [3]"));
}

#[test]
fn an_unsupported_dtype_is_named() {
    let (config, bytes) = typeform();
    let ints = rewrite_safetensors(&bytes, |tensors| {
        let (_, t) = tensors.iter_mut().find(|(n, _)| n == "pre_classifier.bias").unwrap();
        t.dtype = Dtype::I32;
    });
    assert_eq!(
        load_err(ints, &config),
        "tensor pre_classifier.bias has dtype I32; supported are F32, F16 and BF16, and I8 with a \
         pre_classifier.bias_scale tensor for Linear weights and the word embedding"
    );
}

#[test]
fn a_truncated_or_garbage_file_is_refused() {
    let (config, bytes) = typeform();
    let truncated = Arc::new(bytes[..bytes.len() / 2].to_vec());
    assert!(load_err(truncated, &config).starts_with("model.safetensors is not a valid safetensors file"));
    assert!(load_err(Arc::new(b"PK\x03\x04 a zip".to_vec()), &config).starts_with("model.safetensors is not a valid"));
    assert!(load_err(Arc::new(Vec::new()), &config).starts_with("model.safetensors is not a valid"));
}
