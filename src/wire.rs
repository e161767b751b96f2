//! Enums whose variants have one name each on the wire: [`wire_enum!`] names them once, and
//! serde, `as_str`, `FromStr`, `Display` and the list of all variants are made from that.

/// An enum of unit variants, each with its wire name: `Serialize`/`Deserialize` as that
/// name, `as_str`, `FromStr` (the wire name back), `Display`, `ALL` (every variant, in
/// order) and `NAMES` (their wire names).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every variant's wire name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($wire),+];

            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::wire::UnknownName;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::wire::UnknownName {
                        name: s.to_string(),
                        expected: Self::NAMES,
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(|_| {
                    <D::Error as ::serde::de::Error>::unknown_variant(&s, Self::NAMES)
                })
            }
        }
    };
}
pub(crate) use wire_enum;

/// `names` as a person lists them: `a, b or c`.
pub fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}

/// A name that is none of an enum's wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name `{name}`, expected one of {expected:?}")]
pub struct UnknownName {
    pub name: String,
    pub expected: &'static [&'static str],
}
