//! The cassette's tests, one module per behaviour, in one binary (see ARCHITECTURE.md, Tests).

mod contract;
mod readme;
mod replay;
mod sharing;
mod support;
