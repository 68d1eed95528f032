//! Intrusive, allocation-free lists (under construction).
#![no_std]
