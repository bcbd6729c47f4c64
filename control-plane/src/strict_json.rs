//! Stricter JSON reading than serde's derive, which also builds a struct from an array of its
//! fields (`["name", "desc"]` for `{"name": …, "description": …}`): what a client sends as a
//! struct must be a JSON object. The HTTP edge checks whole bodies; domains use these for the
//! structs nested inside them.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A struct inside a body that must be given as a JSON object (not as an array of its fields,
/// which serde's derived `Deserialize` also takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// `#[serde(deserialize_with = "objects")]` for a `Vec<T>` whose items must be JSON objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let items: Vec<Object<T>> = Vec::deserialize(d)?;
    Ok(items.into_iter().map(|Object(t)| t).collect())
}
