//! One table per enum that crosses the FFI edge.
//!
//! [`coded_enum!`] declares a fieldless public enum from a table that gives
//! each variant its stable C code and its snake_case name, once. Everything
//! else is derived from that table: the C constants of the generated header
//! (`C_PREFIX` + the name in upper case, see `crates/xtask`), the name the
//! CLI prints and the database stores, and the Java enum constant (the name
//! in upper case; Java maps a name it does not know to `UNKNOWN`, so a newer
//! library never breaks an older app). Codes and names are part of the ABI:
//! add variants, never renumber or rename one.

/// Declares a public fieldless enum from one table (see the module docs).
///
/// Generates the enum with its doc comments and these items: `ALL` (every
/// variant in table order), `C_PREFIX`, `code()`, `name()`, `from_code()`,
/// `c_name()`, `doc()`, `from_name()`, and `Display` and `Serialize` (the
/// name). Variants take doc comments only (`doc()` reads them).
macro_rules! coded_enum {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident, c_prefix $prefix:literal {
            $( $(#[doc = $vdoc:literal])* $Variant:ident = $code:literal, $name:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $Enum {
            $( $(#[doc = $vdoc])* $Variant, )*
        }

        impl $Enum {
            /// Every variant, in table order.
            pub const ALL: [$Enum; $crate::codes::coded_enum!(@count $($Variant)*)] = [$($Enum::$Variant),*];

            /// The prefix of this enum's constants in `include/cloudsync.h`.
            pub const C_PREFIX: &'static str = $prefix;

            /// The stable code (the C constant's value).
            pub const fn code(self) -> i32 {
                match self {
                    $( $Enum::$Variant => $code, )*
                }
            }

            /// The stable snake_case name (CLI, logs, database; the Java
            /// constant is this name in upper case).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name, )*
                }
            }

            /// [`Self::name`] as a static C string (the C `cs_*_name` functions).
            pub const fn c_name(self) -> &'static std::ffi::CStr {
                match self {
                    $( $Enum::$Variant => match std::ffi::CStr::from_bytes_with_nul(
                        concat!($name, "\0").as_bytes(),
                    ) {
                        Ok(c) => c,
                        Err(_) => panic!("a name holds a NUL"),
                    }, )*
                }
            }

            /// The variant's doc comment, one line per source line (the
            /// generated header's comment for its C constant).
            pub const fn doc(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => concat!($($vdoc, "\n"),*), )*
                }
            }

            /// The variant with this code, if any.
            pub fn from_code(code: i32) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.code() == code)
            }

            /// The variant with this name, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.name() == name)
            }
        }

        impl serde::Serialize for $Enum {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl std::fmt::Display for $Enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
    // The error table's form: a fourth column, the Java exception class.
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident, c_prefix $prefix:literal, java $Java:ident {
            $( $(#[doc = $vdoc:literal])* $Variant:ident = $code:literal, $name:literal, $class:ident; )*
        }
    ) => {
        $crate::codes::coded_enum! {
            $(#[$meta])*
            pub enum $Enum, c_prefix $prefix {
                $( $(#[doc = $vdoc])* $Variant = $code, $name; )*
            }
        }

        impl $Enum {
            /// The Java exception that carries this variant.
            pub const fn exception(self) -> $Java {
                match self {
                    $( $Enum::$Variant => $Java::$class, )*
                }
            }
        }
    };
    (@count) => { 0usize };
    (@count $head:ident $($tail:ident)*) => { 1usize + $crate::codes::coded_enum!(@count $($tail)*) };
}

pub(crate) use coded_enum;

#[cfg(test)]
mod tests {
    coded_enum! {
        /// A test table.
        pub enum Sample, c_prefix "CS_SAMPLE_" {
            /// First.
            One = 1, "one";
            /// Second.
            TwoWords = 7, "two_words";
        }
    }

    #[test]
    fn the_table_drives_every_accessor() {
        assert_eq!(Sample::ALL, [Sample::One, Sample::TwoWords]);
        assert_eq!(
            (Sample::TwoWords.code(), Sample::TwoWords.name()),
            (7, "two_words")
        );
        assert_eq!(Sample::from_code(7), Some(Sample::TwoWords));
        assert_eq!(Sample::from_code(2), None);
        assert_eq!(Sample::from_name("one"), Some(Sample::One));
        assert_eq!(Sample::from_name("One"), None);
        assert_eq!(Sample::One.to_string(), "one");
        assert_eq!(Sample::C_PREFIX, "CS_SAMPLE_");
        assert_eq!(Sample::TwoWords.c_name(), c"two_words");
        assert_eq!(Sample::One.doc(), " First.\n");
    }
}
