//! Hypothesis templates, formatted as transformers does it: `template.format(label)`, Python's
//! `str.format` with one positional argument. Its rules apply: `{}` numbers fields automatically
//! and `{0}` names the argument (the two cannot be mixed); a second `{}` or a `{1}` asks for an
//! argument that does not exist; `{{` and `}}` are literal braces; an unclosed `{` or a lone `}`
//! is an error. A format spec (`{:>10}`) or conversion (`{!r}`), attribute or index (`{0.x}`,
//! `{0[0]}`) is valid Python but not supported here: it is refused with a message saying so.
//! `{:}` and `{!s}` (the plain string) are accepted.

use crate::error::{Error, Result};

/// How a template numbers its fields: Python refuses to mix the two.
#[derive(Clone, Copy, PartialEq)]
enum Numbering {
    Unknown,
    Auto,
    Manual,
}

/// `template.format(label)`.
pub fn hypothesis(template: &str, label: &str) -> Result<String> {
    let bad = |reason: String| Error::BadTemplate { template: template.into(), reason };
    let (mut out, mut numbering, mut auto_index) = (String::new(), Numbering::Unknown, 0usize);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                out.push(c);
                chars.next();
            }
            ('{', _) => {
                let field = field_text(&mut chars).map_err(bad)?;
                let index = field_index(&field, &mut numbering, &mut auto_index).map_err(bad)?;
                if index != 0 {
                    return Err(bad(format!(
                        "{{{field}}} asks for argument {index}, but the template gets one, the label (Python: IndexError)"
                    )));
                }
                out.push_str(label);
            }
            ('}', _) => return Err(bad("single '}' encountered (write }} for a literal brace)".into())),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Every label's hypothesis. As transformers' pipeline does, a template that the first label
/// leaves unchanged is refused: it has nowhere to put the label.
pub fn hypotheses(template: &str, labels: &[String]) -> Result<Vec<String>> {
    let out = labels.iter().map(|label| hypothesis(template, label)).collect::<Result<Vec<_>>>()?;
    if out.first().is_some_and(|first| first == template) {
        return Err(Error::BadTemplate {
            template: template.into(),
            reason: "formatting it with the label changes nothing: write {} where the label goes".into(),
        });
    }
    Ok(out)
}

/// The text between `{` and its `}`; a nested `{` (a computed format spec) is not supported.
fn field_text(chars: &mut std::iter::Peekable<std::str::Chars>) -> std::result::Result<String, String> {
    let mut field = String::new();
    for c in chars.by_ref() {
        match c {
            '}' => return Ok(field),
            '{' => return Err(format!("nested braces in {{{field}{{...}} are not supported")),
            _ => field.push(c),
        }
    }
    Err(format!("expected '}}' before end of string (the field {{{field} is not closed)"))
}

/// The argument index a field asks for, following Python's numbering rules.
fn field_index(field: &str, numbering: &mut Numbering, auto_index: &mut usize) -> std::result::Result<usize, String> {
    let (name, rest) = field.split_at(field.find([':', '!']).unwrap_or(field.len()));
    if !matches!(rest, "" | ":" | "!s" | "!s:") {
        return Err(format!(
            "{{{field}}}: format specs and conversions other than {{:}} and {{!s}} are not supported here; write {{}}"
        ));
    }
    let (mode, index) = if name.is_empty() {
        *auto_index += 1;
        (Numbering::Auto, *auto_index - 1)
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        (Numbering::Manual, name.parse::<usize>().unwrap_or(usize::MAX))
    } else if name.contains(['.', '[']) {
        return Err(format!("{{{field}}}: attribute and index fields are not supported; write {{}}"));
    } else {
        return Err(format!("{{{field}}} names a keyword argument; the template gets only the label, as {{}}"));
    };
    match (*numbering, mode) {
        (Numbering::Auto, Numbering::Manual) | (Numbering::Manual, Numbering::Auto) => {
            Err("cannot switch from automatic field numbering ({}) to manual field specification ({0})".into())
        }
        _ => {
            *numbering = mode;
            Ok(index)
        }
    }
}
