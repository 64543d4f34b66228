//! The serde adapter of `f64` fields: a number that is not finite is written as `null`,
//! and `null` reads back as `NaN` (JSON has no NaN or infinity).

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a finite number as itself and any other as `null`.
pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

/// Reads a number, or `null` as `NaN`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}
