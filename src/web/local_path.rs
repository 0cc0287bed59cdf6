//! Where a sign-in or the language switch may send the browser back to: a path of this site, and nothing a
//! browser could read as another site. Browsers drop tabs and line breaks inside a URL and treat `\` as `/`, so
//! `/\t/evil.example` and `/\evil.example` both mean `//evil.example`: another host.

/// `next` when it is a path of this site (a single `/`, then anything but `/` or `\`, and no control character
/// anywhere); `None` otherwise, so the caller goes to `/`.
pub fn local_path(next: &str) -> Option<&str> {
    let mut chars = next.chars();
    let local = chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.chars().any(char::is_control);
    local.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn paths_of_this_site_are_kept_with_their_queries() {
        for here in [
            "/",
            "/events/3?q=%E8%BF%94",
            "/timeline?store=shibuya-01",
            "/a/\\b",
        ] {
            assert_eq!(local_path(here), Some(here));
        }
    }

    #[test]
    fn anything_a_browser_reads_as_another_site_or_that_could_split_a_header_is_refused() {
        for away in [
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "\t//evil.example",
            "/%0d%0a".replace("%0d%0a", "\r\n").as_str(),
            "/x\r\nSet-Cookie: a=b",
            "https://evil.example/",
            "javascript:alert(1)",
            "events",
            "",
            " /x",
        ] {
            assert_eq!(local_path(away), None, "{away:?}");
        }
    }
}
