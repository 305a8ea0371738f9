//! Workload files: TOML whose keys are the `produce`/`consume`/`e2e` flags (dashes or
//! underscores), plus `workload = "produce" | "consume" | "e2e"` and an optional `description`.
//! The file is turned into a command line and parsed by the same clap definitions, so a file can
//! say exactly what flags can, and flags given after `--` override it.
//!
//! ```toml
//! workload = "e2e"
//! description = "OMB 1 KiB records, 100 partitions, 10k/s"
//! topic = "omb-1k-100p"
//! partitions = 100
//! record-size = "1KiB"
//! rate = 10000
//! duration = "30s"
//! warmup = "5s"
//! ```

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;

use crate::load::{LoadArgs, Workload};

/// Reads `path` and returns the workload and its parameters; `overrides` are extra flags.
pub fn load(path: &Path, overrides: &[String]) -> Result<(Workload, LoadArgs)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, overrides).with_context(|| format!("in {}", path.display()))
}

/// Parses a workload file's text.
pub fn parse(text: &str, overrides: &[String]) -> Result<(Workload, LoadArgs)> {
    let table: toml::Table = toml::from_str(text)?;
    let workload = match table.get("workload").and_then(|v| v.as_str()) {
        Some("produce") => Workload::Produce,
        Some("consume") => Workload::Consume,
        Some("e2e") => Workload::E2e,
        other => bail!("`workload` must be \"produce\", \"consume\" or \"e2e\", not {other:?}"),
    };
    let sub = match workload {
        Workload::Produce => "produce",
        Workload::Consume => "consume",
        Workload::E2e => "e2e",
    };
    let mut argv = vec!["odradek-bench".to_owned(), sub.to_owned()];
    for (key, value) in &table {
        let flag = format!("--{}", key.replace('_', "-"));
        // A flag given on the command line replaces the file's value.
        if key == "workload" || key == "description" || overrides.contains(&flag) {
            continue;
        }
        match value {
            toml::Value::Boolean(true) => argv.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => argv.extend([flag, s.clone()]),
            toml::Value::Integer(i) => argv.extend([flag, i.to_string()]),
            toml::Value::Float(f) => argv.extend([flag, f.to_string()]),
            toml::Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                argv.extend([flag, parts.join(",")]);
            }
            other => bail!("`{key}`: unsupported value {other}"),
        }
    }
    argv.extend(overrides.iter().cloned());
    let cli = crate::Cli::try_parse_from(&argv).map_err(|e| anyhow!("{e}"))?;
    match cli.command {
        crate::Command::Produce(a) | crate::Command::Consume(a) | crate::Command::E2e(a) => {
            Ok((workload, a))
        }
        _ => bail!("not a load workload"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_file_sets_flags_and_overrides_win() {
        let text = r#"
            workload = "e2e"
            description = "test"
            topic = "t1"
            partitions = 100
            record_size = "1KiB"
            rate = 10000
            duration = "30s"
            idempotence = true
            acks = "all"
            cpus = [0, 1]
        "#;
        let (w, a) = parse(text, &["--duration".to_owned(), "2s".to_owned()]).expect("parses");
        assert_eq!(w, Workload::E2e);
        assert_eq!(a.topic, "t1");
        assert_eq!(a.partitions, 100);
        assert_eq!(a.record_size, crate::dist::SizeDist::Fixed(1024));
        assert_eq!(a.rate, Some(10000.0));
        assert_eq!(a.duration, Duration::from_secs(2));
        assert!(a.idempotence);
        assert_eq!(a.acks, -1);
        assert_eq!(a.cpus, vec![0, 1]);
    }

    #[test]
    fn unknown_keys_and_workloads_are_errors() {
        assert!(parse("workload = \"e2e\"\nbogus = 1", &[]).is_err());
        assert!(parse("workload = \"other\"", &[]).is_err());
    }

    #[test]
    fn the_standard_workloads_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("bench/workloads") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                let (_, a) = load(&p, &[]).expect("standard workload parses");
                assert!(a.duration <= Duration::from_secs(60), "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 4, "{n} workloads");
    }
}
