"""Pure logic: no I/O, no clocks, no event loop. Everything here is unit-tested directly."""
