//! cachio: placeholder, filled in below.
