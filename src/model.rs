//! DistilBertForSequenceClassification, forward only, on any [`Backend`]. One function, top to
//! bottom, shapes in comments (B = sequences, L = tokens each, D = dim, F = hidden_dim).

use crate::backend::{Backend, Batch};
use crate::config::{Activation, Config};
use crate::error::{Error, Result};
use crate::weights::Weights;

/// The model with its weights held by a backend.
pub struct DistilBert<B: Backend> {
    pub config: Config,
    backend: B,
    weights: Weights<B::Tensor>,
}

impl<B: Backend> DistilBert<B> {
    /// Hands the weights to the backend (an upload, for a GPU).
    pub fn new(config: Config, weights: Weights, mut backend: B) -> Result<Self> {
        let weights = backend.load_weights(weights)?;
        Ok(DistilBert { config, backend, weights })
    }

    /// What runs the model: "cpu" or "gpu".
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Most token rows one forward may take (the pipeline splits larger batches).
    pub fn max_rows(&self) -> usize {
        self.backend.max_rows(&self.config)
    }

    /// One tiny forward, so pipelines are compiled and buffers exist before the first real call.
    pub async fn warm_up(&mut self) -> Result<()> {
        self.forward(&Batch::pad(&[vec![0, 0]])).await.map(drop)
    }

    /// Logits for every sequence of the batch: [B, num_labels], row-major.
    pub async fn forward(&mut self, batch: &Batch) -> Result<Vec<f32>> {
        self.check(batch)?;
        let (b, w, cfg) = (&mut self.backend, &self.weights, &self.config);
        let input = b.upload_batch(batch)?;
        let mut x = b.embed(&input, &w.embeddings)?; // [B*L, D]
        for layer in &w.layers {
            let att = &layer.attention;
            let q = b.linear(&x, &att.q_lin, None)?; // [B*L, D]
            let k = b.linear(&x, &att.k_lin, None)?; // [B*L, D]
            let v = b.linear(&x, &att.v_lin, None)?; // [B*L, D]
            let ctx = b.attention(&q, &k, &v, &input, cfg.n_heads)?; // [B*L, D]
            let sa = b.linear(&ctx, &att.out_lin, None)?; // [B*L, D]
            x = b.add_layer_norm(&sa, &x, &layer.sa_layer_norm)?; // post-LN: [B*L, D]
            let h = b.linear(&x, &layer.ffn.lin1, Some(cfg.activation))?; // [B*L, F]
            let f = b.linear(&h, &layer.ffn.lin2, None)?; // [B*L, D]
            x = b.add_layer_norm(&f, &x, &layer.output_layer_norm)?; // [B*L, D]
        }
        let cls = b.cls_rows(&x, &input)?; // [B, D]
        let pooled = b.linear(&cls, &w.pre_classifier, Some(Activation::Relu))?; // [B, D]
        let logits = b.linear(&pooled, &w.classifier, None)?; // [B, num_labels]
        b.read(&logits).await
    }

    /// Refuses batches the embeddings cannot index, so no backend ever reads out of bounds.
    fn check(&self, batch: &Batch) -> Result<()> {
        if batch.batch == 0 || batch.seq == 0 {
            return Err(Error::Backend("empty batch".into()));
        }
        if batch.seq > self.config.max_position_embeddings {
            return Err(Error::Backend(format!(
                "sequences of {} tokens exceed the model's {} positions",
                batch.seq, self.config.max_position_embeddings
            )));
        }
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(Error::TokenIdOutOfRange { id, vocab_size: self.config.vocab_size });
        }
        Ok(())
    }
}
