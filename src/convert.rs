//! `zeroshot convert`: a checkpoint's weights as f16, or as int8 with one scale per row, in a
//! `model.safetensors` that `safetensors.torch.load_file` reads.
//!
//! int8 is symmetric per output channel: row r of a Linear weight (and of the word embedding) is
//! `q[r] * scale[r]`, `scale[r] = max|w[r]| / 127`, `q = round(w / scale)`; the scales are F32
//! tensors named `{weight}_scale`. Biases, LayerNorms and position embeddings (absolute and
//! relative) stay F32 (they are 0.2% of the bytes). The metadata keeps transformers' `"format": "pt"` and says which weights
//! the file holds in `"zeroshot_weights"`.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::weights::float_values;

/// The weight formats `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Every float tensor as F16: half the bytes of f32.
    F16,
    /// Linear weights and the word embedding as I8 + per-row F32 scales: about a quarter.
    Int8,
}

impl WeightFormat {
    /// The format a name (as [`WeightFormat::name`] gives it) stands for: the CLI's `--to` and
    /// the browser's `convert` option.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f16" => Ok(WeightFormat::F16),
            "int8" => Ok(WeightFormat::Int8),
            other => Err(Error::Convert(format!("unknown weight format {other:?}: use \"f16\" or \"int8\""))),
        }
    }

    /// The name the metadata and the CLI use: "f16" or "int8".
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F16 => "f16",
            WeightFormat::Int8 => "int8",
        }
    }
}

/// Metadata key naming the weight format a converted file holds.
pub const FORMAT_KEY: &str = "zeroshot_weights";

/// Whether int8 quantises a tensor: every 2-D `.weight` (each family's `nn.Linear`s and the word
/// embedding, the largest tensor) but the position, token-type and DeBERTa's relative-position
/// tables, which are read as f32.
fn quantised(name: &str, shape: &[usize]) -> bool {
    let tables = ["position_embeddings.weight", "token_type_embeddings.weight", "rel_embeddings.weight"];
    shape.len() == 2 && name.ends_with(".weight") && !tables.iter().any(|t| name.ends_with(t))
}

/// One tensor of the output file: name, dtype, shape and little-endian bytes.
type Out = (String, Dtype, Vec<usize>, Vec<u8>);

/// The bytes of a `model.safetensors` holding `src`'s tensors in `format`. Float tensors are
/// converted, any other dtype is copied as is; a file that is already int8 is refused (convert
/// from the original: quantising twice compounds the rounding).
pub fn convert(src: &[u8], format: WeightFormat) -> Result<Vec<u8>> {
    let file = SafeTensors::deserialize(src).map_err(|e| Error::Safetensors(e.to_string()))?;
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(tensors.len() + 64);
    for (name, view) in tensors {
        if view.dtype() == Dtype::I8 {
            return Err(Error::Convert(format!("{name} is already int8: convert from the fp32 or f16 original")));
        }
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            out.push((name, view.dtype(), view.shape().to_vec(), view.data().to_vec()));
            continue;
        }
        let values = float_values(&name, view.dtype(), view.data())?;
        let shape = view.shape().to_vec();
        match format {
            WeightFormat::F16 => out.push((name.clone(), Dtype::F16, shape, to_f16(&name, &values)?)),
            WeightFormat::Int8 if quantised(&name, &shape) => {
                out.extend(quantize(name, shape, &values)?);
            }
            WeightFormat::Int8 => {
                out.push((name, Dtype::F32, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
            }
        }
    }
    serialize(out, file_metadata(src)?, format)
}

/// F16 bytes of `values`; a finite value beyond f16's range (65504) is an error, not an infinity.
fn to_f16(name: &str, values: &[f32]) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(values.len() * 2);
    for (index, &v) in values.iter().enumerate() {
        let h = half::f16::from_f32(v);
        if h.is_infinite() && v.is_finite() {
            return Err(Error::Convert(format!("{name}[{index}] = {v} is beyond f16's range (65504)")));
        }
        bytes.extend(h.to_le_bytes());
    }
    Ok(bytes)
}

/// `name` as I8 [rows, cols] plus `{name}_scale` F32 [rows], symmetric per row.
fn quantize(name: String, shape: Vec<usize>, values: &[f32]) -> Result<[Out; 2]> {
    let (rows, cols) = (shape[0], shape[1]);
    let (mut q, mut scales) = (Vec::with_capacity(rows * cols), Vec::with_capacity(rows * 4));
    for (r, row) in values.chunks_exact(cols.max(1)).enumerate().take(rows) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if !max.is_finite() {
            return Err(Error::NonFiniteWeight { name, index: r * cols, value: max });
        }
        let scale = max / 127.0;
        // Dividing by the scale (not multiplying by 127 / max) rounds as torch's reference does;
        // an all-zero row stays zero with scale 0.
        q.extend(
            row.iter().map(|v| if scale > 0.0 { (v / scale).round().clamp(-127.0, 127.0) as i8 as u8 } else { 0 }),
        );
        scales.extend(scale.to_le_bytes());
    }
    let scale_name = format!("{name}_scale");
    Ok([(name, Dtype::I8, shape, q), (scale_name, Dtype::F32, vec![rows], scales)])
}

/// The source file's metadata, so a converted file keeps what its author recorded.
fn file_metadata(src: &[u8]) -> Result<HashMap<String, String>> {
    let (_, metadata) = SafeTensors::read_metadata(src).map_err(|e| Error::Safetensors(e.to_string()))?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

/// The file's bytes, with transformers' `"format": "pt"` and our format in the metadata.
fn serialize(tensors: Vec<Out>, mut metadata: HashMap<String, String>, format: WeightFormat) -> Result<Vec<u8>> {
    metadata.entry("format".into()).or_insert_with(|| "pt".into());
    metadata.insert(FORMAT_KEY.into(), format.name().into());
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let view =
                TensorView::new(*dtype, shape.clone(), bytes).map_err(|e| Error::Convert(format!("{name}: {e}")))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Convert(e.to_string()))?;
    sorted_header(bytes)
}

/// The file with its JSON header's keys in sorted order: safetensors writes the metadata from a
/// `HashMap`, whose order changes run to run, and a converted file should be the same bytes every
/// time (the committed fixtures are checked against the converter). Data offsets are relative to
/// the end of the header, so only the header changes; it stays padded to 8 bytes with spaces.
fn sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |e: String| Error::Convert(format!("re-reading the written header: {e}"));
    let n = u64::from_le_bytes(bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("short".into()))?);
    let end = usize::try_from(n).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| bad("header past the end".into()))?;
    // serde_json's map is a BTreeMap (no preserve_order feature): parsing sorts every object.
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(e.to_string()))?;
    let mut json = serde_json::to_vec(&header).map_err(|e| bad(e.to_string()))?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - end);
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    out.extend(&bytes[end..]);
    Ok(out)
}

/// What [`convert_dir`] wrote: the weights file's size before and after, in bytes.
#[derive(Debug)]
#[cfg(not(target_arch = "wasm32"))]
pub struct Converted {
    pub src_bytes: usize,
    pub dst_bytes: usize,
}

/// Converts the model folder `src` into `dst` in the Hub's layout: `model.safetensors` in
/// `format`, and the config and tokenizer files zeroshot read from `src`, as they are. `src` is
/// loaded and checked first, and `dst` must not hold a `model.safetensors` already.
#[cfg(not(target_arch = "wasm32"))]
pub fn convert_dir(src: &std::path::Path, dst: &std::path::Path, format: WeightFormat) -> Result<Converted> {
    use crate::files::{Checkpoint, ModelFiles};

    let files = ModelFiles::from_dir(src)?;
    // The source must load as it is (shapes, finite values, tokenizer) before anything is written.
    drop(Checkpoint::load(files.clone())?);
    let converted = convert(&files.model_safetensors, format)?;
    let src_bytes = files.model_safetensors.len();
    let target = dst.join("model.safetensors");
    if target.exists() {
        return Err(Error::Convert(format!("{} exists; give an empty or new folder", target.display())));
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = dst.join(name);
        std::fs::write(&path, bytes).map_err(|source| Error::Io { path: path.display().to_string(), source })
    };
    std::fs::create_dir_all(dst).map_err(|source| Error::Io { path: dst.display().to_string(), source })?;
    write("config.json", &files.config_json)?;
    let optional = [
        ("tokenizer.json", &files.tokenizer_json),
        ("vocab.txt", &files.vocab_txt),
        ("vocab.json", &files.vocab_json),
        ("merges.txt", &files.merges_txt),
        ("tokenizer_config.json", &files.tokenizer_config_json),
    ];
    for (name, bytes) in optional {
        if let Some(bytes) = bytes {
            write(name, bytes)?;
        }
    }
    write("model.safetensors", &converted)?;
    // What was written must load as every other checkpoint does (shapes, scales, tokenizer).
    Checkpoint::load(ModelFiles::from_dir(dst)?)?;
    Ok(Converted { src_bytes, dst_bytes: converted.len() })
}
