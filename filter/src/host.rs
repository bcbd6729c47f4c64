//! Request headers as bytes, straight from the host. The SDK's header getters turn names (and,
//! for the `String` variants, values) into `String` with `unwrap()`: one non-UTF-8 byte from a
//! client would panic the VM and take the worker down. Here the host's serialized map is kept as
//! it came and read as borrowed byte slices; a map that does not parse is refused, never
//! guessed at.

use proxy_wasm::types::{MapType, Status};

use policy::HeaderPair;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_set_header_map_pairs(
        map_type: MapType,
        map_data: *const u8,
        map_size: usize,
    ) -> Status;
}

/// The request headers in the host's serialization (proxy-wasm ABI): a little-endian `u32`
/// count, then a (name length, value length) `u32` pair per header, then each name and value
/// followed by a NUL byte.
pub struct SerializedHeaders(Vec<u8>);

/// Why the host's header map could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The host call failed.
    Host,
    /// The bytes do not follow the serialization.
    Malformed,
}

impl SerializedHeaders {
    /// The current request headers, in one host call.
    pub fn request() -> Result<SerializedHeaders, MapError> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a buffer it allocated through the SDK's exported allocator
        // (`proxy_on_memory_allocate`, a `Vec<u8>` of exactly `size` bytes), whose ownership
        // passes to us, as in the SDK's own `get_map_bytes`.
        unsafe {
            match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
                Status::Ok if data.is_null() => Ok(SerializedHeaders(Vec::new())),
                Status::Ok => Ok(SerializedHeaders(Vec::from_raw_parts(data, size, size))),
                _ => Err(MapError::Host),
            }
        }
    }

    /// The headers as (name, value) byte slices, in order.
    pub fn pairs(&self) -> Result<Vec<HeaderPair<'_>>, MapError> {
        parse(&self.0)
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// Parses the host's serialization, checking every length against the buffer.
pub fn parse(bytes: &[u8]) -> Result<Vec<HeaderPair<'_>>, MapError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let count = read_u32(bytes, 0).ok_or(MapError::Malformed)?;
    let mut data = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .filter(|&start| start <= bytes.len())
        .ok_or(MapError::Malformed)?;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let name_len = read_u32(bytes, 4 + i * 8).ok_or(MapError::Malformed)?;
        let value_len = read_u32(bytes, 8 + i * 8).ok_or(MapError::Malformed)?;
        let name = take(bytes, &mut data, name_len)?;
        let value = take(bytes, &mut data, value_len)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The `len` bytes at `*at`, which must be followed by a NUL; moves `*at` past it.
fn take<'b>(bytes: &'b [u8], at: &mut usize, len: usize) -> Result<&'b [u8], MapError> {
    let end = at.checked_add(len).ok_or(MapError::Malformed)?;
    let slice = bytes.get(*at..end).ok_or(MapError::Malformed)?;
    if bytes.get(end) != Some(&0) {
        return Err(MapError::Malformed);
    }
    *at = end + 1;
    Ok(slice)
}

/// The host's serialization of `pairs`.
pub fn serialize(pairs: &[HeaderPair<'_>]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(n, v)| 8 + n.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Replaces the request headers with `pairs`, in one host call (measured: several µs cheaper
/// than one call per header), keeping every byte of every value.
pub fn set_request_headers(pairs: &[HeaderPair<'_>]) -> Result<(), MapError> {
    let bytes = serialize(pairs);
    // SAFETY: the host copies `bytes.len()` bytes from a live buffer during the call.
    match unsafe {
        proxy_set_header_map_pairs(MapType::HttpRequestHeaders, bytes.as_ptr(), bytes.len())
    } {
        Status::Ok => Ok(()),
        _ => Err(MapError::Host),
    }
}

#[cfg(test)]
mod tests;
