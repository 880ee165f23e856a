//! Keeps `include/cloudsync.h` (hand-written) in sync with the files of
//! `src/ffi/capi/` (`mod.rs` and the rest): parses the `extern "C" fn cs_*` definitions
//! and the header's prototypes and compares names, parameter and return types
//! (after mapping Rust types to C), the fields of the `#[repr(C)]` structs,
//! the callback types, the stop reasons and event types, which functions
//! exist only with `ffi-test-hooks`, every status code against
//! [`ErrorKind::ALL`] / [`ErrorKind::code`], and `CLOUDSYNC_VERSION` against
//! Cargo.toml.

use std::collections::BTreeMap;
use std::path::Path;

use cloudsync::ErrorKind;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The Rust side of the C ABI: the files of `src/ffi/capi/`, `mod.rs` first.
fn capi() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi/capi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|f| f.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| !p.ends_with("mod.rs"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut src = read("src/ffi/capi/mod.rs");
    for f in files {
        src.push('\n');
        src += &std::fs::read_to_string(&f).expect("read a capi file");
    }
    src
}

/// Rust source without `//` comments (whole-line and trailing; the FFI file
/// has no `//` inside string literals).
fn strip_rust_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// C source without `/* */` and `//` comments.
fn strip_c_comments(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("unterminated comment");
        rest = &rest[i + end + 2..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text inside the parentheses that open at `s[0]`, and what follows.
fn balanced(s: &str, open: char, close: char) -> (&str, &str) {
    assert!(
        s.starts_with(open),
        "expected {open:?} at {:?}",
        &s[..s.len().min(40)]
    );
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return (&s[1..i], &s[i + 1..]);
            }
        }
    }
    panic!("unbalanced {open:?}");
}

/// Splits on commas outside (), <> and [] ("->" is not a bracket).
fn split_top(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    let mut prev = ' ';
    for c in s.chars() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '>' if prev != '-' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                prev = c;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        prev = c;
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

/// A Rust FFI type spelled as C (`*mut *mut cs_agent` → `cs_agent**`).
fn rust_to_c(ty: &str) -> String {
    let ty = ty.trim();
    if let Some(rest) = ty.strip_prefix("*mut ") {
        return format!("{}*", rust_to_c(rest));
    }
    if let Some(rest) = ty.strip_prefix("*const ") {
        let inner = rust_to_c(rest);
        // `*const *const c_char` is `const char *const *`.
        return match inner.ends_with('*') {
            true => format!("{inner}const*"),
            false => format!("const {inner}*"),
        };
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let (elem, n) = inner.split_once(';').expect("array type [T; N]");
        return format!("{}[{}]", rust_to_c(elem), n.trim());
    }
    match ty {
        "c_char" => "char",
        "c_int" => "int",
        "c_void" => "void",
        "u8" => "uint8_t",
        "i32" => "int32_t",
        "u32" => "uint32_t",
        "i64" => "int64_t",
        "u64" => "uint64_t",
        "usize" => "size_t",
        other => other,
    }
    .to_string()
}

/// A C declaration's type without its name (`const char *db_path` → `const char*`).
fn c_decl_type(decl: &str) -> (String, String) {
    let decl = decl.trim();
    let (mut ty, mut name) = match decl.rfind(|c: char| !(c.is_alphanumeric() || c == '_')) {
        Some(i) => (decl[..=i].to_string(), decl[i + 1..].to_string()),
        None => (String::new(), decl.to_string()),
    };
    // `char region[64]`: the array bound belongs to the type.
    if let Some(i) = decl.find('[') {
        let head = &decl[..i];
        let j = head.rfind(' ').expect("array field has a type");
        name = head[j + 1..].to_string();
        ty = format!("{}{}", &head[..j], &decl[i..]);
    }
    (normalize_c_type(&ty), name)
}

fn normalize_c_type(ty: &str) -> String {
    let ty = ty.split_whitespace().collect::<Vec<_>>().join(" ");
    ty.replace(" *", "*").replace("* ", "*").trim().to_string()
}

#[derive(Debug, PartialEq, Eq, Clone)]
struct Sig {
    params: Vec<String>,
    ret: String,
    test_hook: bool,
}

fn rust_functions(src: &str) -> BTreeMap<String, Sig> {
    let src = strip_rust_comments(src);
    let mut out = BTreeMap::new();
    let marker = "extern \"C\" fn ";
    let mut pos = 0;
    while let Some(i) = src[pos..].find(marker) {
        let start = pos + i;
        let after = &src[start + marker.len()..];
        let name_end = after.find('(').expect("fn name then (");
        let name = after[..name_end].trim().to_string();
        let (params, rest) = balanced(&after[name_end..], '(', ')');
        let head = &rest[..rest.find('{').expect("fn body")];
        let ret = head
            .trim()
            .strip_prefix("->")
            .map(|r| rust_to_c(r.trim()))
            .unwrap_or_else(|| "void".into());
        let params = split_top(params)
            .iter()
            .map(|p| rust_to_c(p.split_once(':').expect("name: Type").1))
            .collect();
        // The attributes right before this item (back to the previous item).
        let before = &src[..start];
        let prev_item = before.rfind('}').unwrap_or(0);
        let test_hook = before[prev_item..].contains("feature = \"ffi-test-hooks\"");
        if name.starts_with("cs_") {
            out.insert(
                name,
                Sig {
                    params,
                    ret,
                    test_hook,
                },
            );
        }
        pos = start + marker.len();
    }
    out
}

fn header_functions(header: &str) -> BTreeMap<String, Sig> {
    let src = strip_c_comments(header);
    let mut out = BTreeMap::new();
    let mut in_hooks = false;
    // Join declarations: split the preprocessed text into statements at ';',
    // tracking the test-hook #ifdef by line.
    let mut stmt = String::new();
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            if t.starts_with("#ifdef CLOUDSYNC_TEST_HOOKS") {
                in_hooks = true;
            } else if t.starts_with("#endif") {
                in_hooks = false;
            }
            continue;
        }
        stmt.push(' ');
        stmt.push_str(t);
        while let Some(i) = stmt.find(';') {
            let s = stmt[..i].trim().to_string();
            stmt = stmt[i + 1..].to_string();
            if s.starts_with("typedef") || s.contains('{') || s.contains('}') {
                continue;
            }
            let Some(open) = s.find('(') else { continue };
            let (ret, name) = c_decl_type(&s[..open]);
            if !name.starts_with("cs_") {
                continue;
            }
            let (params, _) = balanced(&s[open..], '(', ')');
            let params: Vec<String> = if params.trim() == "void" {
                Vec::new()
            } else {
                split_top(params).iter().map(|p| c_decl_type(p).0).collect()
            };
            out.insert(
                name,
                Sig {
                    params,
                    ret,
                    test_hook: in_hooks,
                },
            );
        }
    }
    out
}

/// `typedef struct NAME { fields } NAME;` → field (name, type) list.
fn header_struct(header: &str, name: &str) -> Vec<(String, String)> {
    let src = strip_c_comments(header);
    let start = src
        .find(&format!("typedef struct {name} {{"))
        .unwrap_or_else(|| panic!("struct {name} in header"));
    let body_start = start + src[start..].find('{').expect("{");
    let (body, rest) = balanced(&src[body_start..], '{', '}');
    assert!(
        rest.trim_start().starts_with(&format!("{name};")),
        "typedef name of {name}"
    );
    body.split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (ty, n) = c_decl_type(f);
            (n, ty)
        })
        .collect()
}

fn rust_struct(src: &str, name: &str) -> Vec<(String, String)> {
    let src = strip_rust_comments(src);
    let start = src
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("struct {name} in src/ffi/capi/"));
    let body_start = start + src[start..].find('{').expect("{");
    let (body, _) = balanced(&src[body_start..], '{', '}');
    split_top(body)
        .iter()
        .map(|f| {
            let (n, ty) = f
                .trim()
                .trim_start_matches("pub ")
                .split_once(':')
                .expect("field: Type");
            // `r#type` is C's `type`.
            (n.trim().trim_start_matches("r#").to_string(), rust_to_c(ty))
        })
        .collect()
}

/// `CS_X = N` entries of a C enum.
fn header_enum(header: &str, name: &str) -> BTreeMap<String, i32> {
    let src = strip_c_comments(header);
    let start = src
        .find(&format!("enum {name} {{"))
        .unwrap_or_else(|| panic!("enum {name} in header"));
    let body_start = start + src[start..].find('{').expect("{");
    let (body, _) = balanced(&src[body_start..], '{', '}');
    body.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (k, v) = e.split_once('=').expect("explicit value");
            (
                k.trim().to_string(),
                v.trim().parse().expect("integer value"),
            )
        })
        .collect()
}

/// `pub const NAME: i32 = N;` items of src/ffi/capi/ starting with `prefix`.
fn rust_consts(src: &str, prefix: &str) -> BTreeMap<String, i32> {
    strip_rust_comments(src)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let (name, rest) = l.split_once(':').expect("const NAME: T");
            let value = rest
                .split_once('=')
                .expect("= value")
                .1
                .trim()
                .trim_end_matches(';');
            (
                name.trim().to_string(),
                value.parse().expect("integer const"),
            )
        })
        .collect()
}

#[test]
fn functions_match() {
    let rust = rust_functions(&capi());
    let header = header_functions(&read("include/cloudsync.h"));
    assert!(rust.len() >= 14, "parsed too few Rust functions: {rust:#?}");
    assert_eq!(
        rust.keys().collect::<Vec<_>>(),
        header.keys().collect::<Vec<_>>(),
        "the same cs_* functions on both sides"
    );
    for (name, r) in &rust {
        let h = &header[name];
        assert_eq!(r.params.len(), h.params.len(), "{name}: parameter count");
        assert_eq!(
            r, h,
            "{name}: parameter/return types or test-hook guard differ"
        );
    }
    assert!(
        rust["cs_test_panic"].test_hook,
        "cs_test_panic is a test hook"
    );
    assert!(!rust["cs_open"].test_hook);
    assert_eq!(
        rust["cs_enqueue_all"].params[1], "const char*const*",
        "a pointer to const pointers"
    );
    assert_eq!(
        rust["cs_open"].params,
        ["const char*", "const uint8_t*", "size_t", "cs_agent**"],
        "the mapping itself is sane"
    );
}

#[test]
fn status_codes_match_error_kinds() {
    let header = header_enum(&read("include/cloudsync.h"), "cs_status_code");
    let mut expected: BTreeMap<String, i32> = ErrorKind::ALL
        .iter()
        .map(|k| (format!("CS_{}", k.name().to_ascii_uppercase()), k.code()))
        .collect();
    expected.insert("CS_OK".into(), 0);
    assert_eq!(header, expected, "header status codes == ErrorKind::code()");
    assert_eq!(
        rust_consts(&capi(), "CS_OK"),
        BTreeMap::from([("CS_OK".to_string(), 0)])
    );
}

#[test]
fn stop_reasons_match() {
    let header = header_enum(&read("include/cloudsync.h"), "cs_stop_reason");
    let rust = rust_consts(&capi(), "CS_STOP_");
    assert!(rust.len() >= 3, "{rust:?}");
    assert_eq!(header, rust);
}

#[test]
fn event_types_match() {
    let header = header_enum(&read("include/cloudsync.h"), "cs_event_type");
    let rust = rust_consts(&capi(), "CS_EVENT_");
    assert_eq!(rust.len(), 5, "{rust:?}");
    assert_eq!(header, rust);
}

#[test]
fn version_macro_is_the_crate_version() {
    let h = read("include/cloudsync.h");
    let line = h
        .lines()
        .find_map(|l| l.trim().strip_prefix("#define CLOUDSYNC_VERSION "))
        .expect("#define CLOUDSYNC_VERSION in the header");
    assert_eq!(line.trim(), format!("\"{}\"", env!("CARGO_PKG_VERSION")));
    assert_eq!(cloudsync::VERSION, env!("CARGO_PKG_VERSION"));
}

#[test]
fn structs_match() {
    let (rs, h) = (capi(), read("include/cloudsync.h"));
    for name in [
        "cs_queue_stats",
        "cs_run_report",
        "cs_refresh_report",
        "cs_event",
        "cs_item",
        "cs_audit_record",
        "cs_config_info",
    ] {
        let r = rust_struct(&rs, name);
        assert!(!r.is_empty());
        assert_eq!(r, header_struct(&h, name), "fields of {name}");
    }
    assert_eq!(
        rust_struct(&rs, "cs_run_report")[0],
        ("region".to_string(), "char[64]".to_string())
    );
    assert_eq!(
        rust_struct(&rs, "cs_refresh_report")[4],
        ("mirror".to_string(), "char[260]".to_string())
    );
    assert_eq!(
        rust_struct(&rs, "cs_event")[0],
        ("type".to_string(), "int32_t".to_string())
    );
    assert_eq!(
        rust_struct(&rs, "cs_run_report").last().unwrap(),
        &("next_due_at_ms".to_string(), "int64_t".to_string())
    );
}

/// A callback type's (parameter types, return type) on both sides.
fn callback_types(name: &str) -> ((Vec<String>, String), (Vec<String>, String)) {
    let rs = strip_rust_comments(&capi());
    let start = rs
        .find(&format!("pub type {name} ="))
        .unwrap_or_else(|| panic!("{name} in src/ffi/capi/"));
    let decl = &rs[start..start + rs[start..].find(';').expect(";")];
    let fn_at = decl.find("fn(").expect("fn type");
    let (params, rest) = balanced(&decl[fn_at + 2..], '(', ')');
    let ret = rust_to_c(
        rest.trim()
            .trim_start_matches("->")
            .trim_end_matches(|c: char| c == '>' || c == ',' || c.is_whitespace()),
    );
    let rust: Vec<String> = split_top(params)
        .iter()
        .map(|p| rust_to_c(p.split_once(':').expect("name: T").1))
        .collect();

    let h = strip_c_comments(&read("include/cloudsync.h"));
    let start = h
        .find(&format!("(*{name})"))
        .unwrap_or_else(|| panic!("{name} in header"));
    let typedef = h[..start].rfind("typedef").expect("typedef");
    let h_ret = normalize_c_type(&h[typedef + "typedef".len()..start]);
    let decl = &h[start..start + h[start..].find(';').expect(";")];
    let open = decl.find(")(").expect("param list") + 1;
    let (params, _) = balanced(&decl[open..], '(', ')');
    let header: Vec<String> = split_top(params).iter().map(|p| c_decl_type(p).0).collect();
    ((rust, ret), (header, h_ret))
}

#[test]
fn callbacks_match() {
    for name in ["cs_progress_fn", "cs_credential_fn", "cs_event_fn"] {
        let (rust, header) = callback_types(name);
        assert_eq!(rust, header, "{name}");
        assert_eq!(rust.1, "int", "{name}");
    }
    let (rust, _) = callback_types("cs_credential_fn");
    assert_eq!(
        rust.0[6..],
        ["size_t", "size_t*"],
        "the mapping itself is sane"
    );
}

#[test]
fn parser_sees_drift() {
    // The checks above are only as good as the parsers: feed them a drifted copy.
    let header =
        read("include/cloudsync.h").replace("size_t root_len, cs_agent **out", "cs_agent **out");
    let h = header_functions(&header);
    let r = rust_functions(&capi());
    assert_ne!(h["cs_open"], r["cs_open"]);
    let header = read("include/cloudsync.h").replace("CS_BUSY = 30", "CS_BUSY = 31");
    assert_eq!(header_enum(&header, "cs_status_code")["CS_BUSY"], 31);
}
