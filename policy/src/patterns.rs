//! Name patterns used by grants: an exact name, a prefix (`tools/*`, `read_*`), or `*`.

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
}

impl Pattern {
    /// `*` → any; a trailing `*` → prefix; anything else → exact. A `*` elsewhere is refused.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        if text == "*" {
            return Ok(Pattern::Any);
        }
        let (head, wildcard) = match text.strip_suffix('*') {
            Some(head) => (head, true),
            None => (text, false),
        };
        if head.contains('*') {
            return Err(format!("{text:?}: `*` is only allowed at the end"));
        }
        if head.chars().any(char::is_control) {
            return Err(format!("{text:?}: control characters are not allowed"));
        }
        Ok(if wildcard {
            Pattern::Prefix(head.into())
        } else {
            Pattern::Exact(head.into())
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(exact) => **exact == *name,
            Pattern::Prefix(prefix) => name.starts_with(&**prefix),
        }
    }
}

/// A list of patterns; matches when any one does. Empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(Box<[Pattern]>);

impl Patterns {
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Patterns, (usize, String)> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Pattern::parse(t.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Patterns(v.into_boxed_slice()))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.matches(name))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
