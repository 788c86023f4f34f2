//! Token attributes: what kind of token an id is, as llama.cpp classifies
//! them from `tokenizer.ggml.token_type` (plus its by-name corrections).

/// A set of token attribute flags (llama.cpp's `llama_token_attr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TokenAttr(u16);

impl TokenAttr {
    pub const UNDEFINED: Self = Self(0);
    pub const UNKNOWN: Self = Self(1 << 0);
    pub const UNUSED: Self = Self(1 << 1);
    pub const NORMAL: Self = Self(1 << 2);
    /// Never produced by plain text; rendered only when specials are shown.
    pub const CONTROL: Self = Self(1 << 3);
    /// Matched in raw text before the model's tokenizer runs, always.
    pub const USER_DEFINED: Self = Self(1 << 4);
    /// An SPM byte-fallback token `<0xXX>`.
    pub const BYTE: Self = Self(1 << 5);
    /// Whitespace to the left of the token is eaten when it is matched.
    pub const LSTRIP: Self = Self(1 << 7);
    /// Whitespace to the right of the token is eaten when it is matched.
    pub const RSTRIP: Self = Self(1 << 8);

    /// The attribute of a GGUF `tokenizer.ggml.token_type` value
    /// (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub fn from_token_type(ty: i64) -> Self {
        match ty {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        }
    }

    /// Whether any flag of `other` is set.
    pub fn has(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Tokens that the special-token splitter looks for in raw text.
    pub fn is_special(self) -> bool {
        self.has(Self::CONTROL.with(Self::USER_DEFINED).with(Self::UNKNOWN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_type_four_is_user_defined_and_special() {
        let a = TokenAttr::from_token_type(4);
        assert!(a.has(TokenAttr::USER_DEFINED));
        assert!(a.is_special());
    }

    #[test]
    fn normal_and_byte_tokens_are_not_special() {
        assert!(!TokenAttr::from_token_type(1).is_special());
        assert!(!TokenAttr::from_token_type(6).is_special());
    }

    #[test]
    fn without_clears_only_the_named_flag() {
        let a = TokenAttr::CONTROL.with(TokenAttr::RSTRIP);
        assert_eq!(a.without(TokenAttr::RSTRIP), TokenAttr::CONTROL);
    }
}
