//! Structure check: no import cycle among the modules of `backend/src`, at file
//! granularity.
//!
//! Each file is one module (`bus/mailbox.rs` → `bus::mailbox`, `http/mod.rs` → `http`,
//! `lib.rs` → the root; `bin/`, `tests.rs` and `tests/` are left out). An edge `a -> b`
//! means a file of `a` names something of `b` in non-test code: a private `use` of
//! `crate::`/`super::`/`self::`/a child module, or an inline path such as
//! `crate::envelope::nanos_since_epoch`. A path resolves to the deepest module that is a
//! file, then through the `use` lines of that module (`crate::Error` → `error`) to where
//! the item is defined. Re-export lines (`pub use ...`), `mod x;` lines, `#[cfg(test)]`
//! items, comments and string literals make no edge.
//!
//! `cargo test -p swarmbus --test architecture -- --nocapture` prints the graph figures.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// A module path from the crate root; empty for the root.
type ModPath = Vec<String>;

/// Where an edge is first seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

/// One lexical token of stripped source, with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
struct Tok {
    text: String,
    line: usize,
}

/// One name a `use` line brings in.
#[derive(Debug, Clone)]
struct UseItem {
    /// The path as written, `self` inside braces already folded into its prefix.
    path: Vec<String>,
    /// The name bound (`None` for a glob).
    name: Option<String>,
    glob: bool,
    line: usize,
}

/// What one file says, after stripping.
#[derive(Debug, Default)]
struct FileFacts {
    file: String,
    /// Every `use` item, re-exports included (they resolve paths through this module).
    uses: Vec<(UseItem, bool)>,
    /// Inline paths (`crate::a::b`, `super::x`, `child::y`) with their line.
    paths: Vec<(Vec<String>, usize)>,
    /// Names of items defined in the file (for glob re-exports).
    defines: BTreeSet<String>,
}

/// The module graph of one source tree.
#[derive(Debug, Default)]
struct Graph {
    modules: BTreeMap<ModPath, FileFacts>,
    /// `from -> to` → first reference.
    edges: BTreeMap<(ModPath, ModPath), Site>,
}

/// The module a file under `src/` stands for; `None` for files left out.
fn module_of(rel: &str) -> Option<ModPath> {
    let rel = rel.replace('\\', "/");
    let stem = rel.strip_suffix(".rs")?;
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.first().map(String::as_str) == Some("bin")
        || parts.iter().any(|p| p == "tests")
        || parts.last().map(String::as_str) == Some("main") && parts.len() == 1
    {
        return None;
    }
    match parts.last().map(String::as_str) {
        Some("lib") if parts.len() == 1 => Some(Vec::new()),
        Some("mod") => {
            parts.pop();
            Some(parts)
        }
        _ => Some(parts),
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A string literal that is only a module path (`"crate::config::duration_serde"`, as
/// in `#[serde(with = ...)]`) names code; it is kept. Any other literal is blanked.
fn is_path_literal(s: &str) -> bool {
    let mut parts = s.split("::");
    matches!(parts.next(), Some("crate" | "super" | "self"))
        && s.contains("::")
        && parts.all(|p| !p.is_empty() && p.chars().all(is_ident_char))
}

/// Blanks comments (line, block, doc), string literals and char literals, keeping
/// newlines so that lines still count.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, s: &[char]| {
        for &ch in s {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && is_ident_char(c[i - 1]);
        // Line comment (doc comments too).
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p);
            blank(&mut out, &c[i..end]);
            i = end;
            continue;
        }
        // Block comment, nested.
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let (mut j, mut depth) = (i + 2, 1);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            let j = j.min(c.len());
            blank(&mut out, &c[i..j]);
            i = j;
            continue;
        }
        // Raw string: r"..", r#".."#, br#".."#.
        if !prev_ident && (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r'))) {
            let mut j = if c[i] == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let mut k = j + 1;
                loop {
                    if k >= c.len() {
                        break;
                    }
                    if c[k] == '"' && (0..hashes).all(|h| c.get(k + 1 + h) == Some(&'#')) {
                        k += 1 + hashes;
                        break;
                    }
                    k += 1;
                }
                let k = k.min(c.len());
                blank(&mut out, &c[i..k]);
                i = k;
                continue;
            }
        }
        // Ordinary (or byte) string.
        if c[i] == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            let k = (k + 1).min(c.len());
            let body: String = c[(i + 1).min(k)..k.saturating_sub(1).max(i + 1)]
                .iter()
                .collect();
            if is_path_literal(&body) {
                out.push(' ');
                out.push_str(&body);
                out.push(' ');
            } else {
                blank(&mut out, &c[i..k]);
            }
            i = k;
            continue;
        }
        // Char literal ('x', '\n', '\u{..}'); a lifetime ('a) is left alone.
        if c[i] == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                let mut k = i + 2;
                while k < c.len() && c[k] != '\'' && c[k] != '\n' {
                    k += 1;
                }
                let k = (k + 1).min(c.len());
                blank(&mut out, &c[i..k]);
                i = k;
                continue;
            }
            if c.get(i + 2) == Some(&'\'') {
                blank(&mut out, &c[i..i + 3]);
                i += 3;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Splits stripped source into identifiers, `::`, and single punctuation characters.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if is_ident_char(ch) {
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            toks.push(Tok {
                text: c[start..i].iter().collect(),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            toks.push(Tok {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            toks.push(Tok {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    toks
}

/// Index just past the `close` matching the `open` at `start`.
fn skip_group(toks: &[Tok], start: usize, open: &str, close: &str) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < toks.len() {
        if toks[i].text == open {
            depth += 1;
        } else if toks[i].text == close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    toks.len()
}

/// True for `cfg(test)` and `cfg(all(test, ...))`; not for `cfg(not(test))`.
fn is_cfg_test(attr: &[Tok]) -> bool {
    let s: String = attr.iter().map(|t| t.text.as_str()).collect();
    s == "cfg(test)" || s.starts_with("cfg(all(test,")
}

/// Drops `#[cfg(test)]` items (up to their `;` or the end of their braced block), and the
/// whole file under an inner `#![cfg(test)]`.
fn drop_cfg_test(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let inner = toks.get(i + 1).map(|t| t.text.as_str()) == Some("!");
        let bracket = if inner { i + 2 } else { i + 1 };
        if toks[i].text == "#" && toks.get(bracket).map(|t| t.text.as_str()) == Some("[") {
            let end = skip_group(&toks, bracket, "[", "]");
            let attr = &toks[bracket + 1..end.saturating_sub(1).max(bracket + 1)];
            if is_cfg_test(attr) {
                if inner {
                    return Vec::new();
                }
                i = skip_item(&toks, end);
                continue;
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// Index just past the item starting at `start` (its further attributes included): its
/// `;`, its braced block, or (a field, a variant, an argument) its `,` or the enclosing `}`.
fn skip_item(toks: &[Tok], start: usize) -> usize {
    let mut i = start;
    let mut depth = 0usize;
    while i < toks.len() {
        let arrow = i > 0 && matches!(toks[i - 1].text.as_str(), "-" | "=");
        match toks[i].text.as_str() {
            "(" | "[" | "<" => depth += 1,
            ">" if arrow => {}
            ")" | "]" | ">" => depth = depth.saturating_sub(1),
            ";" | "," if depth == 0 => return i + 1,
            "}" if depth == 0 => return i,
            "{" if depth == 0 => return skip_group(toks, i, "{", "}"),
            _ => {}
        }
        i += 1;
    }
    toks.len()
}

/// Parses the use tree starting at `*i` (just after `use`) up to its `;`.
fn parse_use(toks: &[Tok], i: &mut usize) -> Vec<UseItem> {
    let mut out = Vec::new();
    parse_use_tree(toks, i, &[], &mut out);
    while *i < toks.len() && toks[*i].text != ";" {
        *i += 1;
    }
    out
}

fn parse_use_tree(toks: &[Tok], i: &mut usize, prefix: &[String], out: &mut Vec<UseItem>) {
    let mut path = prefix.to_vec();
    if toks.get(*i).map(|t| t.text.as_str()) == Some("::") {
        *i += 1; // `use ::std::...`: an external crate, kept as written.
    }
    loop {
        let Some(t) = toks.get(*i) else { return };
        let line = t.line;
        match t.text.as_str() {
            "{" => {
                *i += 1;
                while let Some(t) = toks.get(*i) {
                    match t.text.as_str() {
                        "}" => {
                            *i += 1;
                            return;
                        }
                        "," => *i += 1,
                        _ => {
                            let before = *i;
                            parse_use_tree(toks, i, &path, out);
                            if *i == before {
                                *i += 1; // never stall on a token the grammar does not know
                            }
                        }
                    }
                }
                return;
            }
            "*" => {
                *i += 1;
                out.push(UseItem {
                    path,
                    name: None,
                    glob: true,
                    line,
                });
                return;
            }
            s if s.chars().all(is_ident_char) && !s.is_empty() => {
                *i += 1;
                // `self` inside braces is the prefix itself.
                if s != "self" || path.is_empty() {
                    path.push(s.to_string());
                }
                if toks.get(*i).map(|t| t.text.as_str()) == Some("::") {
                    *i += 1;
                    continue;
                }
                let mut name = path.last().cloned();
                if toks.get(*i).map(|t| t.text.as_str()) == Some("as") {
                    name = toks.get(*i + 1).map(|t| t.text.clone());
                    *i += 2;
                }
                out.push(UseItem {
                    path,
                    name,
                    glob: false,
                    line,
                });
                return;
            }
            _ => return,
        }
    }
}

/// True when the `use` at `i` is a re-export (`pub use`, `pub(crate) use`, ...).
fn is_reexport(toks: &[Tok], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).map(|p| &toks[p]) else {
        return false;
    };
    if prev.text == "pub" {
        return true;
    }
    if prev.text == ")" {
        // Walk back to the matching `(` and look for `pub` before it.
        let mut depth = 0usize;
        let mut j = i - 1;
        loop {
            match toks[j].text.as_str() {
                ")" => depth += 1,
                "(" => {
                    depth -= 1;
                    if depth == 0 {
                        return j > 0 && toks[j - 1].text == "pub";
                    }
                }
                _ => {}
            }
            if j == 0 {
                return false;
            }
            j -= 1;
        }
    }
    false
}

const DEFINING: [&str; 9] = [
    "struct", "enum", "trait", "type", "fn", "const", "static", "union", "mod",
];

/// Reads the `use` items, inline paths and defined names of one stripped file.
fn facts(file: &str, src: &str) -> FileFacts {
    let toks = drop_cfg_test(tokenize(&strip(src)));
    let mut f = FileFacts {
        file: file.to_string(),
        ..FileFacts::default()
    };
    let text = |j: usize| toks.get(j).map(|t| t.text.as_str());
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].text.as_str();
        if t == "use" && text(i + 1) != Some("<") && text(i.wrapping_sub(1)) != Some("::") {
            let reexport = is_reexport(&toks, i);
            i += 1;
            for item in parse_use(&toks, &mut i) {
                f.uses.push((item, reexport));
            }
            continue;
        }
        if (DEFINING.contains(&t) || t == "macro_rules") && i + 1 < toks.len() {
            let name_at = if t == "macro_rules" { i + 2 } else { i + 1 };
            if let Some(n) = text(name_at) {
                if n.chars().all(is_ident_char) {
                    f.defines.insert(n.to_string());
                }
            }
        }
        // The start of an inline path: `x::` not preceded by `::`, `.`, or `in` (a
        // `pub(in crate::x)` visibility names no item).
        let starts_path = t.chars().all(is_ident_char)
            && text(i + 1) == Some("::")
            && !matches!(text(i.wrapping_sub(1)), Some("::" | "." | "in"));
        if starts_path {
            let line = toks[i].line;
            let mut path = vec![t.to_string()];
            let mut j = i + 1;
            while text(j) == Some("::") {
                match text(j + 1) {
                    Some(s) if s.chars().all(is_ident_char) && !s.is_empty() => {
                        path.push(s.to_string());
                        j += 2;
                    }
                    _ => break,
                }
            }
            f.paths.push((path, line));
            i = j;
            continue;
        }
        i += 1;
    }
    f
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

impl Graph {
    /// Builds the graph from `(path under src/, source)` pairs.
    fn build(files: &[(String, String)]) -> Graph {
        let mut g = Graph::default();
        for (rel, src) in files {
            if let Some(m) = module_of(rel) {
                g.modules.insert(m, facts(rel, src));
            }
        }
        let mut edges: BTreeMap<(ModPath, ModPath), Site> = BTreeMap::new();
        for (m, f) in &g.modules {
            let mut refs: Vec<(&Vec<String>, usize)> = f
                .uses
                .iter()
                .filter(|(_, reexport)| !reexport)
                .map(|(u, _)| (&u.path, u.line))
                .collect();
            refs.extend(f.paths.iter().map(|(p, l)| (p, *l)));
            for (path, line) in refs {
                let Some(to) = g.resolve(m, path) else {
                    continue;
                };
                if &to == m {
                    continue;
                }
                let site = Site {
                    file: f.file.clone(),
                    line,
                };
                let e = edges.entry((m.clone(), to)).or_insert_with(|| site.clone());
                if site < *e {
                    *e = site;
                }
            }
        }
        g.edges = edges;
        g
    }

    /// A path as written in module `from`, made absolute; `None` when it leaves the crate.
    fn absolute(&self, from: &[String], path: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> = from.to_vec();
        let mut rest = path;
        match rest.first().map(String::as_str)? {
            "crate" => {
                base.clear();
                rest = &rest[1..];
            }
            "self" => rest = &rest[1..],
            "super" => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            first => {
                let mut child = base.clone();
                child.push(first.to_string());
                if self.modules.contains_key(&child) {
                    // A child module, named without `self::`.
                } else {
                    // A name brought in by a `use` of this module (`Error::Config`).
                    let f = self.modules.get(from)?;
                    let (u, _) = f
                        .uses
                        .iter()
                        .find(|(u, _)| u.name.as_deref() == Some(first))?;
                    if u.path.first().map(String::as_str) == Some(first) {
                        return None; // `use first;` of an external crate
                    }
                    let mut abs = self.absolute(from, &u.path)?;
                    abs.extend_from_slice(&rest[1..]);
                    return Some(abs);
                }
            }
        }
        base.extend_from_slice(rest);
        Some(base)
    }

    /// The module a path written in `from` points into.
    fn resolve(&self, from: &[String], path: &[String]) -> Option<ModPath> {
        let abs = self.absolute(from, path)?;
        Some(self.resolve_abs(&abs, 0))
    }

    /// The deepest module of an absolute path, followed through `use` lines.
    fn resolve_abs(&self, abs: &[String], depth: usize) -> ModPath {
        let mut m: ModPath = Vec::new();
        let mut k = 0;
        while k < abs.len() {
            let mut next = m.clone();
            next.push(abs[k].clone());
            if !self.modules.contains_key(&next) {
                break;
            }
            m = next;
            k += 1;
        }
        if k == abs.len() || depth > 16 {
            return m;
        }
        let name = &abs[k];
        let Some(f) = self.modules.get(&m) else {
            return m;
        };
        if f.defines.contains(name) {
            return m;
        }
        // A name imported (or re-exported) by `m`: follow it to its definition.
        if let Some((u, _)) = f
            .uses
            .iter()
            .find(|(u, _)| !u.glob && u.name.as_deref() == Some(name.as_str()))
        {
            return match self.absolute(&m, &u.path) {
                Some(mut target) => {
                    target.extend_from_slice(&abs[k + 1..]);
                    self.resolve_abs(&target, depth + 1)
                }
                None => m, // imported from outside the crate
            };
        }
        // A glob import whose module has the name.
        for (u, _) in f.uses.iter().filter(|(u, _)| u.glob) {
            let Some(g) = self.absolute(&m, &u.path) else {
                continue;
            };
            let gm = self.resolve_abs(&g, depth + 1);
            let has = self.modules.get(&gm).is_some_and(|gf| {
                gf.defines.contains(name)
                    || gf
                        .uses
                        .iter()
                        .any(|(u, _)| u.name.as_deref() == Some(name.as_str()))
            });
            if has && gm != m {
                let mut target = gm;
                target.extend_from_slice(&abs[k..]);
                return self.resolve_abs(&target, depth + 1);
            }
        }
        m
    }

    fn successors(&self) -> BTreeMap<&ModPath, Vec<&ModPath>> {
        let mut succ: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
        for (from, to) in self.edges.keys() {
            succ.entry(from).or_default().push(to);
        }
        succ
    }

    /// Strongly connected components with more than one module (Tarjan).
    fn tangles(&self) -> Vec<Vec<ModPath>> {
        struct St<'a> {
            succ: BTreeMap<&'a ModPath, Vec<&'a ModPath>>,
            index: BTreeMap<&'a ModPath, usize>,
            low: BTreeMap<&'a ModPath, usize>,
            stack: Vec<&'a ModPath>,
            on: BTreeSet<&'a ModPath>,
            next: usize,
            out: Vec<Vec<ModPath>>,
        }
        fn visit<'a>(s: &mut St<'a>, v: &'a ModPath) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on.insert(v);
            let succ = s.succ.get(v).cloned().unwrap_or_default();
            for w in succ {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on.remove(w);
                    comp.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    s.out.push(comp);
                }
            }
        }
        let mut s = St {
            succ: self.successors(),
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on: BTreeSet::new(),
            next: 0,
            out: Vec::new(),
        };
        for m in self.modules.keys() {
            if !s.index.contains_key(m) {
                visit(&mut s, m);
            }
        }
        s.out.sort();
        s.out
    }

    /// Every elementary cycle, each starting at its smallest module; at most `cap`
    /// cycles and a bounded search. The flag says the list was cut.
    fn cycles(&self, cap: usize) -> (Vec<Vec<ModPath>>, bool) {
        let succ = self.successors();
        let mut found = Vec::new();
        let mut budget: u64 = 5_000_000;
        for comp in self.tangles() {
            let members: BTreeSet<&ModPath> = comp.iter().collect();
            for start in &comp {
                // Only modules after `start` may appear, so each cycle is found once.
                let mut path = vec![start];
                let mut iters = vec![0usize];
                while let Some(&top) = path.last() {
                    budget = budget.saturating_sub(1);
                    if budget == 0 || found.len() >= cap {
                        return (found, true);
                    }
                    let next = succ
                        .get(top)
                        .and_then(|s| s.get(*iters.last().unwrap_or(&0)));
                    match next {
                        None => {
                            path.pop();
                            iters.pop();
                        }
                        Some(&w) => {
                            if let Some(it) = iters.last_mut() {
                                *it += 1;
                            }
                            if w == start {
                                found.push(path.iter().map(|m| (*m).clone()).collect());
                            } else if members.contains(w) && w > start && !path.contains(&w) {
                                path.push(w);
                                iters.push(0);
                            }
                        }
                    }
                }
            }
        }
        (found, false)
    }

    /// A cycle as `a -> b -> a` with the first reference of each arrow.
    fn describe(&self, cycle: &[ModPath]) -> String {
        let mut names: Vec<String> = cycle.iter().map(|m| show(m)).collect();
        names.push(show(&cycle[0]));
        let mut s = names.join(" -> ");
        for (k, from) in cycle.iter().enumerate() {
            let to = &cycle[(k + 1) % cycle.len()];
            if let Some(site) = self.edges.get(&(from.clone(), to.clone())) {
                let _ = write!(
                    s,
                    "\n      {} -> {}  at src/{}:{}",
                    show(from),
                    show(to),
                    site.file,
                    site.line
                );
            }
        }
        s
    }

    /// Edges from a module to one of its own ancestors (`nats::link -> nats`).
    fn upward(&self) -> Vec<(&ModPath, &ModPath)> {
        self.edges
            .keys()
            .filter(|(from, to)| !to.is_empty() && from.len() > to.len() && from.starts_with(to))
            .map(|(f, t)| (f, t))
            .collect()
    }
}

/// Every `.rs` file under `dir`, as `(path relative to dir with '/', text)`.
fn read_tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("reading {}: {e}", d.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().and_then(|e| e.to_str()) == Some("rs") {
                let rel = p
                    .strip_prefix(dir)
                    .expect("under src")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_cycle_among_backend_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = Graph::build(&read_tree(&src));
    // A parser that found nothing would pass vacuously: the crate has dozens of modules
    // that import each other.
    assert!(g.modules.len() >= 10, "only {} modules", g.modules.len());
    assert!(g.edges.len() >= 10, "only {} edges", g.edges.len());
    let upward = g.upward();
    println!(
        "{} modules, {} edges; {} point from a module to its own ancestor (info):",
        g.modules.len(),
        g.edges.len(),
        upward.len()
    );
    for (from, to) in &upward {
        println!("  {} -> {}", show(from), show(to));
    }
    let (cycles, cut) = g.cycles(500);
    if cycles.is_empty() {
        return;
    }
    let mut msg = format!(
        "{} import cycle(s){} among backend/src modules:\n",
        cycles.len(),
        if cut { " (list cut short)" } else { "" }
    );
    for comp in g.tangles() {
        let names: Vec<String> = comp.iter().map(|m| show(m)).collect();
        let _ = writeln!(msg, "  tangle of {}: {}", comp.len(), names.join(", "));
    }
    for (k, c) in cycles.iter().enumerate() {
        let _ = writeln!(msg, "  cycle {}: {}", k + 1, g.describe(c));
    }
    panic!("{msg}");
}

#[cfg(test)]
mod parser {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Graph {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();
        Graph::build(&files)
    }

    fn m(s: &str) -> ModPath {
        if s == "crate" {
            Vec::new()
        } else {
            s.split("::").map(str::to_string).collect()
        }
    }

    fn has_edge(g: &Graph, from: &str, to: &str) -> bool {
        g.edges.contains_key(&(m(from), m(to)))
    }

    #[test]
    fn module_paths_from_file_paths() {
        assert_eq!(module_of("lib.rs"), Some(vec![]));
        assert_eq!(module_of("bus/mailbox.rs"), Some(m("bus::mailbox")));
        assert_eq!(module_of("http/mod.rs"), Some(m("http")));
        assert_eq!(module_of("bin/swarmbus/main.rs"), None);
        assert_eq!(module_of("nats/tests.rs"), None);
        assert_eq!(module_of("nats/tests/frames.rs"), None);
    }

    #[test]
    fn a_cycle_is_found_with_its_sites() {
        let g = graph(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::b::Thing;\npub struct A;\n"),
            (
                "b.rs",
                "pub struct Thing;\nfn f() { let _ = crate::c::g(); }\n",
            ),
            ("c.rs", "use super::a::A;\npub fn g() {}\n"),
        ]);
        let (cycles, cut) = g.cycles(10);
        assert!(!cut);
        assert_eq!(cycles, vec![vec![m("a"), m("b"), m("c")]]);
        let text = g.describe(&cycles[0]);
        assert!(text.starts_with("a -> b -> c -> a"), "{text}");
        assert!(text.contains("a -> b  at src/a.rs:1"), "{text}");
        assert!(text.contains("b -> c  at src/b.rs:2"), "{text}");
        assert!(text.contains("c -> a  at src/c.rs:1"), "{text}");
    }

    #[test]
    fn two_cycles_in_one_tangle_are_both_listed() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "use crate::b::B; use crate::c::C; pub struct A;"),
            ("b.rs", "use crate::a::A; pub struct B;"),
            ("c.rs", "use crate::a::A; pub struct C;"),
        ]);
        let (cycles, _) = g.cycles(10);
        assert_eq!(cycles.len(), 2, "{cycles:?}");
        assert_eq!(g.tangles(), vec![vec![m("a"), m("b"), m("c")]]);
    }

    #[test]
    fn reexports_are_not_edges_but_resolve_paths() {
        let g = graph(&[
            (
                "lib.rs",
                "mod error; mod bus;\npub use error::Error;\npub(crate) use bus::Bus;\n",
            ),
            ("error.rs", "pub enum Error { X }\n"),
            (
                "bus/mod.rs",
                "mod mailbox;\npub use mailbox::Mailbox;\npub(super) use mailbox::Other;\npub struct Bus;\n",
            ),
            (
                "bus/mailbox.rs",
                "use crate::Error;\npub struct Mailbox;\npub struct Other;\n",
            ),
            (
                "hub.rs",
                "use crate::bus::Mailbox;\nfn f() -> crate::Error { crate::Error::X }\n",
            ),
        ]);
        // Re-export lines themselves make no edge.
        assert!(!has_edge(&g, "crate", "error"));
        assert!(!has_edge(&g, "bus", "bus::mailbox"));
        // Paths through the facade land on the defining module.
        assert!(has_edge(&g, "bus::mailbox", "error"));
        assert!(has_edge(&g, "hub", "bus::mailbox"));
        assert!(has_edge(&g, "hub", "error"));
        assert!(!has_edge(&g, "hub", "bus"));
        assert!(!has_edge(&g, "hub", "crate"));
        assert!(g.cycles(10).0.is_empty());
    }

    #[test]
    fn deepest_file_module_wins() {
        let g = graph(&[
            ("lib.rs", "mod bus;"),
            ("bus/mod.rs", "mod mailbox;"),
            (
                "bus/mailbox.rs",
                "pub struct Mailbox; impl Mailbox { pub fn new() {} }",
            ),
            ("hub.rs", "fn f() { crate::bus::mailbox::Mailbox::new() }"),
        ]);
        assert!(has_edge(&g, "hub", "bus::mailbox"));
        assert!(!has_edge(&g, "hub", "bus"));
    }

    #[test]
    fn cfg_test_comments_and_strings_make_no_edge() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            (
                "b.rs",
                r##"pub struct B;
// use crate::a::A;
/// See [`A`](crate::a::A).
/* crate::a::A /* nested */ crate::a::A */
const S: &str = "crate::a::A is named in a message, not used";
const R: &str = r#"use crate::a::A;"#;
const C: char = '"';
fn life<'a>(x: &'a str) -> &'a str { x }
#[cfg(test)]
mod tests {
    use crate::a::A;
    fn f() { let _ = crate::a::A; }
}
#[cfg(test)]
fn helper() -> [u8; 2] { crate::a::make() }
#[cfg(test)]
use crate::a::A;
"##,
            ),
        ]);
        assert!(has_edge(&g, "a", "b"));
        assert!(!has_edge(&g, "b", "a"), "{:?}", g.edges);
        assert!(g.cycles(10).0.is_empty());
    }

    #[test]
    fn cfg_not_test_still_counts() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::B; pub struct A;"),
            ("b.rs", "#[cfg(not(test))]\nuse crate::a::A;\npub struct B;"),
        ]);
        assert_eq!(g.cycles(10).0.len(), 1);
    }

    #[test]
    fn a_self_edge_is_not_a_cycle() {
        let g = graph(&[
            ("lib.rs", "mod a;"),
            ("a.rs", "pub struct A; fn f() -> crate::a::A { self::A }"),
        ]);
        assert!(g.edges.is_empty(), "{:?}", g.edges);
        assert!(g.cycles(10).0.is_empty());
    }

    #[test]
    fn parent_and_child_modules_and_use_groups() {
        let g = graph(&[
            ("lib.rs", "mod workers; mod metrics;"),
            (
                "workers/mod.rs",
                "mod worker;\nmod queue;\nuse worker::{self, Shared as S};\npub struct WorkerConfig;\n",
            ),
            (
                "workers/worker.rs",
                "use super::{queue::Lanes, WorkerConfig};\nuse crate::metrics::{self};\npub struct Shared;\n",
            ),
            ("workers/queue.rs", "pub struct Lanes;"),
            ("metrics/mod.rs", "pub struct M;"),
        ]);
        assert!(has_edge(&g, "workers", "workers::worker"));
        assert!(has_edge(&g, "workers::worker", "workers"));
        assert!(has_edge(&g, "workers::worker", "workers::queue"));
        assert!(has_edge(&g, "workers::worker", "metrics"));
        assert_eq!(g.upward().len(), 1);
        assert_eq!(
            g.cycles(10).0,
            vec![vec![m("workers"), m("workers::worker")]]
        );
    }

    #[test]
    fn glob_reexports_and_serde_paths_resolve() {
        let g = graph(&[
            ("lib.rs", "mod config; mod http; pub use config::*;"),
            ("config.rs", "pub struct HubConfig; pub mod duration_serde {}"),
            (
                "http.rs",
                "#[serde(with = \"crate::config::duration_serde\")]\nstruct L;\nfn f(_: crate::HubConfig) {}\n",
            ),
        ]);
        assert_eq!(g.edges.len(), 1, "{:?}", g.edges);
        let site = &g.edges[&(m("http"), m("config"))];
        assert_eq!(site.line, 1);
    }
}
