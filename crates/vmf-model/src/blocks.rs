//! How a latent on the sphere splits into spheres: one sphere S^(d-1), or a product of
//! blocks, each S^(m-1) in its own m columns of z with its own direction and kappa
//! (Davidson, Tomczak & Gavves 2019). The blocks may differ in size (e.g. S^14 x S^6
//! in d = 22); each size is drawn by its own sampling layer, since the quantile and KL
//! tables are per dimension.

use std::ops::Range;

/// The ambient dimension of each block of a latent, in column order (one block: one
/// sphere). Off the sphere only the total matters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Blocks {
    dims: Vec<usize>,
}

/// A run of consecutive blocks of one size: what one sampling layer draws at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockGroup {
    /// The index of its first block (blocks are numbered in column order).
    pub first: usize,
    /// How many blocks of this size follow one another.
    pub count: usize,
    /// The blocks' ambient dimension m (each is S^(m-1)).
    pub dim: usize,
    /// Its columns of z.
    pub columns: Range<usize>,
}

impl BlockGroup {
    /// The group's block indices.
    pub fn indices(&self) -> Range<usize> {
        self.first..self.first + self.count
    }
}

impl Blocks {
    /// One sphere S^(d-1).
    pub fn one(d: usize) -> Self {
        Self { dims: vec![d] }
    }

    /// `factors` equal blocks of d / factors (`factors` divides d; 0 counts as 1).
    pub fn equal(d: usize, factors: usize) -> Self {
        let g = factors.max(1);
        Self {
            dims: vec![d / g; g],
        }
    }

    /// Blocks of the given ambient dimensions, in column order.
    ///
    /// # Panics
    /// If `dims` is empty (a latent has at least one block; configs are validated
    /// before a model is built).
    pub fn of(dims: Vec<usize>) -> Self {
        assert!(!dims.is_empty(), "a latent has at least one block");
        Self { dims }
    }

    /// How many blocks (spheres).
    pub fn count(&self) -> usize {
        self.dims.len()
    }

    /// The latent's dimension: the sum of the blocks'.
    pub fn total(&self) -> usize {
        self.dims.iter().sum()
    }

    /// The blocks' ambient dimensions, in column order.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The distinct block sizes, in order of first appearance.
    pub fn sizes(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for &m in &self.dims {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// The size of every block where all are equal, else `None`.
    pub fn equal_size(&self) -> Option<usize> {
        let m = self.dims[0];
        self.dims.iter().all(|&v| v == m).then_some(m)
    }

    /// The runs of consecutive equal blocks, in column order (one group where all are
    /// equal).
    pub fn groups(&self) -> Vec<BlockGroup> {
        let mut out: Vec<BlockGroup> = Vec::new();
        let mut column = 0;
        for (i, &m) in self.dims.iter().enumerate() {
            match out.last_mut() {
                Some(g) if g.dim == m => {
                    g.count += 1;
                    g.columns.end += m;
                }
                _ => out.push(BlockGroup {
                    first: i,
                    count: 1,
                    dim: m,
                    columns: column..column + m,
                }),
            }
            column += m;
        }
        out
    }

    /// Block `i`'s columns of z.
    pub fn columns(&self, i: usize) -> Range<usize> {
        let start = self.dims[..i].iter().sum();
        start..start + self.dims[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_runs_of_equal_blocks_with_their_columns() {
        let b = Blocks::of(vec![15, 7, 7, 15]);
        assert_eq!((b.count(), b.total()), (4, 44));
        assert_eq!(b.sizes(), vec![15, 7]);
        assert_eq!(b.equal_size(), None);
        let g = b.groups();
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].first, g[0].count, g[0].dim), (0, 1, 15));
        assert_eq!((g[1].first, g[1].count, g[1].dim), (1, 2, 7));
        assert_eq!((g[1].columns.clone(), g[1].indices()), (15..29, 1..3));
        assert_eq!(g[2].columns, 29..44);
        // Each block's columns, counted one by one, tile the groups'.
        for grp in &g {
            let first = b.columns(grp.first).start;
            let last = b.columns(grp.first + grp.count - 1).end;
            assert_eq!(first..last, grp.columns);
        }
    }

    #[test]
    fn equal_blocks_make_one_group() {
        let b = Blocks::equal(22, 2);
        assert_eq!(b, Blocks::of(vec![11, 11]));
        assert_eq!(b.equal_size(), Some(11));
        assert_eq!(b.groups().len(), 1);
        assert_eq!(Blocks::equal(5, 0), Blocks::one(5));
    }
}
