//! A serde `Deserializer` over a [`Node`] tree that knows where it is: every error it returns
//! carries the field path and line, and says whether it is an unknown key, a missing one, or a
//! wrong value, so that `recover` can mend the tree and read on.

use std::fmt;

use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, Unexpected, Visitor};

use super::tree::{Kind, Node, Seg};

/// What went wrong, and where.
#[derive(Debug)]
pub(super) struct Error {
    pub(super) message: String,
    pub(super) kind: ErrorKind,
    /// The field path and line, set by the innermost node that saw the error.
    pub(super) at: Option<(Vec<Seg>, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ErrorKind {
    /// A value of the wrong type or form.
    Value,
    /// A key the type does not have.
    UnknownField,
    /// A key the type needs and the map lacks.
    MissingField(String),
}

impl Error {
    fn new(message: String, kind: ErrorKind) -> Self {
        Error {
            message,
            kind,
            at: None,
        }
    }

    fn at(mut self, path: &[Seg], line: u64) -> Self {
        if self.at.is_none() {
            self.at = Some((path.to_vec(), line));
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// serde's wording for a list of names: `a`, `a` or `b`, one of `a`, `b`, `c`.
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        more => format!("one of {}", more.join(", ")),
    }
}

/// `expected {what}, got {what was there}`, in the words of a YAML file rather than of serde's
/// data model.
fn expected(what: &str, got: Unexpected) -> String {
    let what = match what {
        "a boolean" => "true or false",
        "a sequence" => "a list",
        other => other,
    };
    let got = match got {
        Unexpected::Str(s) => format!("{s:?}"),
        Unexpected::Unit => "nothing".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Map => "a map".to_string(),
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Float(n) => n.to_string(),
        other => other.to_string(),
    };
    format!("expected {what}, got {got}")
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string(), ErrorKind::Value)
    }

    fn invalid_type(unexp: Unexpected, exp: &dyn de::Expected) -> Self {
        Error::custom(expected(&exp.to_string(), unexp))
    }

    fn invalid_value(unexp: Unexpected, exp: &dyn de::Expected) -> Self {
        Error::custom(expected(&exp.to_string(), unexp))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let message = if expected.is_empty() {
            format!("unknown field `{field}`, there are no fields")
        } else {
            format!("unknown field `{field}`, expected {}", one_of(expected))
        };
        Error::new(message, ErrorKind::UnknownField)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error::custom(format_args!(
            "unknown variant `{variant}`, expected {}",
            one_of(expected)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Error::new(
            format!("missing field `{field}`"),
            ErrorKind::MissingField(field.to_string()),
        )
    }
}

/// Reads one node at one path.
pub(super) struct De<'a> {
    node: &'a Node,
    path: Vec<Seg>,
}

impl<'a> De<'a> {
    pub(super) fn root(node: &'a Node) -> Self {
        De {
            node,
            path: Vec::new(),
        }
    }

    fn child(&self, node: &'a Node, seg: Seg) -> De<'a> {
        let mut path = self.path.clone();
        path.push(seg);
        De { node, path }
    }

    fn fail(&self, message: String) -> Error {
        Error::custom(message).at(&self.path, self.node.line)
    }

    /// `expected {what}, got {the node}`.
    fn mismatch(&self, what: &str) -> Error {
        let got = match &self.node.kind {
            Kind::Scalar { .. } if self.node.is_null() => Unexpected::Unit,
            Kind::Scalar { text, .. } => Unexpected::Str(text),
            Kind::Seq(_) => Unexpected::Seq,
            Kind::Map(_) => Unexpected::Map,
            Kind::Placeholder => Unexpected::Unit,
        };
        self.fail(expected(what, got))
    }

    fn text(&self, what: &str) -> Result<&'a str, Error> {
        match &self.node.kind {
            Kind::Scalar { text, .. } => Ok(text),
            Kind::Placeholder => Ok(""),
            _ => Err(self.mismatch(what)),
        }
    }

    fn located<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| e.at(&self.path, self.node.line))
    }

    fn int(&self) -> Result<Number, Error> {
        if matches!(self.node.kind, Kind::Placeholder) {
            return Ok(Number::U(0));
        }
        let text = self.text("a number")?;
        parse_int(text).ok_or_else(|| self.mismatch("a whole number"))
    }
}

enum Number {
    U(u64),
    I(i64),
}

fn parse_int(text: &str) -> Option<Number> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        u64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    if neg {
        Some(Number::I(0i64.checked_sub_unsigned(magnitude)?))
    } else {
        Some(Number::U(magnitude))
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if text.bytes().any(|b| b.is_ascii_digit()) => text.parse().ok(),
        _ => None,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

macro_rules! integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let r = match self.int()? {
                Number::U(u) => visitor.visit_u64(u),
                Number::I(i) => visitor.visit_i64(i),
            };
            self.located(r)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.kind {
            Kind::Scalar { .. } if self.node.is_null() => visitor.visit_unit(),
            Kind::Scalar { text, plain: true } => {
                if let Some(b) = parse_bool(text) {
                    visitor.visit_bool(b)
                } else if let Some(n) = parse_int(text) {
                    match n {
                        Number::U(u) => visitor.visit_u64(u),
                        Number::I(i) => visitor.visit_i64(i),
                    }
                } else if let Some(f) = parse_float(text) {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(text)
                }
            }
            Kind::Scalar { text, plain: false } => visitor.visit_str(text),
            Kind::Seq(_) => return self.deserialize_seq(visitor),
            Kind::Map(_) => return self.deserialize_map(visitor),
            Kind::Placeholder => visitor.visit_unit(),
        };
        self.located(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = match &self.node.kind {
            Kind::Placeholder => false,
            Kind::Scalar { text, .. } => {
                parse_bool(text).ok_or_else(|| self.mismatch("true or false"))?
            }
            _ => return Err(self.mismatch("true or false")),
        };
        self.located(visitor.visit_bool(b))
    }

    integer! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let f = match &self.node.kind {
            Kind::Placeholder => 0.0,
            _ => {
                let text = self.text("a number")?;
                parse_float(text).ok_or_else(|| self.mismatch("a number"))?
            }
        };
        self.located(visitor.visit_f64(f))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text("text")?;
        self.located(visitor.visit_str(text))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() || matches!(self.node.kind, Kind::Placeholder) {
            let r = visitor.visit_none();
            self.located(r)
        } else {
            let (path, line) = (self.path.clone(), self.node.line);
            visitor.visit_some(self).map_err(|e| e.at(&path, line))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() || matches!(self.node.kind, Kind::Placeholder) {
            self.located(visitor.visit_unit())
        } else {
            Err(self.mismatch("nothing"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (path, line) = (self.path.clone(), self.node.line);
        let r = if name == SPANNED {
            visitor.visit_newtype_struct(Spanned(self))
        } else {
            visitor.visit_newtype_struct(self)
        };
        r.map_err(|e| e.at(&path, line))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items: &[Node] = match &self.node.kind {
            Kind::Seq(items) => items,
            Kind::Placeholder => &[],
            _ => return Err(self.mismatch("a list")),
        };
        let r = visitor.visit_seq(Items {
            de: &self,
            items: items.iter().enumerate(),
        });
        self.located(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let entries: &[super::tree::Entry] = match &self.node.kind {
            Kind::Map(entries) => entries,
            Kind::Placeholder => &[],
            _ => return Err(self.mismatch("a map")),
        };
        let r = visitor.visit_map(Entries {
            de: &self,
            entries: entries.iter(),
            value: None,
        });
        self.located(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let r = match &self.node.kind {
            Kind::Scalar { text, .. } => visitor.visit_enum(Variant {
                name: text.as_str(),
                value: None,
                de: &self,
            }),
            Kind::Map(entries) if entries.len() == 1 => {
                let e = &entries[0];
                visitor.visit_enum(Variant {
                    name: e.name(),
                    value: Some(self.child(&e.value, Seg::Key(e.name().to_string()))),
                    de: &self,
                })
            }
            Kind::Placeholder => visitor.visit_enum(Variant {
                name: variants.first().copied().unwrap_or(""),
                value: Some(De {
                    node: &Node::PLACEHOLDER,
                    path: self.path.clone(),
                }),
                de: &self,
            }),
            _ => return Err(self.mismatch(&format!("one of {}", one_of(variants)))),
        };
        self.located(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Items<'d, 'a, I> {
    de: &'d De<'a>,
    items: I,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for Items<'_, 'a, I> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some((i, node)) => seed
                .deserialize(self.de.child(node, Seg::Index(i)))
                .map(Some),
            None => Ok(None),
        }
    }
}

struct Entries<'d, 'a, I> {
    de: &'d De<'a>,
    entries: I,
    value: Option<De<'a>>,
}

impl<'de, 'a, I: Iterator<Item = &'a super::tree::Entry>> de::MapAccess<'de>
    for Entries<'_, 'a, I>
{
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let value = self
            .de
            .child(&entry.value, Seg::Key(entry.name().to_string()));
        let key = De {
            node: &entry.key,
            path: value.path.clone(),
        };
        // A key's own error (unknown field) is the entry's: it names the key's path and line.
        let k = seed.deserialize(key)?;
        self.value = Some(value);
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(self.de.fail("a value without its key".to_string())),
        }
    }
}

struct Variant<'d, 'a> {
    name: &'a str,
    value: Option<De<'a>>,
    de: &'d De<'a>,
}

impl<'de, 'd, 'a> de::EnumAccess<'de> for Variant<'d, 'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let name: de::value::StrDeserializer<'_, Error> = self.name.into_deserializer();
        let v = seed
            .deserialize(name)
            .map_err(|e| e.at(&self.de.path, self.de.node.line))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Some(v) if !v.node.is_null() && !matches!(v.node.kind, Kind::Placeholder) => {
                Err(v.mismatch(&format!("nothing after `{}`", self.name)))
            }
            _ => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(v) => seed.deserialize(v),
            None => Err(self.de.mismatch(&format!("a value for `{}`", self.name))),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(v) => de::Deserializer::deserialize_seq(v, visitor),
            None => Err(self.de.mismatch(&format!("a list for `{}`", self.name))),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(v) => de::Deserializer::deserialize_map(v, visitor),
            None => Err(self.de.mismatch(&format!("a map for `{}`", self.name))),
        }
    }
}

/// The newtype name `serde_saphyr::Spanned` asks for, and the first key of the map it then reads
/// (`value`, `referenced`, `defined` follow). Answering it lets the wrapped value be read by this
/// deserializer's own typed methods, as the typed reader reads it, and gives it its line. Should
/// the crate change its protocol, `Spanned` falls back to reading a plain value, and the samples'
/// agreement test says so.
const SPANNED: &str = "__yaml_spanned";
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

struct Spanned<'a>(De<'a>);

impl<'de> de::Deserializer<'de> for Spanned<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(SpannedFields {
            de: Some(self.0),
            line: 0,
            step: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct SpannedFields<'a> {
    de: Option<De<'a>>,
    line: u64,
    step: u8,
}

impl<'de> de::MapAccess<'de> for SpannedFields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = match self.step {
            0 => SPANNED_MARKER,
            1 => "value",
            2 => "referenced",
            3 => "defined",
            _ => return Ok(None),
        };
        self.step += 1;
        seed.deserialize(de::value::StrDeserializer::<Error>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.step {
            1 => seed.deserialize(de::value::BoolDeserializer::<Error>::new(true)),
            2 => match self.de.take() {
                Some(de) => {
                    self.line = de.node.line;
                    seed.deserialize(de)
                }
                None => Err(Error::custom("a span read twice")),
            },
            _ => {
                let fields = [("line", self.line), ("column", 1)];
                seed.deserialize(de::value::MapDeserializer::<_, Error>::new(
                    fields.into_iter(),
                ))
            }
        }
    }
}
