"""The gettext catalogues: both languages carry the same ids, every key the code uses, the
same placeholders, and Chinese typography; a broken, stale or incomplete catalogue is refused.

The `.po` sources are compiled afresh with msgfmt into a temporary directory for these
checks, so they test the sources, not whatever `.mo` a checkout happens to hold.
"""

from __future__ import annotations

import gettext
import os
import re
import shutil
import string
from pathlib import Path

import pytest

from agent.core import messages as core
from agent.core.messages import KEYS, Key
from agent.locale import LOCALE_DIR
from agent.locale.compile import compile_catalogues, sources
from agent.locale.messages import LANGUAGES, CatalogueError, gettext_name, load

GETTEXT_NAMES = sorted(gettext_name(lang) for lang in LANGUAGES)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("locale")
    compile_catalogues(out)
    return out


def entries(compiled: Path, name: str) -> dict[str, list[str]]:
    """msgid -> its forms (one, or one per plural form), read from the compiled `.po`."""
    with (compiled / name / "LC_MESSAGES" / f"{core.DOMAIN}.mo").open("rb") as f:
        catalog: dict[str | tuple[str, int], str] = getattr(gettext.GNUTranslations(f), "_catalog")  # noqa: B009
    forms: dict[str, list[str]] = {}
    for msgid, text in sorted(catalog.items(), key=lambda kv: str(kv[0])):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        if key:  # "" is the header
            forms.setdefault(key, []).append(text)
    return forms


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_a_catalogue_for_every_policy_language_and_no_other() -> None:
    assert sorted(p.parents[1].name for p in sources()) == GETTEXT_NAMES == ["en", "zh_CN"]


def test_zh_cn_and_en_have_the_same_message_ids(compiled: Path) -> None:
    assert set(entries(compiled, "zh_CN")) == set(entries(compiled, "en"))


@pytest.mark.parametrize("name", GETTEXT_NAMES)
def test_every_key_the_code_uses_is_there_and_nothing_else(compiled: Path, name: str) -> None:
    ids = set(entries(compiled, name))
    assert not KEYS - ids, f"{name} lacks {sorted(KEYS - ids)}"
    assert not ids - KEYS, f"{name} has ids no code uses: {sorted(ids - KEYS)}"


@pytest.mark.parametrize("name", GETTEXT_NAMES)
def test_plural_forms_only_where_a_count_is_given(compiled: Path, name: str) -> None:
    nplurals = {"zh_CN": 1, "en": 2}[name]
    for key, forms in entries(compiled, name).items():
        assert len(forms) == (nplurals if key in core.COUNTED else 1), (name, key)


def test_every_form_takes_the_parameters_english_takes(compiled: Path) -> None:
    en, zh = entries(compiled, "en"), entries(compiled, "zh_CN")
    for key, forms in en.items():
        want = fields(forms[-1])
        for text in [*forms, *zh[key]]:
            assert fields(text) == want, (key, text)
        count = core.COUNTED.get(key)
        assert count is None or count in want, key


CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
ASCII_AFTER_CJK = re.compile(rf"[{CJK}][,?:;!()]|[(][{CJK}]")


def test_the_check_catches_ascii_punctuation_after_chinese() -> None:
    assert ASCII_AFTER_CJK.search("还剩 5 分钟,请准备结束。")  # ASCII
    assert ASCII_AFTER_CJK.search("是 {sas} 吗?")  # ASCII
    assert ASCII_AFTER_CJK.search("家长同意了:多了")  # ASCII
    assert not ASCII_AFTER_CJK.search("还剩 5 分钟，请准备结束。16:30 再来吧。")


def test_chinese_uses_full_width_punctuation(compiled: Path) -> None:
    bad = {key: text for key, forms in entries(compiled, "zh_CN").items() for text in forms
           if ASCII_AFTER_CJK.search(text)}
    assert not bad


# --------------------------------------------------------------------------- refusals


def catalogue_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    """The zh_CN source under tmp_path, with one text replaced."""
    po = tmp_path / "zh_CN" / "LC_MESSAGES" / f"{core.DOMAIN}.po"
    po.parent.mkdir(parents=True)
    text = (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{core.DOMAIN}.po").read_text()
    if edit is not None:
        assert text.count(edit[0]) == 1
        text = text.replace(*edit)
    po.write_text(text)
    return po


def test_a_catalogue_lacking_a_key_is_refused_by_name(tmp_path: Path) -> None:
    catalogue_copy(tmp_path, ('msgid "code_used"\nmsgstr "这个家长码已经用过了。"\n', ""))
    compile_catalogues(root=tmp_path)
    with pytest.raises(CatalogueError, match="lacks code_used"):
        load("zh-CN", tmp_path)


def test_a_catalogue_older_than_its_source_is_refused(tmp_path: Path) -> None:
    po = catalogue_copy(tmp_path)
    [mo] = compile_catalogues(root=tmp_path)
    assert load("zh-CN", tmp_path).gettext(Key.CODE_USED) == "这个家长码已经用过了。"
    earlier = po.stat().st_mtime_ns - 1_000_000_000
    os.utime(mo, ns=(earlier, earlier))  # the source edited after the compile
    with pytest.raises(CatalogueError, match="older than"):
        load("zh-CN", tmp_path)
    assert compile_catalogues(root=tmp_path) == [mo]  # the compile step brings it up to date
    load("zh-CN", tmp_path)


def test_no_compiled_catalogue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="no compiled catalogue"):
        load("en", tmp_path)


def test_a_broken_source_fails_the_compile_naming_the_file(tmp_path: Path) -> None:
    po = catalogue_copy(tmp_path, ('msgid "code_used"\n', 'msgid "code_used\n'))
    with pytest.raises(SystemExit, match=re.escape(str(po))):
        compile_catalogues(root=tmp_path)
    assert not list(tmp_path.rglob("*.mo*"))


def test_compile_needs_msgfmt_and_says_where_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(SystemExit, match="gettext package"):
        compile_catalogues(tmp_path)


def _gettext_of_python_3_11_2(self: gettext.GNUTranslations, message: str) -> str:
    """GNUTranslations.gettext as bookworm's Python 3.11.2 has it: a msgid that exists only
    with plural forms is not found (3.11.7 falls back to its singular form)."""
    found = getattr(self, "_catalog").get(message)  # noqa: B009
    return message if found is None else str(found)


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_complete_catalogues_load_under_the_images_python(compiled: Path, lang: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The image runs Debian's 3.11.2, the venv here a later 3.11: the completeness check
    must not lean on the newer gettext() (it did, and the image's agent refused to start)."""
    monkeypatch.setattr(gettext.GNUTranslations, "gettext", _gettext_of_python_3_11_2)
    load(lang, compiled)
