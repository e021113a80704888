"""The child's words in gettext catalogues: the `.po` sources, and loading their `.mo` files."""

from pathlib import Path

LOCALE_DIR = Path(__file__).parent  # <lang>/LC_MESSAGES/minormode.po (and .mo once compiled)
