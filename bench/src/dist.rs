//! Random choices of the load generator: a small fast PRNG, record-size and key distributions.
//! Deterministic per seed so runs are repeatable.

use std::str::FromStr;

/// Largest number of distinct keys (bounds the zipf table).
pub const KEYS_MAX: u64 = 10_000_000;

/// SplitMix64: fast, small, good enough for load generation (not cryptographic).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Record value size: fixed (`100`) or uniform in a range (`64..1024`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SizeDist {
    Fixed(usize),
    Uniform { min: usize, max: usize },
}

impl SizeDist {
    pub fn sample(&self, rng: &mut Rng) -> usize {
        match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform { min, max } => min + rng.below((max - min + 1) as u64) as usize,
        }
    }

    pub fn max(&self) -> usize {
        match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform { max, .. } => max,
        }
    }

    pub fn mean(&self) -> f64 {
        match *self {
            SizeDist::Fixed(n) => n as f64,
            SizeDist::Uniform { min, max } => (min + max) as f64 / 2.0,
        }
    }
}

impl FromStr for SizeDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let size = |x: &str| -> Result<usize, String> {
            let n = crate::units::parse_size(x)?;
            if n > 64 << 20 {
                return Err(format!("record size {x} is larger than 64 MiB"));
            }
            Ok(n as usize)
        };
        match s.split_once("..") {
            None => Ok(SizeDist::Fixed(size(s)?)),
            Some((a, b)) => {
                let (min, max) = (size(a)?, size(b)?);
                if min > max {
                    return Err(format!("record size range {s} is empty"));
                }
                Ok(SizeDist::Uniform { min, max })
            }
        }
    }
}

impl std::fmt::Display for SizeDist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeDist::Fixed(n) => write!(f, "{n}"),
            SizeDist::Uniform { min, max } => write!(f, "{min}..{max}"),
        }
    }
}

/// Key choice: no key, uniform over N keys (`uniform:N`), or zipf over N keys with exponent s
/// (`zipf:N` or `zipf:N:S`, default s = 0.99, key 0 the most frequent).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum KeyDist {
    None,
    Uniform(u64),
    Zipf { keys: u64, exponent: f64 },
}

impl FromStr for KeyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let keys = |x: &str| -> Result<u64, String> {
            let n: u64 = x.parse().map_err(|e| format!("`{x}` is not a key count: {e}"))?;
            if n == 0 || n > KEYS_MAX {
                return Err(format!("key count must be 1..={KEYS_MAX}"));
            }
            Ok(n)
        };
        match parts.as_slice() {
            ["none"] => Ok(KeyDist::None),
            ["uniform", n] => Ok(KeyDist::Uniform(keys(n)?)),
            ["zipf", n] => Ok(KeyDist::Zipf { keys: keys(n)?, exponent: 0.99 }),
            ["zipf", n, e] => {
                let exponent: f64 =
                    e.parse().map_err(|err| format!("`{e}` is not an exponent: {err}"))?;
                if !(exponent > 0.0 && exponent < 10.0) {
                    return Err("zipf exponent must be in (0, 10)".to_owned());
                }
                Ok(KeyDist::Zipf { keys: keys(n)?, exponent })
            }
            _ => Err(format!("`{s}`: keys are `none`, `uniform:N`, `zipf:N` or `zipf:N:S`")),
        }
    }
}

impl std::fmt::Display for KeyDist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyDist::None => write!(f, "none"),
            KeyDist::Uniform(n) => write!(f, "uniform:{n}"),
            KeyDist::Zipf { keys, exponent } => write!(f, "zipf:{keys}:{exponent}"),
        }
    }
}

/// Draws key indexes from a [`KeyDist`]; the zipf case inverts a precomputed CDF.
#[derive(Debug, Clone)]
pub struct KeySampler {
    dist: KeyDist,
    cdf: Vec<f64>,
}

impl KeySampler {
    pub fn new(dist: &KeyDist) -> KeySampler {
        let cdf = match *dist {
            KeyDist::Zipf { keys, exponent } => {
                let mut acc = 0.0;
                let mut cdf: Vec<f64> = (1..=keys)
                    .map(|k| {
                        acc += 1.0 / (k as f64).powf(exponent);
                        acc
                    })
                    .collect();
                for c in &mut cdf {
                    *c /= acc;
                }
                cdf
            }
            _ => Vec::new(),
        };
        KeySampler { dist: dist.clone(), cdf }
    }

    /// The next key index, or `None` for unkeyed records.
    pub fn sample(&self, rng: &mut Rng) -> Option<u64> {
        match self.dist {
            KeyDist::None => None,
            KeyDist::Uniform(n) => Some(rng.below(n)),
            KeyDist::Zipf { .. } => {
                let u = rng.unit();
                let i = self.cdf.partition_point(|&c| c < u);
                Some(i.min(self.cdf.len() - 1) as u64)
            }
        }
    }
}

/// Writes key `k` as its ASCII form `k<index>` into `out` (cleared first).
pub fn key_bytes(k: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "k{k:010}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_keys_parse() {
        assert_eq!("100".parse::<SizeDist>(), Ok(SizeDist::Fixed(100)));
        assert_eq!("1KiB".parse::<SizeDist>(), Ok(SizeDist::Fixed(1024)));
        assert_eq!("64..1k".parse::<SizeDist>(), Ok(SizeDist::Uniform { min: 64, max: 1024 }));
        assert!("10..5".parse::<SizeDist>().is_err());
        assert_eq!("uniform:10".parse::<KeyDist>(), Ok(KeyDist::Uniform(10)));
        assert_eq!("zipf:5:1.2".parse::<KeyDist>(), Ok(KeyDist::Zipf { keys: 5, exponent: 1.2 }));
        assert!("zipf:0".parse::<KeyDist>().is_err());
        assert!("other".parse::<KeyDist>().is_err());
    }

    #[test]
    fn uniform_sizes_stay_in_range_and_zipf_favours_the_first_keys() {
        let mut rng = Rng::new(1);
        let d = SizeDist::Uniform { min: 10, max: 20 };
        let sizes: Vec<usize> = (0..10_000).map(|_| d.sample(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| (10..=20).contains(&s)));
        assert!(sizes.contains(&10) && sizes.contains(&20));
        let z = KeySampler::new(&KeyDist::Zipf { keys: 100, exponent: 1.0 });
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng).expect("keyed") as usize] += 1;
        }
        // P(key 0) = 1/H(100) ≈ 0.193; P(key 99) ≈ 0.0019.
        assert!((17_000..21_500).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[0] > 5 * counts[9] && counts[9] > counts[99]);
        let u = KeySampler::new(&KeyDist::Uniform(4));
        assert!((0..1000).all(|_| u.sample(&mut rng).is_some_and(|k| k < 4)));
    }
}
