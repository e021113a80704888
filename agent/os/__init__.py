"""Enforcement adapters: each turns a Decision into kernel or bus calls and OS events into facts."""
