"""The device lockdown audit: pure checks of a root file system (and, on the running
system, a few kernel facts) that say what is open and how to close it. README.md."""
