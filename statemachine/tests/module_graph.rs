//! No import circle among the files of `src/`: a module never uses a module that uses it,
//! directly or through others, so the crate reads bottom-up (ids and money, then the data, then
//! the apply context, then the operations, then `machine`).
//!
//! The check reads the source, not the compiler: per file it collects every path that names
//! another module of the crate — `use crate::…`, `use super::…`, `use self::…` trees, paths
//! through a child module it declares, inline paths such as `crate::tick::purge_expired` and
//! paths through an imported module (`use crate::keys;` then `keys::auction(id)`) — after
//! removing comments, string literals and `#[cfg(test)] mod … { … }` blocks. A path names the
//! longest module prefix that is a file. Edges to the crate root (its re-exports) are not
//! counted: the root declares every module and nothing imports it back.
//!
//! Not done yet: macros are not expanded, and `#[path]` attributes are not followed (the crate
//! has neither).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module as path segments below the crate root (`[]` is `lib.rs`).
type Module = Vec<String>;

#[test]
fn no_import_circle_among_source_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = source_files(&src);
    assert!(files.len() > 10, "found the sources: {:?}", files.keys());
    let graph = edges(&files);
    assert!(
        graph[&module(&["machine"])].contains(&module(&["ctx"])),
        "the scan sees machine's use of ctx"
    );
    if let Some(circle) = find_circle(&graph) {
        let names: Vec<String> = circle.iter().map(|module| name(&files, module)).collect();
        panic!("import circle: {}", names.join(" -> "));
    }
}

#[test]
fn the_scan_finds_a_planted_circle() {
    let mut files = BTreeMap::new();
    let mut add = |path: &[&str], file: &str, text: &str| {
        files.insert(module(path), (PathBuf::from(file), strip(text)));
    };
    add(&[], "lib.rs", "pub mod a; pub mod b; pub mod c;");
    add(
        &["a"],
        "a.rs",
        "use crate::{b, c::Thing};\nfn f() { b::g() }",
    );
    add(
        &["b"],
        "b.rs",
        "// use crate::a;\nfn g() { let _ = \"crate::a\"; crate::c::h() }",
    );
    add(&["c"], "c.rs", "use super::a::f as other;");
    let graph = edges(&files);
    let circle = find_circle(&graph).expect("a -> b -> c -> a");
    assert_eq!(circle.len(), 4, "{circle:?}");
    assert_eq!(circle.first(), circle.last());
}

fn module(path: &[&str]) -> Module {
    path.iter().map(|segment| (*segment).to_owned()).collect()
}

fn name(files: &BTreeMap<Module, (PathBuf, String)>, module: &Module) -> String {
    files[module].0.display().to_string()
}

/// Every `.rs` file under `src`, by module, with its text stripped for scanning.
fn source_files(src: &Path) -> BTreeMap<Module, (PathBuf, String)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(src).expect("under src").to_path_buf();
                let mut segments: Module = relative
                    .with_extension("")
                    .iter()
                    .map(|part| part.to_string_lossy().into_owned())
                    .collect();
                if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
                    segments.pop();
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                files.insert(segments, (relative, strip(&text)));
            }
        }
    }
    files
}

/// The text without comments, string and char literals, and `#[cfg(test)] mod x { … }` blocks.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match (chars[i], next) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            ('\'', Some('\\')) => {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ('\'', Some(_)) if chars.get(i + 2) == Some(&'\'') => i += 3,
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    drop_test_modules(&out)
}

fn drop_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("#[cfg(test)]") {
        let after = &rest[start + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_module = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let Some(open) = after.find('{').filter(|_| is_module) else {
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
            continue;
        };
        out.push_str(&rest[..start]);
        let mut depth = 0usize;
        let mut end = after.len();
        for (offset, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = open + offset + 1;
                break;
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// For each module, the other modules of the crate it names (the root excluded).
fn edges(files: &BTreeMap<Module, (PathBuf, String)>) -> BTreeMap<Module, BTreeSet<Module>> {
    let known: BTreeSet<Module> = files.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, (_, text)) in files {
        let targets = paths_named(text)
            .iter()
            .filter_map(|path| resolve(&known, module, path))
            .filter(|target| target != module && !target.is_empty())
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Every path the text names, made absolute where it starts at `crate`, `super`, `self`, a
/// child module or an imported name.
fn paths_named(text: &str) -> Vec<Vec<String>> {
    let children: BTreeSet<String> = declared_children(text);
    let mut aliases: BTreeMap<String, Vec<String>> = children
        .iter()
        .map(|child| (child.clone(), vec!["self".to_owned(), child.clone()]))
        .collect();
    let mut paths = Vec::new();
    let mut body = String::new();
    let mut rest = text;
    while let Some((before, tree, after)) = next_use(rest) {
        body.push_str(before);
        for mut path in expand(&tree) {
            if path.first().is_some_and(|first| children.contains(first)) {
                path.insert(0, "self".to_owned());
            }
            if let Some(last) = path.last() {
                aliases.insert(last.clone(), path.clone());
            }
            paths.push(path);
        }
        rest = after;
    }
    body.push_str(rest);
    for chain in path_chains(&body) {
        match aliases.get(&chain[0]) {
            Some(alias) if chain.len() > 1 => {
                paths.push(alias.iter().chain(&chain[1..]).cloned().collect())
            }
            _ => paths.push(chain),
        }
    }
    paths
}

/// The names of `mod name;` declarations.
fn declared_children(text: &str) -> BTreeSet<String> {
    let words: Vec<&str> = text.split(|c: char| !is_ident(c) && c != ';').collect();
    let mut children = BTreeSet::new();
    for pair in words.windows(2) {
        if let ["mod", declared] = pair {
            if let Some(child) = declared.strip_suffix(';') {
                children.insert(child.to_owned());
            }
        }
    }
    children
}

/// The text before the next `use` item, its tree, and the text after its `;`.
fn next_use(text: &str) -> Option<(&str, String, &str)> {
    let mut from = 0;
    while let Some(found) = text[from..].find("use ") {
        let start = from + found;
        let boundary = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident(c));
        if boundary {
            let end = start + text[start..].find(';')?;
            let tree = text[start + 4..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            return Some((&text[..start], tree, &text[end + 1..]));
        }
        from = start + 4;
    }
    None
}

/// `a::{b, c::{d, e as f}, self}` to `[a, b]`, `[a, c, d]`, `[a, c, e]`, `[a]`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![segments(path)];
    };
    let prefix = segments(&tree[..open]);
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (index, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut paths = Vec::new();
    for item in items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        for path in expand(item) {
            if path == ["self"] {
                paths.push(prefix.clone());
            } else {
                paths.push(prefix.iter().chain(&path).cloned().collect());
            }
        }
    }
    paths
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|segment| !segment.is_empty() && *segment != "*")
        .map(str::to_owned)
        .collect()
}

/// Every `a::b::c` chain of identifiers in the text.
fn path_chains(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut chains = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut chain = Vec::new();
        loop {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            chain.push(chars[start..i].iter().collect::<String>());
            let more = chars.get(i) == Some(&':')
                && chars.get(i + 1) == Some(&':')
                && chars.get(i + 2).is_some_and(|c| is_ident(*c));
            if !more {
                break;
            }
            i += 2;
        }
        if chain.len() > 1 {
            chains.push(chain);
        }
    }
    chains
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The module file a path names: the longest prefix of its absolute form that is a module;
/// `None` for a path outside the crate.
fn resolve(known: &BTreeSet<Module>, from: &Module, path: &[String]) -> Option<Module> {
    let (mut absolute, rest): (Module, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (from.clone(), &path[1..]),
        Some("super") => {
            let supers = path
                .iter()
                .take_while(|segment| *segment == "super")
                .count();
            let kept = from.len().checked_sub(supers)?;
            (from[..kept].to_vec(), &path[supers..])
        }
        _ => return None,
    };
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len())
        .rev()
        .map(|len| absolute[..len].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// A circle of the graph as `[a, b, …, a]`, if there is one.
fn find_circle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        node: &Module,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|module| module == next)?;
                    let mut circle = stack[start..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(circle) = visit(graph, next, marks, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node) {
            let mut stack = Vec::new();
            if let Some(circle) = visit(graph, node, &mut marks, &mut stack) {
                return Some(circle);
            }
        }
    }
    None
}
