//! Installing a wheel (placeholder; being written).
