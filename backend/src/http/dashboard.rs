//! The live ops dashboard: one self-contained page, embedded in the binary.

use std::sync::OnceLock;

const HTML: &str = include_str!("assets/dashboard.html");
const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// The dashboard page with its CSS and JS inlined, so it is one request, works offline and
/// needs no second authenticated fetch.
pub fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| HTML.replace("/*__CSS__*/", CSS).replace("/*__JS__*/", JS))
}

#[cfg(test)]
mod tests {
    #[test]
    fn assets_are_inlined() {
        let page = super::page();
        assert!(!page.contains("/*__CSS__*/") && !page.contains("/*__JS__*/"));
        assert!(page.contains("/api/stats"));
        assert!(page.contains("<canvas"));
    }
}
