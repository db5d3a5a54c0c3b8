//! `gleaner new konnector`: writes a konnector folder in the house style,
//! its fixtures folder and its test, from the templates under
//! `src/scaffold/templates/` (embedded in the binary; `{{slug}}`-style
//! placeholders replaced by plain string replacement).
//!
//! What it writes for `acme-telco --category telco --kind html`:
//! - `konnectors/src/telco/acme_telco/`: `manifest.toml`, `mod.rs`,
//!   `auth.rs`, `routes.rs` (html, browser) or `api.rs` (json), `pages.rs`
//!   (html, browser), `map.rs`, `sandbox/` (a working loopback stand-in on
//!   `gleaner-sandbox-kit`);
//! - `fixtures/acme-telco/`: the pages the sandbox serves (html, browser),
//!   `README.md`, `cassettes/`;
//! - `konnectors/tests/acme_telco.rs`: a sandbox test that passes, and a
//!   replay test that fails until a cassette is recorded and the expected
//!   count is filled in.
//!
//! Nothing else is touched: `konnectors/build.rs` finds the folder.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The categories a konnector may be filed under.
pub const CATEGORIES: &[&str] = &["bank", "telco", "energy", "insurance"];

/// What the provider offers the konnector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A website: a login form and HTML pages.
    Html,
    /// A JSON API: a token endpoint and paged lists.
    Json,
    /// A website whose login needs scripts: a headless browser logs in.
    Browser,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Html => "html",
            Kind::Json => "json",
            Kind::Browser => "browser",
        })
    }
}

/// Rust's reserved words: a folder named after one cannot be a module
/// (the same list as `konnectors/build.rs`).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Why `slug` cannot be a konnector slug, if it cannot.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let starts_with_letter = slug.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let allowed = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_with_letter || !allowed {
        return Err(format!(
            "`{slug}` is not a valid slug: use lowercase ASCII letters, digits and `-`, starting with a letter (e.g. `acme-telco`)"
        ));
    }
    if slug.ends_with('-') || slug.contains("--") {
        return Err(format!(
            "`{slug}` is not a valid slug: no trailing or doubled `-`"
        ));
    }
    let module = slug.replace('-', "_");
    if KEYWORDS.contains(&module.as_str()) {
        return Err(format!(
            "`{slug}` is a Rust keyword and cannot name the konnector's module; pick another slug"
        ));
    }
    Ok(())
}

/// The values the templates' placeholders take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `acme-telco`.
    pub slug: String,
    /// `acme_telco`: the folder and module.
    pub module: String,
    /// `AcmeTelco`: the konnector's type.
    pub type_name: String,
    /// `Acme Telco`: the display name (edit it in the manifest).
    pub name: String,
    /// `telco`.
    pub category: String,
}

impl Names {
    /// The names for a valid `slug` in `category`.
    pub fn new(slug: &str, category: &str) -> Self {
        let words: Vec<String> = slug
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Self {
            slug: slug.to_owned(),
            module: slug.replace('-', "_"),
            type_name: words.concat(),
            name: words.join(" "),
            category: category.to_owned(),
        }
    }

    /// `text` with every placeholder replaced.
    pub fn fill(&self, text: &str) -> String {
        let (bill_type, qualification) = match self.category.as_str() {
            "telco" => ("Phone", "phone_invoice"),
            "energy" => ("Energy", "energy_invoice"),
            "insurance" => ("Insurance", "other_invoice"),
            _ => ("Other", "other_invoice"),
        };
        text.replace("{{slug}}", &self.slug)
            .replace("{{module}}", &self.module)
            .replace("{{Type}}", &self.type_name)
            .replace("{{name}}", &self.name)
            .replace("{{category}}", &self.category)
            .replace("{{bill_type}}", bill_type)
            .replace("{{qualification}}", qualification)
    }
}

/// Put on top of a browser konnector's `auth.rs`: the html skeleton logs
/// in with a form post; a site whose login needs scripts logs in through
/// the run's headless browser instead.
const BROWSER_TODO: &str = "// TODO(browser): this site's login needs scripts. Log in with the run's\n\
// headless browser instead of the form post below: `let browser =\n\
// ctx.browser().await?;` open routes::LOGIN, fill the fields, submit, wait for\n\
// the logged-in page, then hand the browser's cookies to `ctx.http()` and keep\n\
// the rest (pages, downloads) on plain HTTP. See docs/writing-a-konnector.md,\n\
// \"Browser konnectors\", and make the sandbox's login page need scripts.\n\n";

/// Where a template goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// Under `konnectors/src/<category>/<module>/`.
    Folder,
    /// Under `fixtures/<slug>/`.
    Fixtures,
    /// `konnectors/tests/<module>.rs`.
    Test,
}

/// One file to write: where, its path there, its template.
type Template = (Dest, &'static str, &'static str);

macro_rules! t {
    ($dest:ident, $path:literal, $file:literal) => {
        (
            Dest::$dest,
            $path,
            include_str!(concat!("templates/", $file)),
        )
    };
}

const COMMON: &[Template] = &[
    t!(Fixtures, "README.md", "common/README.md"),
    t!(Fixtures, "cassettes/.gitkeep", "common/gitkeep"),
    t!(Test, "", "common/test.rs"),
    t!(Folder, "sandbox/pdf.rs", "common/sandbox_pdf.rs"),
];

const HTML: &[Template] = &[
    t!(Folder, "manifest.toml", "html/manifest.toml"),
    t!(Folder, "mod.rs", "html/mod.rs"),
    t!(Folder, "routes.rs", "html/routes.rs"),
    t!(Folder, "auth.rs", "html/auth.rs"),
    t!(Folder, "pages.rs", "html/pages.rs"),
    t!(Folder, "map.rs", "html/map.rs"),
    t!(Folder, "sandbox/mod.rs", "html/sandbox/mod.rs"),
    t!(Folder, "sandbox/site.rs", "html/sandbox/site.rs"),
    t!(Fixtures, "login.html", "html/fixtures/login.html"),
    t!(
        Fixtures,
        "login_failed.html",
        "html/fixtures/login_failed.html"
    ),
    t!(Fixtures, "bills.html", "html/fixtures/bills.html"),
];

const JSON: &[Template] = &[
    t!(Folder, "manifest.toml", "json/manifest.toml"),
    t!(Folder, "mod.rs", "json/mod.rs"),
    t!(Folder, "auth.rs", "json/auth.rs"),
    t!(Folder, "api.rs", "json/api.rs"),
    t!(Folder, "map.rs", "json/map.rs"),
    t!(Folder, "sandbox/mod.rs", "json/sandbox/mod.rs"),
    t!(Folder, "sandbox/api.rs", "json/sandbox/api.rs"),
];

fn templates(kind: Kind) -> Vec<Template> {
    let own: &[Template] = match kind {
        Kind::Html | Kind::Browser => HTML,
        Kind::Json => JSON,
    };
    own.iter().chain(COMMON).copied().collect()
}

/// The workspace root: `start` or its nearest ancestor holding a
/// `Cargo.toml` with a `[workspace]` section and a `konnectors/` folder.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        let is_workspace = std::fs::read_to_string(&manifest)
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"));
        if is_workspace && dir.join("konnectors").is_dir() {
            return Ok(dir.to_owned());
        }
    }
    bail!(
        "{} is not inside the Gleaner workspace (no Cargo.toml with [workspace] and a konnectors/ folder above it); run this from the repository or pass --root",
        start.display()
    )
}

/// What [`new_konnector`] wrote.
#[derive(Debug)]
pub struct Created {
    /// The names used.
    pub names: Names,
    /// Every file written, relative to the root, in order.
    pub files: Vec<PathBuf>,
}

/// Writes the konnector `slug` under `root`. Refuses a bad slug, an unknown
/// category, or a slug that already has a folder, fixtures or a test;
/// writes nothing then.
pub fn new_konnector(root: &Path, slug: &str, category: &str, kind: Kind) -> Result<Created> {
    check_slug(slug).map_err(anyhow::Error::msg)?;
    if !CATEGORIES.contains(&category) {
        bail!(
            "unknown category `{category}`; use one of: {}",
            CATEGORIES.join(", ")
        );
    }
    let names = Names::new(slug, category);
    let src = root.join("konnectors").join("src");
    // The slug is taken in any category.
    if let Ok(categories) = std::fs::read_dir(&src) {
        for entry in categories.flatten() {
            let taken = entry.path().join(&names.module);
            if taken.exists() {
                bail!(
                    "the konnector `{slug}` already exists: {} (pick another slug)",
                    taken.strip_prefix(root).unwrap_or(&taken).display()
                );
            }
        }
    }
    let folder = PathBuf::from("konnectors/src")
        .join(category)
        .join(&names.module);
    let fixtures = PathBuf::from("fixtures").join(slug);
    let test = PathBuf::from("konnectors/tests").join(format!("{}.rs", names.module));
    for taken in [&fixtures, &test] {
        if root.join(taken).exists() {
            bail!(
                "{} already exists: the slug `{slug}` is taken (pick another slug)",
                taken.display()
            );
        }
    }
    let mut files = Vec::new();
    for (dest, path, template) in templates(kind) {
        let rel = match dest {
            Dest::Folder => folder.join(path),
            Dest::Fixtures => fixtures.join(path),
            Dest::Test => test.clone(),
        };
        let abs = root.join(&rel);
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut text = names.fill(template);
        if kind == Kind::Browser && dest == Dest::Folder && path == "auth.rs" {
            text = format!("{BROWSER_TODO}{text}");
        }
        std::fs::write(&abs, text).with_context(|| format!("cannot write {}", abs.display()))?;
        files.push(rel);
    }
    files.sort();
    format_rust(root, &files);
    Ok(Created { names, files })
}

/// Runs `rustfmt` on the Rust files written (names of different lengths
/// wrap differently), so the new code is `cargo fmt` clean. Without
/// rustfmt the files are left as written, and a line says so.
fn format_rust(root: &Path, files: &[PathBuf]) {
    let rust: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .map(|f| root.join(f))
        .collect();
    let status = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&rust)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("note: rustfmt did not run on the new files; run `cargo fmt --all`");
    }
}

/// The next steps, printed after the files.
pub fn next_steps(created: &Created, kind: Kind) -> String {
    let n = &created.names;
    let mut out = format!(
        "Next steps:\n\
         1. cargo build                       (konnectors are compiled in: rebuild with cargo build; then `gleaner konnectors` lists {slug})\n\
         2. cargo test -p gleaner-konnectors --test {module}\n\
         \x20  the sandbox test passes; the replay test fails until you record a cassette:\n\
         3. gleaner sandbox {slug}            (keep it running; it prints its URL and credentials)\n\
         4. gleaner accounts add {slug} --endpoint <URL> --field login=<login> --field password=<password>\n\
         5. gleaner run <account> --record fixtures/{slug}/cassettes\n\
         6. set EXPECTED_BILLS in konnectors/tests/{module}.rs, then run the tests again\n\
         7. make it work for the real site: edit manifest.toml (name, base_url, hosts), routes, pages, map;\n\
         \x20  `gleaner dev <account>` saves every page it saw when a run fails.\n\
         Guide: docs/writing-a-konnector.md",
        slug = n.slug,
        module = n.module,
    );
    if kind == Kind::Browser {
        out.push_str("\nBrowser konnector: see the TODO in auth.rs.");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked() {
        assert!(check_slug("acme-telco").is_ok());
        assert!(check_slug("free2move").is_ok());
        for bad in [
            "",
            "Acme",
            "acme_telco",
            "2acme",
            "acme-",
            "a--b",
            "acme telco",
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
        assert!(check_slug("match").unwrap_err().contains("keyword"));
    }

    #[test]
    fn names_and_placeholders() {
        let names = Names::new("acme-telco", "telco");
        assert_eq!(names.module, "acme_telco");
        assert_eq!(names.type_name, "AcmeTelco");
        assert_eq!(names.name, "Acme Telco");
        assert_eq!(
            names.fill("{{slug}} {{module}} {{Type}} {{name}} {{category}} {{bill_type}}"),
            "acme-telco acme_telco AcmeTelco Acme Telco telco Phone"
        );
    }

    #[test]
    fn every_template_placeholder_is_known() {
        let names = Names::new("acme-telco", "telco");
        for kind in [Kind::Html, Kind::Json, Kind::Browser] {
            for (_, path, template) in templates(kind) {
                let filled = names.fill(template);
                assert!(!filled.contains("{{"), "{kind} {path}: unknown placeholder");
            }
        }
    }

    #[test]
    fn writes_the_folder_and_refuses_a_taken_slug() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::create_dir_all(root.path().join("konnectors/src/telco")).unwrap();
        let nested = root.path().join("konnectors/src");
        assert_eq!(find_root(&nested).unwrap(), root.path());
        let created = new_konnector(root.path(), "acme-telco", "telco", Kind::Html).unwrap();
        assert!(
            created
                .files
                .contains(&PathBuf::from("konnectors/src/telco/acme_telco/mod.rs"))
        );
        assert!(root.path().join("konnectors/tests/acme_telco.rs").is_file());
        assert!(root.path().join("fixtures/acme-telco/cassettes").is_dir());
        let err = new_konnector(root.path(), "acme-telco", "energy", Kind::Json).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = new_konnector(root.path(), "Bad", "telco", Kind::Html).unwrap_err();
        assert!(err.to_string().contains("not a valid slug"), "{err}");
        let err = new_konnector(root.path(), "ok", "food", Kind::Html).unwrap_err();
        assert!(err.to_string().contains("unknown category"), "{err}");
    }
}
