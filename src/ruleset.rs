//! Everything the engine decides with: the rule book (behavioural rules
//! plus every signature rule loaded) and the compiled signatures. Built off
//! the packet path; shards hold it by `Arc`, and a reload hands them a new
//! one between batches. `analyze`, `live`, a reload and `rules check` all
//! load through [`Ruleset::load`].

use crate::config::SignaturesConfig;
use crate::rules::RuleBook;
use crate::signature::{self, CompileError, Rejected, RuleFileError, SignatureSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Why a rule set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesetError {
    /// A rule file could not be read, or a flowgate TOML file is invalid.
    #[error(transparent)]
    File(#[from] RuleFileError),
    /// Hyperscan refused a pattern, or a rule ID is defined twice.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// Suricata rules that do not map, with `signatures.strict` set.
    #[error("{} rule(s) do not map (signatures.strict = true):\n  {}", .0.len(), list(.0))]
    Strict(Vec<Rejected>),
}

fn list(rejected: &[Rejected]) -> String {
    let lines: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
    lines.join("\n  ")
}

/// How one rule file loaded.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// The file, as named in `signatures.rule_files`.
    pub path: PathBuf,
    /// Rules that mapped (and, once `load` returns, compiled).
    pub loaded: usize,
    /// Rules skipped, with why (also in `Ruleset::rejected`).
    pub rejected: usize,
}

/// A loaded rule set: immutable once built, shared by every shard through
/// an `Arc`, replaced as a whole on reload.
#[derive(Debug)]
pub struct Ruleset {
    /// Every rule a decision can name: the behavioural rules plus every
    /// signature rule loaded.
    pub book: RuleBook,
    /// The compiled signatures; `None` when signatures are disabled or no
    /// rule loaded, and then shards do no HTTP inspection at all.
    pub signatures: Option<Arc<SignatureSet>>,
    /// Rules that did not load, with why.
    pub rejected: Vec<Rejected>,
    /// Per rule file, in configuration order.
    pub files: Vec<FileReport>,
}

impl Ruleset {
    /// Behavioural rules only.
    pub fn builtin_only() -> Ruleset {
        Ruleset {
            book: RuleBook::builtin(),
            signatures: None,
            rejected: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Loads and compiles what `cfg` asks for. Fails on unreadable files,
    /// duplicate IDs and compile errors (naming rule and pattern), and on
    /// unmappable Suricata rules when `strict`.
    pub fn load(cfg: &SignaturesConfig) -> Result<Ruleset, RulesetError> {
        let mut set = Ruleset::builtin_only();
        if !cfg.enabled {
            return Ok(set);
        }
        let mut rules = Vec::new();
        if cfg.builtin {
            rules.extend(signature::native::parse(
                signature::BUILTIN_SQLI,
                "built-in sqli.toml",
            )?);
        }
        for path in &cfg.rule_files {
            let (ok, bad) = signature::load_file(path)?;
            set.files.push(FileReport {
                path: path.clone(),
                loaded: ok.len(),
                rejected: bad.len(),
            });
            rules.extend(ok);
            set.rejected.extend(bad);
        }
        if cfg.strict && !set.rejected.is_empty() {
            return Err(RulesetError::Strict(set.rejected));
        }
        let compiled = SignatureSet::compile(rules, &mut set.book)?;
        for r in &compiled.rejected {
            // Count a rule Hyperscan refused against its file.
            let file = r.origin.rsplit_once(':').map_or(r.origin.as_str(), |x| x.0);
            if let Some(f) = set
                .files
                .iter_mut()
                .find(|f| f.path.display().to_string() == file)
            {
                f.loaded = f.loaded.saturating_sub(1);
                f.rejected += 1;
            }
        }
        set.rejected.extend(compiled.rejected.iter().cloned());
        if cfg.strict && !set.rejected.is_empty() {
            return Err(RulesetError::Strict(set.rejected));
        }
        set.signatures = (compiled.live_count() > 0).then(|| Arc::new(compiled));
        Ok(set)
    }

    /// Signature rules that can fire (behavioural rules and skipped rules
    /// not counted).
    pub fn signature_count(&self) -> usize {
        self.signatures.as_ref().map_or(0, |s| s.live_count())
    }

    /// Skip reasons grouped by kind, most frequent first (`rules check`).
    pub fn reasons(&self) -> Vec<(String, usize)> {
        let mut m: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &self.rejected {
            *m.entry(r.kind()).or_default() += 1;
        }
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}
