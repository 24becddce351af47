//! The layers of the crate (README, "How it is built"): each top-level
//! module of src/ uses only the modules listed for it in the README's table
//! of layers, and the table is bottom first, so the modules form no cycle.
//! Data flows down: cli -> ops -> {resolve, cache, registry, cue, module}.
//!
//! Every file of src/ is parsed (syn) and every path that can reach another
//! top-level module is followed: `use` trees (groups, renames, globs, `self`),
//! `crate::` paths anywhere (expressions, types, patterns, bounds, macro and
//! attribute paths), `super::` and `self::` paths resolved against the
//! module the code sits in (its file, then its inline `mod x { .. }`), and the
//! tokens of macro calls and attribute arguments (`format!("{}",
//! crate::ops::x())`, `#[serde(with = "crate::ops::x")]`). Test code is
//! left out: items under `#[cfg(test)]` or `#[test]`, and files that are
//! only included through a `#[cfg(test)] mod x;`.

use crate::support::{repo_dir, tempdir};
use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Meta, Token, UseTree};

/// Each layer and the layers it may use, bottom first.
type Table = Vec<(String, Vec<String>)>;

/// The marker of the table's block in README.md.
const TABLE_BLOCK: &str = "```layers\n";

/// The table of layers, from the one block of README.md that opens with
/// ```` ```layers ````: a line `name: the modules it may use`, bottom
/// first; `#` starts a comment.
fn readme_table() -> Table {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).unwrap();
    let start = readme.find(TABLE_BLOCK).unwrap_or_else(|| panic!("README.md has no {TABLE_BLOCK:?} block (the table of layers)"));
    assert!(readme[start + 1..].find(TABLE_BLOCK).is_none(), "README.md has two {TABLE_BLOCK:?} blocks");
    let body = &readme[start + TABLE_BLOCK.len()..];
    let body = &body[..body.find("```").expect("the table of layers' block is closed")];
    parse_table(body)
}

fn parse_table(text: &str) -> Table {
    let mut table = Table::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        let (name, may) = line.split_once(':').unwrap_or_else(|| panic!("a row of the table of layers is `name: modules...`, not {line:?}"));
        table.push((name.trim().to_string(), may.split_whitespace().map(String::from).collect()));
    }
    table
}

/// Where a module names another.
struct Use {
    /// The file, relative to the source root.
    file: PathBuf,
    line: usize,
    /// The top-level module the code belongs to.
    from: String,
    /// The top-level module it names; [`ROOT`] for the crate root itself
    /// (`use crate::*`, `use super::*` from a top-level module, `use crate as
    /// c`), which brings every module in.
    to: String,
}

const ROOT: &str = "crate";

/// What the source tree under `src` says: the top-level modules (with code
/// that is not test code) and where each names another.
struct Scan {
    modules: BTreeSet<String>,
    uses: Vec<Use>,
    problems: Vec<String>,
}

/// The problems of `src` against `table`: a module of src/ without a row,
/// a row without a module, a row using a layer not below it, and each place
/// where a module names one its layer may not.
fn check(src: &Path, table: &Table) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    // Bottom first: each layer may use only layers listed before it, so
    // the graph has no cycle.
    for (name, may) in table {
        for m in may {
            if !table.iter().any(|(n, _)| n == m) {
                problems.push(format!("the table of layers: {name} may use {m}, which is not a layer"));
            } else if !seen.contains(m.as_str()) {
                problems.push(format!("the table of layers: {name} may use {m}, which is not below it"));
            }
        }
        if !seen.insert(name) {
            problems.push(format!("the table of layers: {name} has two rows"));
        }
    }
    let scan = scan(src);
    problems.extend(scan.problems);
    for name in &seen {
        if !scan.modules.contains(*name) {
            problems.push(format!("the table of layers: {name} is not a module of src/ (no {name}.rs, no {name}/mod.rs)"));
        }
    }
    for m in &scan.modules {
        if !seen.contains(m.as_str()) {
            problems.push(format!("src/{m} is not in the table of layers (README.md, \"How it is built\")"));
        }
    }
    for u in &scan.uses {
        let Some((_, may)) = table.iter().find(|(n, _)| *n == u.from) else { continue };
        let at = format!("src/{}:{}", u.file.display(), u.line);
        if u.to == ROOT {
            problems.push(format!("{at}: {} imports the crate root (a glob, `self` or a rename of it), which names every layer", u.from));
        } else if !may.contains(&u.to) {
            problems.push(format!("{at}: {} uses {}, which its layer may not (it may use: {})", u.from, u.to, may.join(" ")));
        }
    }
    problems
}

/// Parses every `.rs` file under `src` but main.rs and lib.rs.
fn scan(src: &Path) -> Scan {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else if e.path().extension().is_some_and(|x| x == "rs") {
                out.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    // Parse everything first: whether a file is test code is said by the
    // `mod` declaration in its parent.
    let mut parsed = Vec::new();
    let mut test_mods: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut aliases = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&f).unwrap();
        let file = match syn::parse_file(&text) {
            Ok(file) => file,
            Err(e) => {
                let at = e.span().start();
                problems.push(format!("src/{}:{}: does not parse: {e}", rel.display(), at.line));
                continue;
            }
        };
        let path = module_path(&rel);
        let root = rel == Path::new("lib.rs") || rel == Path::new("main.rs");
        if is_test(&file.attrs) {
            test_mods.insert(path.clone());
        }
        declarations(&file.items, &path, false, &rel, &mut test_mods, &mut problems);
        if root {
            // `extern crate self as name;` at the root makes `name::` a
            // second spelling of `crate::`.
            for item in &file.items {
                if let syn::Item::ExternCrate(e) = item {
                    if e.ident == "self" {
                        aliases.extend(e.rename.as_ref().map(|(_, name)| name.to_string()));
                    }
                }
            }
        } else {
            parsed.push((rel, path, file));
        }
    }
    let mut modules = BTreeSet::new();
    let mut uses = Vec::new();
    for (rel, path, file) in &parsed {
        if (1..=path.len()).any(|n| test_mods.contains(&path[..n])) {
            continue;
        }
        modules.insert(path[0].clone());
        let mut v = Visitor { file: rel, top: &path[0], path: path.clone(), aliases: &aliases, uses: &mut uses };
        v.visit_file(file);
    }
    Scan { modules, uses, problems }
}

/// The module a file is: `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut path: Vec<String> = rel.with_extension("").iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if path.len() > 1 && path.last().is_some_and(|l| l == "mod") {
        path.pop();
    }
    path
}

/// Records the modules declared test code (`#[cfg(test)] mod x;`, and
/// every `mod` inside a test module), and refuses `#[path]`, which would
/// put a module in a file this check does not expect.
fn declarations(items: &[syn::Item], path: &[String], test: bool, rel: &Path, test_mods: &mut BTreeSet<Vec<String>>, problems: &mut Vec<String>) {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        let mut child = if path == ["lib"] || path == ["main"] { Vec::new() } else { path.to_vec() };
        child.push(m.ident.to_string());
        let test = test || is_test(&m.attrs);
        if test {
            test_mods.insert(child.clone());
        }
        if m.attrs.iter().any(|a| a.path().is_ident("path")) {
            problems.push(format!(
                "src/{}:{}: #[path] on mod {}: the layers check knows a module by its file's place",
                rel.display(),
                line(m.ident.span()),
                m.ident
            ));
        }
        if let Some((_, items)) = &m.content {
            declarations(items, &child, test, rel, test_mods, problems);
        }
    }
}

/// Whether attributes make an item test code: `#[test]`, or a `cfg` that
/// holds only under test (`test`, `all(test, ..)`, `any(test, test)`).
fn is_test(attrs: &[Attribute]) -> bool {
    fn only_under_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(p) => p.is_ident("test"),
            Meta::List(l) if l.path.is_ident("all") || l.path.is_ident("any") => {
                let Ok(nested) = l.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else { return false };
                if l.path.is_ident("all") {
                    nested.iter().any(only_under_test)
                } else {
                    !nested.is_empty() && nested.iter().all(only_under_test)
                }
            }
            _ => false,
        }
    }
    attrs.iter().any(|a| a.path().is_ident("test") || (a.path().is_ident("cfg") && a.parse_args::<Meta>().is_ok_and(|m| only_under_test(&m))))
}

fn line(span: proc_macro2::Span) -> usize {
    span.start().line
}

struct Visitor<'a> {
    file: &'a Path,
    top: &'a str,
    /// The module the code being visited sits in.
    path: Vec<String>,
    aliases: &'a [String],
    uses: &'a mut Vec<Use>,
}

impl Visitor<'_> {
    /// The module a path names, from its first segments; `None` for a path
    /// that does not start at the crate (a local name, another crate).
    fn resolve<'s>(&self, segments: impl IntoIterator<Item = &'s str>) -> Option<Vec<String>> {
        let mut segments = segments.into_iter();
        let mut at = match segments.next()? {
            "crate" => Vec::new(),
            "self" => self.path.clone(),
            "super" => {
                let mut p = self.path.clone();
                p.pop()?;
                p
            }
            name if self.aliases.iter().any(|a| a == name) => Vec::new(),
            _ => return None,
        };
        for s in segments {
            match s {
                "super" => {
                    at.pop()?;
                }
                "self" => {}
                name => at.push(name.to_string()),
            }
        }
        Some(at)
    }

    fn record(&mut self, line: usize, target: Option<Vec<String>>, whole: bool) {
        let Some(target) = target else { return };
        let to = match target.first() {
            Some(first) => first.clone(),
            // A path that is the crate root itself: only an import of it
            // (glob, `self`, rename) matters; `pub(crate)` does not.
            None if whole => ROOT.to_string(),
            None => return,
        };
        if to != self.top {
            self.uses.push(Use { file: self.file.to_path_buf(), line, from: self.top.to_string(), to });
        }
    }

    /// A `use` tree under the segments before it.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &UseTree) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            UseTree::Name(n) => self.use_leaf(prefix, &n.ident),
            UseTree::Rename(r) => self.use_leaf(prefix, &r.ident),
            UseTree::Glob(g) => {
                let target = self.resolve(prefix.iter().map(String::as_str));
                self.record(line(g.star_token.span), target, true);
            }
            UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &syn::Ident) {
        let name = ident.to_string();
        let target = self.resolve(prefix.iter().map(String::as_str).chain([name.as_str()]));
        self.record(line(ident.span()), target, true);
    }

    /// The paths in a token stream (a macro's arguments, an attribute's):
    /// `crate::x::y`, `$crate::x`, `super::x`, `crate::{x, y}`, `crate::*`;
    /// in an attribute, string literals that are such paths too.
    fn tokens(&mut self, tokens: TokenStream, literals: bool) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => self.tokens(g.stream(), literals),
                TokenTree::Ident(id) if !after_path_separator(&tts, i) => {
                    let start = id.to_string();
                    if start == "crate" || start == "super" || start == "self" || self.aliases.contains(&start) {
                        i = self.token_path(&tts, i);
                        continue;
                    }
                }
                TokenTree::Literal(l) if literals => {
                    if let syn::Lit::Str(s) = syn::Lit::new(l.clone()) {
                        if let Ok(p) = syn::parse_str::<syn::Path>(&s.value()) {
                            let names: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
                            let target = if p.leading_colon.is_some() { None } else { self.resolve(names.iter().map(String::as_str)) };
                            self.record(line(l.span()), target, false);
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// The path starting at `tts[i]`; the index after it.
    fn token_path(&mut self, tts: &[TokenTree], mut i: usize) -> usize {
        let at = line(tts[i].span());
        let mut names = Vec::new();
        let TokenTree::Ident(first) = &tts[i] else { unreachable!() };
        names.push(first.to_string());
        i += 1;
        loop {
            let separator =
                matches!((tts.get(i), tts.get(i + 1)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
            if !separator {
                break;
            }
            match tts.get(i + 2) {
                Some(TokenTree::Ident(id)) => {
                    names.push(id.to_string());
                    i += 3;
                }
                Some(TokenTree::Punct(p)) if p.as_char() == '*' => {
                    let target = self.resolve(names.iter().map(String::as_str));
                    self.record(at, target, true);
                    return i + 3;
                }
                Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                    match Punctuated::<UseTree, Token![,]>::parse_terminated.parse2(g.stream()) {
                        Ok(trees) => {
                            for t in &trees {
                                self.use_tree(&mut names.clone(), t);
                            }
                        }
                        Err(_) => {
                            let target = self.resolve(names.iter().map(String::as_str));
                            self.record(at, target, false);
                            self.tokens(g.stream(), false);
                        }
                    }
                    return i + 3;
                }
                // `crate::x::<T>` and the like: the path so far.
                _ => break,
            }
        }
        let target = self.resolve(names.iter().map(String::as_str));
        self.record(at, target, false);
        i
    }
}

/// Whether `tts[i]` follows a `::` (so starts no path).
fn after_path_separator(tts: &[TokenTree], i: usize) -> bool {
    i >= 2 && matches!((&tts[i - 2], &tts[i - 1]), (TokenTree::Punct(a), TokenTree::Punct(b)) if a.as_char() == ':' && b.as_char() == ':')
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test(item_attrs(item)) {
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.path.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.path.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_item_extern_crate(&mut self, e: &'ast syn::ItemExternCrate) {
        if e.ident == "self" {
            self.record(line(e.ident.span()), Some(Vec::new()), true);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let names: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            let target = self.resolve(names.iter().map(String::as_str));
            self.record(line(p.segments[0].ident.span()), target, false);
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone(), false);
        visit::visit_macro(self, m);
    }

    fn visit_attribute(&mut self, a: &'ast Attribute) {
        if let Meta::List(l) = &a.meta {
            self.tokens(l.tokens.clone(), true);
        }
        visit::visit_attribute(self, a);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs: &[Attribute] = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !is_test(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs: &[Attribute] = match item {
            syn::TraitItem::Const(i) => &i.attrs,
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !is_test(attrs) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_stmt(&mut self, s: &'ast syn::Stmt) {
        let test = match s {
            syn::Stmt::Local(l) => is_test(&l.attrs),
            syn::Stmt::Macro(m) => is_test(&m.attrs),
            _ => false,
        };
        if !test {
            visit::visit_stmt(self, s);
        }
    }

    fn visit_field(&mut self, f: &'ast syn::Field) {
        if !is_test(&f.attrs) {
            visit::visit_field(self, f);
        }
    }

    fn visit_variant(&mut self, v: &'ast syn::Variant) {
        if !is_test(&v.attrs) {
            visit::visit_variant(self, v);
        }
    }

    fn visit_arm(&mut self, a: &'ast syn::Arm) {
        if !is_test(&a.attrs) {
            visit::visit_arm(self, a);
        }
    }
}

fn item_attrs(item: &syn::Item) -> &[Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let table = readme_table();
    let problems = check(&repo_dir().join("src"), &table);
    assert!(problems.is_empty(), "the layers (README.md, \"How it is built\"):\n{}", problems.join("\n"));
    // The check saw the crate: every layer, and the uses the table allows.
    let scan = scan(&repo_dir().join("src"));
    assert_eq!(scan.modules.len(), table.len(), "every layer exists in src/: {:?}", scan.modules);
    assert!(scan.uses.iter().any(|u| u.from == "cli" && u.to == "ops"), "cli uses ops");
}

/// A source tree with `files` (path under src/, text), checked against a
/// tiny table: `base` at the bottom, then `ops`, then `cli`.
fn planted(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempdir();
    let src = dir.path().join("src");
    let all = [
        ("lib.rs", "pub mod base;\npub mod ops;\npub mod cli;\n"),
        ("base.rs", ""),
        ("ops.rs", "pub fn x() {}\npub struct X;\npub struct Y;\n"),
        ("cli.rs", ""),
    ];
    let module = |path: &str| path.split(['/', '.']).next().unwrap().to_string();
    for (path, text) in all.iter().filter(|(p, _)| !files.iter().any(|(f, _)| module(f) == module(p))).chain(files) {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    check(&src, &parse_table("base:\nops: base\ncli: base ops\n"))
}

/// Asserts that the planted `files` break the layers exactly in the given
/// places (`file:line: base uses ops`).
fn assert_caught(files: &[(&str, &str)], expected: &[&str]) {
    let problems = planted(files);
    let found: Vec<String> = problems.iter().map(|p| p.split(", which").next().unwrap().to_string()).collect();
    let expected: Vec<String> = expected.iter().map(|e| format!("src/{e}")).collect();
    assert_eq!(found, expected, "{files:?}:\n{}", problems.join("\n"));
}

#[test]
fn a_use_of_a_module_above_is_caught() {
    assert_caught(&[("base.rs", "use crate::ops;\n")], &["base.rs:1: base uses ops"]);
}

#[test]
fn a_group_is_caught() {
    assert_caught(&[("base.rs", "use crate::{ops, cli};\n")], &["base.rs:1: base uses ops", "base.rs:1: base uses cli"]);
    assert_caught(
        &[("base.rs", "use crate::{ops::{X, x}, cli as c};\n")],
        &["base.rs:1: base uses ops", "base.rs:1: base uses ops", "base.rs:1: base uses cli"],
    );
    assert_caught(&[("base.rs", "use {std::fmt, crate::ops::{self}};\n")], &["base.rs:1: base uses ops"]);
}

#[test]
fn a_rename_is_caught() {
    assert_caught(&[("base.rs", "use crate::ops as o;\n")], &["base.rs:1: base uses ops"]);
}

#[test]
fn a_glob_is_caught() {
    assert_caught(&[("base.rs", "use crate::ops::*;\n")], &["base.rs:1: base uses ops"]);
    // The crate root by glob names every module.
    assert_caught(&[("base.rs", "use super::*;\n")], &["base.rs:1: base imports the crate root (a glob, `self` or a rename of it)"]);
}

#[test]
fn super_from_a_nested_module_is_caught() {
    let nested = [("base.rs", "mod deep;\n"), ("base/deep.rs", "pub fn f() {\n    super::super::ops::x();\n}\n")];
    assert_caught(&nested, &["base/deep.rs:2: base uses ops"]);
    // super::super from a/b/c.rs is crate::a: no other module.
    let own =
        [("base/mod.rs", "mod deep;\n"), ("base/deep/mod.rs", "mod er;\n"), ("base/deep/er.rs", "use super::super::ops;\nuse super::super::super::cli;\n")];
    assert_caught(&own, &["base/deep/er.rs:2: base uses cli"]);
    // Inline modules count.
    let inline = [("base.rs", "mod a {\n    mod b {\n        fn f() { super::super::super::ops::x() }\n    }\n}\n")];
    assert_caught(&inline, &["base.rs:3: base uses ops"]);
}

#[test]
fn a_path_in_an_expression_is_caught() {
    assert_caught(&[("base.rs", "pub fn f() {\n    crate::ops::x();\n}\n")], &["base.rs:2: base uses ops"]);
}

#[test]
fn a_path_in_a_type_is_caught() {
    assert_caught(&[("base.rs", "pub struct S {\n    x: Option<crate::ops::X>,\n}\n")], &["base.rs:2: base uses ops"]);
    assert_caught(&[("base.rs", "pub fn f(_: impl Into<crate::ops::X>) {}\n")], &["base.rs:1: base uses ops"]);
}

#[test]
fn a_use_in_a_function_body_is_caught() {
    assert_caught(&[("base.rs", "pub fn f() {\n    use crate::ops::x;\n    x()\n}\n")], &["base.rs:2: base uses ops"]);
}

#[test]
fn a_re_export_is_caught() {
    assert_caught(&[("base.rs", "pub use crate::ops::Y;\n")], &["base.rs:1: base uses ops"]);
}

#[test]
fn a_path_in_a_macro_is_caught() {
    assert_caught(&[("base.rs", "pub fn f() {\n    println!(\"{:?}\", crate::ops::x());\n}\n")], &["base.rs:2: base uses ops"]);
    assert_caught(&[("base.rs", "macro_rules! m {\n    () => { $crate::cli::f() };\n}\n")], &["base.rs:2: base uses cli"]);
    assert_caught(
        &[("base.rs", "#[derive(serde::Serialize)]\npub struct S {\n    #[serde(with = \"crate::ops::x\")]\n    x: u8,\n}\n")],
        &["base.rs:3: base uses ops"],
    );
}

#[test]
fn test_code_is_left_out() {
    let base = "pub fn f() {}\n\
        #[cfg(test)]\nmod tests {\n    use crate::ops;\n}\n\
        #[cfg(test)]\nmod more;\n\
        #[cfg(all(test, unix))]\nfn helper() { crate::cli::f() }\n\
        #[test]\nfn t() { crate::ops::x() }\n\
        impl S {\n    #[cfg(test)]\n    fn g() -> crate::ops::X { crate::ops::X }\n}\npub struct S;\n";
    let files = [("base.rs", base), ("base/more.rs", "use crate::cli;\nmod deeper;\n"), ("base/more/deeper.rs", "use crate::ops;\n")];
    assert_eq!(planted(&files), Vec::<String>::new());
    // What is code under another cfg is not test code.
    let not_test = "#[cfg(not(test))]\nuse crate::ops;\n#[cfg(any(test, unix))]\nuse crate::cli;\n";
    assert_caught(&[("base.rs", not_test)], &["base.rs:2: base uses ops", "base.rs:4: base uses cli"]);
    // A file called tests.rs is code unless its `mod` says otherwise.
    assert_caught(&[("base.rs", "mod tests;\n"), ("base/tests.rs", "use crate::ops;\n")], &["base/tests.rs:1: base uses ops"]);
}

#[test]
fn the_table_is_checked() {
    let problems = planted(&[("extra.rs", "")]);
    assert_eq!(problems, ["src/extra is not in the table of layers (README.md, \"How it is built\")"]);
    let problems = check(&repo_dir().join("src"), &parse_table("module: cue\ncue:\nghost: module\n"));
    assert!(problems.contains(&"the table of layers: module may use cue, which is not below it".to_string()), "{problems:?}");
    assert!(problems.contains(&"the table of layers: ghost is not a module of src/ (no ghost.rs, no ghost/mod.rs)".to_string()), "{problems:?}");
    assert!(problems.contains(&"src/ops is not in the table of layers (README.md, \"How it is built\")".to_string()), "{problems:?}");
}
