//! flowgate's own rule format (TOML). See `deploy/rules/sqli.toml`.

use super::{Action, Buffer, Cond, RuleFileError, SigRule};
use crate::rules::{RuleId, RuleMeta};
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    id: RuleId,
    #[serde(default = "one")]
    rev: u32,
    #[serde(default)]
    name: Option<String>,
    msg: String,
    #[serde(default = "web_attack")]
    category: String,
    #[serde(default = "one_u8")]
    severity: u8,
    #[serde(default = "block")]
    action: Action,
    #[serde(default = "any")]
    buffer: Buffer,
    #[serde(default)]
    reason: Option<String>,
    patterns: Vec<String>,
}

fn one() -> u32 {
    1
}
fn one_u8() -> u8 {
    1
}
fn web_attack() -> String {
    "Web Application Attack".into()
}
fn block() -> Action {
    Action::Block
}
fn any() -> Buffer {
    Buffer::Any
}

/// Parses a rules file; errors name the file, line and key.
pub fn parse(text: &str, origin: &str) -> Result<Vec<SigRule>, RuleFileError> {
    let invalid = |message: String| RuleFileError::Invalid {
        origin: origin.to_string(),
        message,
    };
    let f: File =
        toml::from_str(text).map_err(|e| invalid(e.to_string().trim().replace('\n', " ")))?;
    let mut out = Vec::with_capacity(f.rule.len());
    for r in f.rule {
        if r.patterns.is_empty() {
            return Err(invalid(format!("rule {}: `patterns` is empty", r.id)));
        }
        if !(1..=4).contains(&r.severity) {
            return Err(invalid(format!(
                "rule {}: severity {} (allowed 1 to 4)",
                r.id, r.severity
            )));
        }
        let name = r.name.unwrap_or_else(|| format!("sig_{}", r.id));
        out.push(SigRule {
            meta: RuleMeta {
                id: r.id,
                rev: r.rev,
                fires_when: Cow::Owned(format!(
                    "{} matches {} pattern(s) in the {} buffer",
                    r.msg,
                    r.patterns.len(),
                    r.buffer.name()
                )),
                name: Cow::Owned(name),
                msg: Cow::Owned(r.msg.clone()),
                category: Cow::Owned(r.category),
                severity: r.severity,
            },
            action: r.action,
            reason: r.reason.unwrap_or(r.msg),
            conds: r
                .patterns
                .into_iter()
                .map(|pattern| Cond {
                    buffer: r.buffer,
                    pattern,
                })
                .collect(),
            detect: None,
            origin: origin.to_string(),
        });
    }
    Ok(out)
}
