//! config.json: accepted shapes, label handling as transformers does it, and every refusal.

mod common;

use common::{FIXTURES, edit_json, files};
use serde_json::json;
use zeroshot::{Activation, Config, Error};

fn typeform_config() -> Vec<u8> {
    files("typeform-layout").config_json
}

fn config_with(edit: impl FnOnce(&mut serde_json::Value)) -> zeroshot::Result<Config> {
    Config::from_json(&edit_json(&typeform_config(), edit))
}

/// serde_json's Value sorts object keys, so label2id goes in as raw text to keep its file order.
fn config_with_label2id(id2label: serde_json::Value, label2id_text: &str) -> zeroshot::Result<Config> {
    let base = edit_json(&typeform_config(), |v| {
        v["id2label"] = id2label;
        v["label2id"] = json!("LABEL2ID");
    });
    let text = String::from_utf8(base).unwrap().replace(r#""LABEL2ID""#, label2id_text);
    Config::from_json(text.as_bytes())
}

fn message(result: zeroshot::Result<Config>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fixtures_parse_with_their_label_orders() {
    // (fixture, entailment id, contradiction id as transformers' pipeline picks it)
    let expected = [
        ("typeform-layout", 0, 2),
        ("tokenizer-json", 2, 0),
        ("f16-relu", 1, 0),
        ("typeform-layout-int8", 0, 2),
        ("typeform-layout-f16", 0, 2),
        ("bert-vocab", 0, 1),
        ("roberta-bpe", 2, 0),
        ("roberta-json", 0, 1),
        ("xlmr-unigram", 0, 1),
        ("deberta-v3", 0, 2),
        ("deberta-v2-abs", 0, 1),
        ("deberta-c2p", 1, 0),
    ];
    for (name, entail, contra) in expected {
        let c = Config::from_json(&files(name).config_json).unwrap();
        assert_eq!((c.entailment_id, c.contradiction_id()), (entail, contra), "{name}");
    }
    assert_eq!(FIXTURES.len(), expected.len());
    let f16 = Config::from_json(&files("f16-relu").config_json).unwrap();
    assert_eq!((f16.dim, f16.n_heads, f16.head_dim(), f16.activation), (24, 3, 8, Activation::Relu));
}

#[test]
fn entailment_is_the_first_label2id_key_starting_with_entail() {
    let id2label = json!({"0": "entailment_b", "1": "neutral", "2": "Entailment_a"});
    // File order, not id or name order, decides.
    let c = config_with_label2id(id2label.clone(), r#"{"neutral": 1, "entailment_b": 0, "Entailment_a": 2}"#).unwrap();
    assert_eq!((c.entailment_id, c.contradiction_id()), (0, 2));
    let c = config_with_label2id(id2label, r#"{"Entailment_a": 2, "neutral": 1, "entailment_b": 0}"#).unwrap();
    assert_eq!((c.entailment_id, c.contradiction_id()), (2, 0));
}

#[test]
fn label2id_defaults_to_id2label() {
    let c = config_with(|v| {
        v.as_object_mut().unwrap().remove("label2id");
        v["id2label"] = json!({"0": "contradiction", "1": "entailment"});
    })
    .unwrap();
    assert_eq!((c.entailment_id, c.contradiction_id(), c.num_labels()), (1, 0, 2));
}

#[test]
fn entailment_zero_makes_the_last_label_contradiction() {
    let c = config_with(|v| {
        v["id2label"] = json!({"0": "entailment", "1": "neutral", "2": "other", "3": "contradiction"});
        v["label2id"] = json!({"entailment": 0, "neutral": 1, "other": 2, "contradiction": 3});
    })
    .unwrap();
    assert_eq!(c.contradiction_id(), 3);
}

/// A change to config.json's JSON.
type Edit = dyn FnOnce(&mut serde_json::Value);

#[test]
fn refusals_name_the_problem() {
    let cases: Vec<(Box<Edit>, &str)> = vec![
        (
            Box::new(|v| v["model_type"] = json!("deberta")),
            r#"model_type is "deberta"; zeroshot runs "distilbert", "bert", "roberta", "xlm-roberta" and "deberta-v2" (DeBERTa-v3) models"#,
        ),
        (
            Box::new(|v| v["architectures"] = json!(["DistilBertForMaskedLM"])),
            r#"architectures names "DistilBertForMaskedLM"; zeroshot runs DistilBertForSequenceClassification"#,
        ),
        // BERT's config with DistilBERT's architecture: the weights would be another family's.
        (
            Box::new(|v| {
                v["model_type"] = json!("bert");
                v["architectures"] = json!(["DistilBertForSequenceClassification"]);
            }),
            r#"architectures names "DistilBertForSequenceClassification"; zeroshot runs BertForSequenceClassification"#,
        ),
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("model_type");
            }),
            r#"model_type is "(missing)""#,
        ),
        (Box::new(|v| v["sinusoidal_pos_embds"] = json!(true)), "sinusoidal_pos_embds is true"),
        (Box::new(|v| v["activation"] = json!("gelu_fast")), r#"activation "gelu_fast" is not supported"#),
        (Box::new(|v| v["n_heads"] = json!(3)), "dim 16 is not divisible by n_heads 3"),
        (Box::new(|v| v["n_layers"] = json!(0)), "n_layers must be at least 1"),
        (
            Box::new(|v| {
                v["id2label"] = json!({"0": "NEGATIVE", "1": "POSITIVE"});
                v["label2id"] = json!({"NEGATIVE": 0, "POSITIVE": 1});
            }),
            r#"no label in label2id starts with "entail" (labels: ["NEGATIVE", "POSITIVE"])"#,
        ),
        (
            Box::new(|v| v["label2id"] = json!({"ENTAILMENT": 7, "NEUTRAL": 1, "CONTRADICTION": 2})),
            r#"label2id maps "ENTAILMENT" to 7, outside the model's 3 labels"#,
        ),
        (Box::new(|v| v["id2label"] = json!({"0": "a", "5": "b"})), r#"id2label key "5" is not an index below 2"#),
        (Box::new(|v| v["id2label"] = json!({})), "id2label is missing or empty"),
        (Box::new(|v| v["dim"] = json!("big")), "config.json is not valid JSON for this purpose"),
    ];
    for (edit, expected) in cases {
        let got = message(config_with(edit));
        assert!(got.contains(expected), "message {got:?} lacks {expected:?}");
    }
    let got = message(Config::from_json(b"{not json"));
    assert!(got.starts_with("config.json is not valid JSON"), "{got}");
}

#[test]
fn error_variants_match() {
    assert!(matches!(config_with(|v| v["sinusoidal_pos_embds"] = json!(true)), Err(Error::SinusoidalPositions)));
}

/// A BERT-family config.json as save_pretrained writes it (fields as `BertConfig` names them).
fn bert_family_config(model_type: &str, architecture: &str) -> serde_json::Value {
    json!({
        "model_type": model_type, "architectures": [architecture],
        "vocab_size": 500, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1,
        "layer_norm_eps": 1e-5, "hidden_act": "gelu_new",
        "id2label": {"0": "entailment", "1": "not_entailment"}, "label2id": {"entailment": 0, "not_entailment": 1},
    })
}

#[test]
fn bert_roberta_and_xlm_roberta_configs_read_their_own_fields() {
    let parse = |v: &serde_json::Value| Config::from_json(&serde_json::to_vec(v).unwrap());
    let roberta = parse(&bert_family_config("roberta", "RobertaForSequenceClassification")).unwrap();
    assert_eq!((roberta.dim, roberta.n_layers, roberta.n_heads, roberta.hidden_dim), (32, 2, 4, 64));
    // Positions count from pad_token_id + 1: 514 rows hold 512 tokens.
    assert_eq!((roberta.first_position, roberta.max_tokens(), roberta.type_vocab_size), (2, 512, 1));
    assert_eq!(
        (roberta.layer_norm_eps, roberta.activation, roberta.head_activation),
        (1e-5, Activation::GeluTanh, Activation::Tanh)
    );
    // A two-label entailment model: entailment 0, so "contradiction" is the last (not_entailment).
    assert_eq!((roberta.entailment_id, roberta.contradiction_id()), (0, 1));
    let xlmr = parse(&bert_family_config("xlm-roberta", "XLMRobertaForSequenceClassification")).unwrap();
    assert_eq!(xlmr.first_position, 2);
    let mut bert = bert_family_config("bert", "BertForSequenceClassification");
    bert["pad_token_id"] = json!(0);
    let bert = parse(&bert).unwrap();
    assert_eq!((bert.first_position, bert.max_tokens()), (0, 514));
    let typeform = Config::from_json(&typeform_config()).unwrap();
    assert_eq!((typeform.first_position, typeform.type_vocab_size, typeform.layer_norm_eps), (0, 0, 1e-12));
    assert_eq!(typeform.head_activation, Activation::Relu);
}

#[test]
fn bert_family_refusals_name_the_field() {
    let refused = |edit: &dyn Fn(&mut serde_json::Value), expected: &str| {
        let mut v = bert_family_config("roberta", "RobertaForSequenceClassification");
        edit(&mut v);
        let got = message(Config::from_json(&serde_json::to_vec(&v).unwrap()));
        assert!(got.contains(expected), "message {got:?} lacks {expected:?}");
    };
    refused(&|v| v["position_embedding_type"] = json!("relative_key"), r#"position_embedding_type is "relative_key""#);
    refused(&|v| v["architectures"] = json!(["RobertaForMaskedLM"]), r#"architectures names "RobertaForMaskedLM""#);
    refused(&|v| v["layer_norm_eps"] = json!(-1.0), "layer_norm_eps is -1");
    refused(&|v| v["pad_token_id"] = json!(600), "pad_token_id is 600; positions would start at 601");
    refused(&|v| v["pad_token_id"] = json!(u64::MAX), "positions would start at");
    refused(&|v| v["max_position_embeddings"] = json!(9000), "max_position_embeddings is 9000; at most 8194");
    refused(&|v| v["num_attention_heads"] = json!(5), "dim 32 is not divisible by n_heads 5");
}

/// A DeBERTa-v3 config.json as the Hub's repos have it (microsoft/deberta-v3-xsmall's shape).
fn deberta_config() -> serde_json::Value {
    json!({
        "model_type": "deberta-v2", "architectures": ["DebertaV2ForSequenceClassification"],
        "vocab_size": 128100, "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
        "intermediate_size": 1536, "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 0,
        "position_biased_input": false, "relative_attention": true, "max_relative_positions": -1,
        "position_buckets": 256, "pos_att_type": ["p2c", "c2p"], "share_att_key": true, "norm_rel_ebd": "layer_norm",
        "layer_norm_eps": 1e-7, "pooler_hidden_size": 384, "pooler_hidden_act": "gelu", "pad_token_id": 0,
        "id2label": {"0": "entailment", "1": "not_entailment"}, "label2id": {"entailment": 0, "not_entailment": 1},
    })
}

#[test]
fn deberta_configs_read_their_own_fields() {
    let c = Config::from_json(&serde_json::to_vec(&deberta_config()).unwrap()).unwrap();
    assert_eq!((c.dim, c.embedding_size, c.n_layers, c.n_heads, c.hidden_dim), (384, 384, 12, 6, 1536));
    assert_eq!((c.type_vocab_size, c.absolute_positions, c.reads_token_types()), (0, false, false));
    // No position table: texts are bounded by zeroshot's own limit, not max_position_embeddings.
    assert_eq!(c.max_tokens(), zeroshot::config::MAX_RELATIVE_TOKENS);
    let r = c.relative.as_ref().unwrap();
    // max_relative_positions -1 falls back to max_position_embeddings; 256 buckets, span 256.
    assert_eq!((r.position_buckets, r.max_relative_positions, r.span(), r.terms()), (256, 512, 256, 2));
    assert!(r.c2p && r.p2c && r.share_att_key && r.norm_embeddings);
    assert_eq!((c.layer_norm_eps, c.head_activation), (1e-7, Activation::Gelu));
    let mut v = deberta_config();
    v["pos_att_type"] = json!("C2P | p2c");
    v["position_buckets"] = json!(-1);
    v["type_vocab_size"] = json!(2);
    v["embedding_size"] = json!(128);
    v["pooler_hidden_act"] = json!("tanh");
    let c = Config::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
    let r = c.relative.as_ref().unwrap();
    assert_eq!((r.position_buckets, r.span(), r.terms(), c.embedding_size), (0, 512, 2, 128));
    assert_eq!((c.reads_token_types(), c.head_activation), (true, Activation::Tanh));
}

#[test]
fn deberta_refusals_name_the_option() {
    let refused = |edit: &dyn Fn(&mut serde_json::Value), expected: &str| {
        let mut v = deberta_config();
        edit(&mut v);
        let got = message(Config::from_json(&serde_json::to_vec(&v).unwrap()));
        assert!(got.contains(expected), "message {got:?} lacks {expected:?}");
    };
    refused(
        &|v| v["conv_kernel_size"] = json!(3),
        "conv_kernel_size is 3; zeroshot does not run DeBERTa-v2's convolution layer",
    );
    refused(&|v| v["relative_attention"] = json!(false), "relative_attention is false");
    refused(&|v| v["pos_att_type"] = json!(["c2p", "p2p"]), r#"pos_att_type names "p2p""#);
    refused(&|v| v["pos_att_type"] = json!(7), "pos_att_type is 7");
    refused(&|v| v["attention_head_size"] = json!(32), "attention_head_size is 32");
    refused(&|v| v["pooler_hidden_size"] = json!(768), "pooler_hidden_size is 768");
    refused(&|v| v["position_buckets"] = json!(1), "position_buckets is 1");
    refused(&|v| v["position_buckets"] = json!(1025), "position_buckets is 1025; at most 1024");
    refused(&|v| v["pos_att_type"] = json!([]), r#"pos_att_type names neither "c2p" nor "p2c""#);
    // transformers runs these, but its buckets would not grow with the distance (a log ratio of 1 or less).
    refused(
        &|v| v["max_relative_positions"] = json!(64),
        "max_relative_positions is 64; with 256 position_buckets it must be over 129",
    );
    refused(
        &|v| {
            v["position_buckets"] = json!(4);
            v["max_relative_positions"] = json!(3);
        },
        "max_relative_positions is 3",
    );
    refused(&|v| v["pooler_hidden_act"] = json!("swish"), r#"activation "swish" is not supported"#);
    refused(&|v| v["embedding_size"] = json!(0), "embedding_size must be at least 1");
    refused(&|v| v["architectures"] = json!(["DebertaV2ForMaskedLM"]), r#"architectures names "DebertaV2ForMaskedLM""#);
}
