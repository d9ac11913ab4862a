//! The documentation names only what exists: every relative link and every repository path
//! (in backticks or a code block) in README.md, docs/*.md and packaging/README.md must exist
//! in the repository, no link may leave it, and no text may point at an issue number, which
//! readers of the repository cannot see.

use std::path::{Path, PathBuf};

/// Where repository paths start. Paths under target/ are build outputs, not checked.
const ROOTS: [&str; 6] = ["src/", "tests/", "packaging/", "docs/", "fuzz/", ".ci/"];
const TOP_FILES: [&str; 5] = [
    "Cargo.toml",
    "Cargo.lock",
    "Cross.toml",
    "README.md",
    ".gitignore",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md"), repo().join("packaging/README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("no docs/ directory")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

/// Markdown link targets: the part inside `](...)`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_owned());
        }
    }
    out
}

/// Text in backticks, and every line of a fenced code block.
fn code_spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(line.to_owned());
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        // Odd-numbered pieces are inside backticks (spans do not cross lines here).
        out.extend(parts.iter().skip(1).step_by(2).map(|s| (*s).to_owned()));
    }
    out
}

/// A placeholder such as TARGET, NAME or VERSION, or shell syntax: not a literal path.
fn is_placeholder(path: &str) -> bool {
    path.contains(['<', '>', '$', '{', '}', '[', ']'])
        || path.split(['/', '.', '-', '_']).any(|seg| {
            seg.len() >= 2
                && seg.chars().any(|c| c.is_ascii_uppercase())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

/// The repository paths a code span names.
fn repo_paths(span: &str) -> Vec<String> {
    span.split(|c: char| c.is_whitespace() || c == '=' || c == '"' || c == '\'' || c == '(')
        .map(|t| t.trim_end_matches([',', ';', ':', '.', ')']))
        .map(|t| t.strip_prefix("./").unwrap_or(t))
        .filter(|t| ROOTS.iter().any(|r| t.starts_with(r)) || TOP_FILES.contains(t))
        .filter(|t| !is_placeholder(t))
        .map(str::to_owned)
        .collect()
}

fn exists(root: &Path, path: &str) -> bool {
    if let Some(star) = path.find('*') {
        // A glob: its directory must exist.
        let dir = &path[..path[..star].rfind('/').map_or(0, |i| i + 1)];
        return root.join(dir).is_dir();
    }
    root.join(path).exists()
}

/// "issue 17", "issue #17", "#17" (not "&#17;" or a Markdown heading).
fn issue_reference(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    for (i, _) in lower.match_indices("issue") {
        let after = lower[i + 5..].trim_start_matches([' ', 's']);
        let after = after.strip_prefix('#').unwrap_or(after);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(line.to_owned());
        }
    }
    let bytes = line.as_bytes();
    for (i, _) in line.match_indices('#') {
        let before = if i == 0 { b' ' } else { bytes[i - 1] };
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        if next.is_ascii_digit() && (before == b' ' || before == b'(') {
            return Some(line.to_owned());
        }
    }
    None
}

#[test]
fn every_link_and_path_in_the_docs_exists() {
    let root = repo();
    let canonical_root = root.canonicalize().unwrap();
    let mut problems = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(&root).unwrap().display().to_string();
        let dir = doc.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with('#') || link.starts_with("mailto:") {
                continue;
            }
            let target = link.split('#').next().unwrap();
            let path = dir.join(target);
            match path.canonicalize() {
                Ok(p) if p.starts_with(&canonical_root) => {}
                Ok(p) => problems.push(format!(
                    "{name}: link {link} leaves the repository ({})",
                    p.display()
                )),
                Err(_) => problems.push(format!("{name}: link {link}: no such file")),
            }
        }
        for span in code_spans(&text) {
            for path in repo_paths(&span) {
                if !exists(&root, &path) {
                    problems.push(format!("{name}: names {path}, which does not exist"));
                }
            }
        }
        for line in text.lines() {
            if line.contains("../shared") {
                problems.push(format!("{name}: points outside the repository: {line}"));
            }
            if let Some(l) = issue_reference(line) {
                problems.push(format!("{name}: points at an issue number: {l}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the docs name what does not exist:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_finds_what_it_should() {
    assert_eq!(
        repo_paths("packaging/install.sh DESTDIR PREFIX [BINARY]"),
        ["packaging/install.sh"]
    );
    assert_eq!(
        repo_paths("cargo +nightly fuzz run TARGET fuzz/corpus/TARGET"),
        Vec::<String>::new()
    );
    assert_eq!(
        repo_paths("tests/lab/scenarios/*.sh"),
        ["tests/lab/scenarios/*.sh"]
    );
    assert!(exists(&repo(), "tests/lab/scenarios/*.sh"));
    assert!(!exists(&repo(), "tests/no-such-file.rs"));
    assert_eq!(
        links("see [lab](docs/lab.md#x) and [b](../b)"),
        ["docs/lab.md#x", "../b"]
    );
    assert!(issue_reference("fixed in issue #8").is_some());
    assert!(issue_reference("(#12)").is_some());
    assert!(issue_reference("## Heading").is_none());
    assert!(issue_reference("the enabled backends issue (SG_IO").is_none());
}
