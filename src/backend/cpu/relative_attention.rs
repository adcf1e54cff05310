//! DeBERTa's content-to-position (c2p) and position-to-content (p2c) terms on the CPU, added to
//! one sequence's attention scores head by head ([`crate::relative`]). For a sequence of n tokens
//! and nq query rows, the distances a - b run from -(n - 1) to nq - 1 and map to a contiguous run
//! of W rows of the projected relative embeddings (the map is monotonic), with W at most
//! min(2 span, n + nq - 1). Per head, gemm multiplies the keys with those W position queries
//! ([n, W], once) and each block of queries with the W position keys ([rows, W], as the block's
//! scores are made); each score then gathers its two terms by its distance's row. With one query
//! row (the last layer's [CLS]) each key needs one position query only, so p2c is n dot products
//! instead of an [n, W] product.

use super::{MatMut, MatRef, dims, matmul};
use crate::backend::Positions;
use crate::error::{Error, Result};
use crate::weights::Tensor;

/// The rows of the projected embeddings that one sequence's distances use.
pub(super) struct Distances {
    /// Row (minus `first`) of each distance from -(n - 1) to nq - 1: [n + nq - 1].
    rows: Vec<usize>,
    /// The first and the number of rows used.
    first: usize,
    width: usize,
    /// Tokens and query rows.
    n: usize,
    nq: usize,
}

impl Distances {
    /// The rows of a sequence of `n` tokens with `nq` query rows, from `positions.rows`.
    pub(super) fn new(positions: &Positions<Tensor>, n: usize, nq: usize) -> Result<Distances> {
        let table = positions.rows.data()?;
        let zero = table.len() / 2; // the table holds distances -zero..=zero
        if n == 0 || nq == 0 || n > zero + 1 || nq > n {
            return Err(Error::Backend(format!("relative positions: {n} tokens past the table's {}", zero + 1)));
        }
        let rows: Vec<usize> = table[zero + 1 - n..zero + nq].iter().map(|&r| r as usize).collect();
        // The map is monotonic in the distance (the config check sees to it); min and max hold anyway.
        let (first, last) = (rows.iter().min().copied().unwrap_or(0), rows.iter().max().copied().unwrap_or(0));
        let rows = rows.into_iter().map(|r| r - first).collect();
        Ok(Distances { rows, first, width: last - first + 1, n, nq })
    }

    /// Row (minus `first`) of the distance between query `a` and key `b`.
    fn row(&self, a: usize, b: usize) -> usize {
        self.rows[a + self.n - 1 - b]
    }
}

/// One head's relative terms of a sequence: p2c ([n, W], or [n] for one query row) computed
/// once; c2p ([rows, W]) for each block of query rows as its scores are made, so that no [nq, W]
/// is held for a long text.
pub(super) struct Terms<'a> {
    distances: &'a Distances,
    /// The head's queries, and the position keys of the rows used, transposed ([hd, W]).
    c2p: Option<(MatRef<'a>, MatRef<'a>)>,
    p2c: Option<Vec<f32>>,
    hd: usize,
    scale: f32,
}

/// Where one head of one sequence sits in the fused q | k | v: the sequence's first element, the
/// head's first column within q (and within k, v and each projection), the row stride (3 * dim),
/// dim, and the head's size.
#[derive(Clone, Copy)]
pub(super) struct Head {
    pub first: usize,
    pub column: usize,
    pub width: usize,
    pub dim: usize,
    pub hd: usize,
}

impl<'a> Terms<'a> {
    /// The terms of `head` for the distances `d`.
    pub(super) fn new(
        qkv: &'a [f32],
        head: Head,
        positions: &Positions<'a, Tensor>,
        d: &'a Distances,
    ) -> Result<Terms<'a>> {
        let projected = positions.projected.data()?;
        let (rows, pw) = dims(positions.projected)?;
        let h0 = head.column;
        if d.first + d.width > rows || pw != positions.width(head.dim) {
            return Err(Error::Backend(format!("relative positions: rows up to {} of {rows}", d.first + d.width)));
        }
        // Position keys (c2p) and queries (p2c) of the rows used, transposed: [hd, W].
        let block =
            |column: usize| MatRef { data: &projected[d.first * pw + column + h0..], row_stride: 1, col_stride: pw };
        let q = MatRef { data: &qkv[head.first + h0..], row_stride: head.width, col_stride: 1 };
        let k = MatRef { data: &qkv[head.first + head.dim + h0..], row_stride: head.width, col_stride: 1 };
        let c2p = positions.c2p.then(|| (q, block(positions.key_column(head.dim))));
        let p2c = match (positions.p2c, d.nq) {
            (false, _) => None,
            (true, 1) => Some(own_position_queries(qkv, head, projected, pw, d)),
            (true, _) => Some(product(d.n, d.width, head.hd, k, block(0))?),
        };
        Ok(Terms { distances: d, c2p, p2c, hd: head.hd, scale: positions.scale })
    }

    /// Adds the terms, scaled, to the scores of query rows `q0..` ([rows, n]).
    pub(super) fn add(&self, scores: &mut [f32], q0: usize) -> Result<()> {
        let d = self.distances;
        let rows = scores.len() / d.n.max(1);
        let c2p = match self.c2p {
            Some((q, keys)) => {
                let q = MatRef { data: q.data.get(q0 * q.row_stride..).unwrap_or_default(), ..q };
                Some(product(rows, d.width, self.hd, q, keys)?)
            }
            None => None,
        };
        for (i, row) in scores.chunks_exact_mut(d.n).enumerate() {
            let a = q0 + i;
            for (b, s) in row.iter_mut().enumerate() {
                let r = d.row(a, b);
                let c2p = c2p.as_ref().map_or(0.0, |c| c[i * d.width + r]);
                let p2c = match &self.p2c {
                    Some(p) if d.nq == 1 => p[b],
                    Some(p) => p[b * d.width + r],
                    None => 0.0,
                };
                *s += (c2p + p2c) * self.scale;
            }
        }
        Ok(())
    }
}

/// `a [rows, hd] @ b [hd, width]`, a new [rows, width].
fn product(rows: usize, width: usize, hd: usize, a: MatRef, b: MatRef) -> Result<Vec<f32>> {
    let mut c = vec![0.0; rows * width];
    let out = MatMut { data: &mut c, row_stride: width, col_stride: 1 };
    matmul(rows, width, hd, a, b, out, false, 1.0, gemm::Parallelism::None)?;
    Ok(c)
}

/// p2c for query row 0 alone: each key b dotted with the position query of distance -b: [n].
fn own_position_queries(qkv: &[f32], head: Head, projected: &[f32], pw: usize, d: &Distances) -> Vec<f32> {
    let h0 = head.column;
    (0..d.n)
        .map(|b| {
            let key = &qkv[head.first + head.dim + h0 + b * head.width..][..head.hd];
            let query = &projected[(d.first + d.row(0, b)) * pw + h0..][..head.hd];
            key.iter().zip(query).map(|(k, q)| k * q).sum()
        })
        .collect()
}
