//! The little XML reading discovery needs, over `roxmltree` (no DTD loading, no external
//! entities): documents are capped in size, elements are found by local name (makers use
//! every namespace prefix there is), and nothing here panics on any input.

/// Largest SOAP document we parse.
pub const MAX_XML: usize = 256 * 1024;

pub fn parse(text: &str) -> Option<roxmltree::Document<'_>> {
    if text.len() > MAX_XML {
        return None;
    }
    roxmltree::Document::parse(text).ok()
}

/// The first element with local name `name`.
pub fn find<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// An element's text, trimmed.
pub fn text(n: &roxmltree::Node<'_, '_>) -> String {
    n.text().unwrap_or("").trim().to_string()
}

/// The text of the first element named `name` under `n` ("" when none).
pub fn child_text(n: &roxmltree::Node<'_, '_>, name: &str) -> String {
    n.descendants()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .map(|c| text(&c))
        .unwrap_or_default()
}

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
