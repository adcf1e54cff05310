//! DeBERTa's relative positions: `RelativeAttention::bucket` against transformers'
//! `make_log_bucket_position`, recorded by generate.py for every distance from -1100 to 1100
//! under each DeBERTa fixture's config and DeBERTa-v3's (256 buckets of 512 distances).

mod common;

use common::reference;
use zeroshot::relative::RelativeAttention;

#[test]
fn buckets_equal_transformers_for_every_distance() {
    for name in ["deberta-v3", "deberta-v2-abs", "deberta-c2p"] {
        let buckets = &reference(name)["buckets"];
        let first = buckets["first"].as_i64().expect("first distance");
        for key in ["fixture", "deberta_v3"] {
            let record = &buckets[key];
            let relative = RelativeAttention {
                position_buckets: record["position_buckets"].as_i64().unwrap().max(0) as usize,
                max_relative_positions: record["max_relative_positions"].as_u64().unwrap() as usize,
                c2p: true,
                p2c: true,
                share_att_key: true,
                norm_embeddings: true,
            };
            let positions = record["positions"].as_array().expect("positions");
            assert_eq!(positions.len(), 2201, "{name} {key}");
            for (i, want) in positions.iter().enumerate() {
                let distance = first + i as i64;
                let got = relative.bucket(distance);
                assert_eq!(
                    got,
                    want.as_i64().unwrap(),
                    "{name} {key}: distance {distance}: actual {got}, expected {want}"
                );
            }
        }
    }
}
