"""App enforcement at exec time: the fanotify exec gate, its supervisor, the installed-app
catalogue, running apps and stopping them (README.md). `AppGuard` is the daemon's handle."""
