//! The documents stay true: every relative link in README.md and docs/ names a file that exists
//! (and a heading that exists, for `#anchor` links), every `zeroshot …` command they show uses a
//! subcommand and options that `zeroshot --help` lists, and README.md stays under 300 lines.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const README_MAX_LINES: usize = 300;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file in docs/.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// Lines inside fenced code blocks, continuation lines (`\` at the end) joined into one.
fn code_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            open = false;
            continue;
        }
        if !fenced {
            continue;
        }
        let body = line.trim_end().strip_suffix('\\').unwrap_or(line.trim_end());
        match out.last_mut() {
            Some(last) if open => last.push_str(body),
            _ => out.push(body.to_string()),
        }
        open = line.trim_end().ends_with('\\');
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown text has (a repeated heading's later ones get `-1`, `-2`, …).
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else { continue };
        let base = slug(heading);
        let mut name = base.clone();
        let mut n = 0;
        while !seen.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
    }
    seen
}

/// The targets of inline links and images on one line: `[text](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let tail = &rest[at + 2..];
        let Some(end) = tail.find(')') else { break };
        out.push(tail[..end].trim().to_string());
        rest = &tail[end..];
    }
    out
}

/// What is wrong with the relative links of the Markdown file `path` whose text is `text`.
fn broken_links(path: &Path, text: &str) -> Vec<String> {
    let dir = path.parent().expect("a file has a folder");
    let mut problems = Vec::new();
    for (number, line) in prose_lines(text) {
        for target in link_targets(line) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if file.is_empty() { path.to_path_buf() } else { dir.join(file) };
            let at = format!("{}:{number}: link {target:?}", path.display());
            if !linked.exists() {
                problems.push(format!("{at}: no file {}", linked.display()));
            } else if !anchor.is_empty() && !anchors(&read(&linked)).contains(anchor) {
                problems.push(format!("{at}: {} has no heading #{anchor}", linked.display()));
            }
        }
    }
    problems
}

/// Shell words of a command line: quotes group words and are dropped; `quoted` marks a word that had them.
fn shell_words(line: &str) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut quote) = (String::new(), false, None);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => (quote, quoted) = (Some(c), true),
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() || quoted {
                    words.push((std::mem::take(&mut word), quoted));
                }
                quoted = false;
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() || quoted {
        words.push((word, quoted));
    }
    words
}

/// The `zeroshot` invocations a document shows: code-block lines and inline code spans whose
/// first word is the binary (`zeroshot`, `./target/release/zeroshot`, …).
fn zeroshot_commands(text: &str) -> Vec<String> {
    let mut lines = code_lines(text);
    for (_, line) in prose_lines(text) {
        lines.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
    }
    lines
        .into_iter()
        .map(|l| l.trim_start_matches("$ ").trim().to_string())
        .filter(|l| l.split_whitespace().next().is_some_and(|w| w == "zeroshot" || w.ends_with("/zeroshot")))
        .collect()
}

/// What a `zeroshot` command line uses that `help` (the help text of no subcommand, or of one)
/// does not list: an unknown subcommand (a bare first word) or an unknown `--option`.
fn cli_problems(command: &str, help: &dyn Fn(Option<&str>) -> String) -> Vec<String> {
    let words = shell_words(command);
    let mut subcommand = None;
    if let Some((first, false)) = words.get(1).filter(|(w, _)| !w.starts_with('-')) {
        if !help(None).lines().any(|l| l.split_whitespace().next() == Some(first.as_str())) {
            return vec![format!("{command:?}: zeroshot has no subcommand {first:?}")];
        }
        subcommand = Some(first.as_str());
    }
    let text = help(subcommand);
    let listed = |option: &str| text.split(|c: char| !(c.is_alphanumeric() || c == '-')).any(|w| w == option);
    words
        .iter()
        .filter(|(w, quoted)| !quoted && w.starts_with("--"))
        .map(|(w, _)| w.split('=').next().unwrap_or(w))
        .filter(|option| !listed(option))
        .map(|option| format!("{command:?}: {option} is not in `zeroshot {} --help`", subcommand.unwrap_or("")))
        .collect()
}

fn real_help(subcommand: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zeroshot"));
    cmd.args(subcommand).arg("--help");
    let out = cmd.output().expect("run zeroshot --help");
    assert!(out.status.success(), "zeroshot {subcommand:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

#[test]
fn every_relative_link_names_a_file_and_heading_that_exist() {
    let problems: Vec<String> = documents().iter().flat_map(|p| broken_links(p, &read(p))).collect();
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn every_zeroshot_command_in_the_docs_is_one_the_cli_has() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for path in documents() {
        for command in zeroshot_commands(&read(&path)) {
            checked += 1;
            problems.extend(cli_problems(&command, &real_help).into_iter().map(|p| format!("{}: {p}", path.display())));
        }
    }
    assert!(checked >= 3, "found only {checked} zeroshot commands in the docs: is the parser blind?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn readme_stays_short() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(lines <= README_MAX_LINES, "README.md has {lines} lines, over {README_MAX_LINES}: move detail to docs/");
}

#[test]
fn the_checks_find_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("zeroshot-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("other.md"), "# Other page\n## Its `part`, two\n").unwrap();
    let page = dir.join("page.md");
    let text = "# Page\n[ok](other.md#its-part-two) [ok](#page) [gone](missing.md) [bad](other.md#nope)\n\
                ```\n[not a link](in-code.md)\n```\n";
    std::fs::write(&page, text).unwrap();
    let problems = broken_links(&page, text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("no file") && problems[0].contains("missing.md"), "{problems:?}");
    assert!(problems[1].contains("no heading #nope"), "{problems:?}");

    let help = |sub: Option<&str>| match sub {
        None => "Commands:\n  convert  Write\nOptions:\n  --model <MODEL>\n  --multi-label\n".to_string(),
        Some(_) => "Options:\n  --to <TO>\n".to_string(),
    };
    let doc = "```sh\n./target/release/zeroshot --model m \\\n    --labels \"a, b\" \"text --not-an-option\"\n\
               zeroshot frobnicate x\n```\nRun `zeroshot convert --to int8 --from x a b` or `zeroshot --multi-label`.\n";
    let commands = zeroshot_commands(doc);
    assert_eq!(commands.len(), 4, "{commands:?}");
    let problems: Vec<String> = commands.iter().flat_map(|c| cli_problems(c, &help)).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("--labels"), "{problems:?}");
    assert!(problems[1].contains("no subcommand \"frobnicate\""), "{problems:?}");
    assert!(problems[2].contains("--from"), "{problems:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
