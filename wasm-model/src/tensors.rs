//! Little-endian tensor bytes ↔ f32: the one place that decodes f16/f32 values (raw bytes or a safetensors
//! `TensorView`) and encodes f32 values as f16/f32 bytes or a whole safetensors file. Every weight file, the
//! hubness bank and `gallery.bin` rows go through here (the trainer too).

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// The two float encodings imgpick's files use (safetensors `F32`/`F16`, gallery dtypes 1/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatDtype {
    F32,
    F16,
}

impl FloatDtype {
    /// `F16` when `f16`, else `F32` (the exporters' `--f32` / f16 switch).
    pub fn half_if(f16: bool) -> Self {
        if f16 {
            FloatDtype::F16
        } else {
            FloatDtype::F32
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            FloatDtype::F32 => 4,
            FloatDtype::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FloatDtype::F32 => "f32",
            FloatDtype::F16 => "f16",
        }
    }

    /// The safetensors dtype of the same name.
    pub fn to_safetensors(self) -> Dtype {
        match self {
            FloatDtype::F32 => Dtype::F32,
            FloatDtype::F16 => Dtype::F16,
        }
    }

    /// `F32`/`F16`; any other safetensors dtype is an error naming it.
    pub fn from_safetensors(dtype: Dtype) -> Result<Self, TensorBytesError> {
        match dtype {
            Dtype::F32 => Ok(FloatDtype::F32),
            Dtype::F16 => Ok(FloatDtype::F16),
            other => Err(TensorBytesError::Dtype(format!("{other:?}"))),
        }
    }
}

impl std::fmt::Display for FloatDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be read or written as float values. Callers add the file and tensor name.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TensorBytesError {
    #[error("{len} bytes is not a whole number of {dtype} values ({} bytes each): the data is truncated or not {dtype}", .dtype.size())]
    Length { len: usize, dtype: FloatDtype },
    #[error("has dtype {0}, expected F32 or F16")]
    Dtype(String),
    #[error("has shape {shape:?} ({elements} values) but {values} values were given")]
    Shape { shape: Vec<usize>, elements: usize, values: usize },
    #[error("not a readable safetensors file: {0}")]
    Safetensors(String),
}

/// Little-endian f32 values; a length that is not a multiple of 4 is refused.
pub fn decode_f32(bytes: &[u8]) -> Result<Vec<f32>, TensorBytesError> {
    decode(bytes, FloatDtype::F32)
}

/// Little-endian IEEE f16 values widened to f32; an odd length is refused.
pub fn decode_f16(bytes: &[u8]) -> Result<Vec<f32>, TensorBytesError> {
    decode(bytes, FloatDtype::F16)
}

/// Little-endian values of `dtype` as f32 (exact: every f16 is an f32).
pub fn decode(bytes: &[u8], dtype: FloatDtype) -> Result<Vec<f32>, TensorBytesError> {
    if !bytes.len().is_multiple_of(dtype.size()) {
        return Err(TensorBytesError::Length { len: bytes.len(), dtype });
    }
    Ok(match dtype {
        FloatDtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        FloatDtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    })
}

/// A safetensors tensor's values as f32 (stored F32 or F16; other dtypes are refused).
pub fn view_to_f32(view: &TensorView<'_>) -> Result<Vec<f32>, TensorBytesError> {
    decode(view.data(), FloatDtype::from_safetensors(view.dtype())?)
}

/// f32 values as little-endian f32 bytes.
pub fn encode_f32(values: &[f32]) -> Vec<u8> {
    encode(values, FloatDtype::F32)
}

/// f32 values rounded to f16 (round to nearest even, as PyTorch's `.half()`), little-endian.
pub fn encode_f16(values: &[f32]) -> Vec<u8> {
    encode(values, FloatDtype::F16)
}

/// f32 values as little-endian bytes of `dtype`.
pub fn encode(values: &[f32], dtype: FloatDtype) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    match dtype {
        FloatDtype::F32 => values.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        FloatDtype::F16 => values.iter().for_each(|x| out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes())),
    }
    out
}

/// A safetensors file holding `(name, shape, values)` stored as `dtype` (names may come in any order; the
/// file lists them sorted, as safetensors always does).
pub fn to_safetensors<N: AsRef<str>>(tensors: &[(N, Vec<usize>, Vec<f32>)], dtype: FloatDtype) -> Result<Vec<u8>, TensorBytesError> {
    let encoded: Vec<(&str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let elements = shape.iter().product::<usize>();
            if elements != values.len() {
                return Err(TensorBytesError::Shape { shape: shape.clone(), elements, values: values.len() });
            }
            Ok((name.as_ref(), shape.as_slice(), encode(values, dtype)))
        })
        .collect::<Result<_, _>>()?;
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| TensorView::new(dtype.to_safetensors(), shape.to_vec(), bytes).map(|v| (*name, v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TensorBytesError::Safetensors(e.to_string()))?;
    safetensors::serialize(views, None).map_err(|e| TensorBytesError::Safetensors(e.to_string()))
}

/// A tensor's shape and its values as f32.
pub type F32Tensor = (Vec<usize>, Vec<f32>);

/// Every tensor of a safetensors file as f32 (F32 or F16 only), by name (tests and tools).
pub fn read_all_f32(bytes: &[u8]) -> Result<HashMap<String, F32Tensor>, TensorBytesError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| TensorBytesError::Safetensors(e.to_string()))?;
    st.tensors().into_iter().map(|(name, view)| Ok((name, (view.shape().to_vec(), view_to_f32(&view)?)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each is exactly an f16 too (65504 = the largest, 2^-10, 3 + 9/64).
    const VALUES: [f32; 7] = [0.0, -0.0, 1.0, -2.5, 65504.0, 0.0009765625, 3.140625];

    #[test]
    fn f32_round_trips_bit_for_bit() {
        let odd = [f32::MIN_POSITIVE, f32::MAX, -1e-40, f32::INFINITY, 0.1];
        for v in [&VALUES[..], &odd, &[]] {
            let bytes = encode_f32(v);
            assert_eq!(bytes.len(), 4 * v.len());
            let back = decode_f32(&bytes).unwrap();
            assert_eq!(back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
        // Little-endian: 1.0 = 0x3F800000.
        assert_eq!(encode_f32(&[1.0]), [0x00, 0x00, 0x80, 0x3F]);
    }

    #[test]
    fn f16_round_trips_values_it_can_hold_and_rounds_the_others() {
        // Every value of VALUES is an f16 exactly: the round trip is the identity.
        let bytes = encode_f16(&VALUES);
        assert_eq!(bytes.len(), 2 * VALUES.len());
        let back = decode_f16(&bytes).unwrap();
        for (a, b) in back.iter().zip(VALUES) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        assert_eq!(back[2], 1.0);
        assert_eq!(back[4], 65504.0);
        // Little-endian: 1.0 = 0x3C00; -2.0 = 0xC000.
        assert_eq!(encode_f16(&[1.0, -2.0]), [0x00, 0x3C, 0x00, 0xC0]);
        // 0.1 is not an f16: the nearest one comes back, within half an f16 step.
        let tenth = decode_f16(&encode_f16(&[0.1])).unwrap()[0];
        assert!(tenth != 0.1 && (tenth - 0.1).abs() < 0.1 * 2f32.powi(-11), "{tenth}");
    }

    #[test]
    fn lengths_that_are_not_whole_values_are_refused_with_a_clear_error() {
        let e = decode_f16(&[0u8; 7]).unwrap_err();
        assert_eq!(e, TensorBytesError::Length { len: 7, dtype: FloatDtype::F16 });
        let msg = e.to_string();
        assert!(msg.contains("7 bytes") && msg.contains("f16") && msg.contains("2 bytes each") && msg.contains("truncated"), "{msg}");
        for len in [1, 2, 3, 5, 6, 7] {
            assert_eq!(decode_f32(&vec![0u8; len]).unwrap_err(), TensorBytesError::Length { len, dtype: FloatDtype::F32 });
        }
        assert_eq!(decode_f32(&[]).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn views_decode_f32_and_f16_and_refuse_other_dtypes() {
        let file = |dtype: FloatDtype| to_safetensors(&[("b", vec![2, 3], VALUES[..6].to_vec()), ("a", vec![1], vec![7.0])], dtype).unwrap();
        for dtype in [FloatDtype::F32, FloatDtype::F16] {
            let bytes = file(dtype);
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let b = st.tensor("b").unwrap();
            assert_eq!((b.dtype(), b.shape()), (dtype.to_safetensors(), &[2usize, 3][..]));
            assert_eq!(view_to_f32(&b).unwrap(), VALUES[..6]);
            let all = read_all_f32(&bytes).unwrap();
            assert_eq!(all["a"], (vec![1], vec![7.0]));
            assert_eq!(all["b"].1, VALUES[..6]);
        }
        let ints = [1u8, 0, 0, 0];
        let st_bytes = safetensors::serialize([("i", TensorView::new(Dtype::I32, vec![1], &ints).unwrap())], None).unwrap();
        let st = SafeTensors::deserialize(&st_bytes).unwrap();
        let e = view_to_f32(&st.tensor("i").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "has dtype I32, expected F32 or F16");
        assert!(read_all_f32(&st_bytes).is_err());
        assert!(read_all_f32(b"not safetensors").unwrap_err().to_string().contains("not a readable safetensors file"));
    }

    #[test]
    fn writer_refuses_a_shape_that_does_not_match_the_values() {
        let e = to_safetensors(&[("w", vec![2, 2], vec![1.0; 3])], FloatDtype::F32).unwrap_err();
        assert_eq!(e, TensorBytesError::Shape { shape: vec![2, 2], elements: 4, values: 3 });
        assert!(e.to_string().contains("[2, 2] (4 values) but 3 values"), "{e}");
    }

    #[test]
    fn dtype_names_and_conversions() {
        assert_eq!(FloatDtype::half_if(true), FloatDtype::F16);
        assert_eq!(FloatDtype::half_if(false).to_string(), "f32");
        assert_eq!(FloatDtype::from_safetensors(Dtype::F16), Ok(FloatDtype::F16));
        assert!(FloatDtype::from_safetensors(Dtype::BF16).is_err());
    }
}
