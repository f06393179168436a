"""The catalogues: complete, compiled, in step with the code, placeholders intact."""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import polib
import pytest
from django.core.management import call_command
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import translation

PACKAGE = Path(__file__).resolve().parent.parent / "user_sessions"
LOCALE = PACKAGE / "locale"
REQUIRED = {
    "ar", "bg", "cs", "da", "de", "el", "es", "fa", "fi", "fr", "he", "hi", "hu", "id", "it",
    "ja", "ko", "nb", "nl", "pl", "pt", "pt_BR", "ro", "ru", "sv", "th", "tr", "uk", "vi",
    "zh_Hans", "zh_Hant",
}  # fmt: skip
SHIPPED = sorted(p.parent.parent.name for p in LOCALE.glob("*/LC_MESSAGES/django.po"))
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%[sd]|\{\w*\}")

needs_gettext = pytest.mark.skipif(
    shutil.which("msgfmt") is None,
    reason="GNU gettext (msgfmt, xgettext) is not installed: apt-get install gettext",
)


def catalogue(lang: str) -> polib.POFile:
    return polib.pofile(str(LOCALE / lang / "LC_MESSAGES" / "django.po"))


def key(entry: polib.POEntry) -> tuple[str | None, str]:
    return (entry.msgctxt, entry.msgid)


def test_the_31_languages_the_readme_lists_ship():
    assert set(SHIPPED) == REQUIRED
    assert len(SHIPPED) == 31


@pytest.mark.parametrize("lang", SHIPPED)
def test_catalogue_is_complete(lang: str):
    po = catalogue(lang)
    untranslated = [e.msgid for e in po.untranslated_entries()]
    fuzzy = [e.msgid for e in po.fuzzy_entries()]
    assert untranslated == [] and fuzzy == []
    assert po.percent_translated() == 100
    assert po.metadata.get("Language") == lang
    assert "nplurals=" in po.metadata.get("Plural-Forms", "")


@pytest.mark.parametrize("lang", SHIPPED)
def test_plural_forms_fit_the_header(lang: str):
    po = catalogue(lang)
    nplurals = int(re.search(r"nplurals\s*=\s*(\d+)", po.metadata["Plural-Forms"]).group(1))
    for entry in po.translated_entries():
        if entry.msgid_plural:
            assert sorted(entry.msgstr_plural) == list(range(nplurals)), entry.msgid


@pytest.mark.parametrize("lang", SHIPPED)
def test_placeholders_are_preserved(lang: str):
    for entry in catalogue(lang).translated_entries():
        # For plurals, what either English form uses ("Your {{ counter }}
        # other sessions" has a placeholder only in its plural).
        expected = sorted(
            set(PLACEHOLDER.findall(entry.msgid)) | set(PLACEHOLDER.findall(entry.msgid_plural))
        )
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            found = sorted(PLACEHOLDER.findall(text))
            # A plural form may drop the count ("one" needs no number) but
            # never invent or rename a placeholder.
            assert set(found) <= set(expected), (entry.msgid, text)
            if not entry.msgid_plural:
                assert found == expected, (entry.msgid, text)


@pytest.mark.parametrize("lang", SHIPPED)
def test_compiled_catalogue_matches_the_source(lang: str):
    mo_path = LOCALE / lang / "LC_MESSAGES" / "django.mo"
    assert mo_path.exists(), f"{mo_path} missing: run compilemessages"
    with mo_path.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    nplurals = int(re.search(r"nplurals\s*=\s*(\d+)", catalogue(lang).metadata["Plural-Forms"])[1])
    for entry in catalogue(lang).translated_entries():
        msgid = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
        if not entry.msgid_plural:
            assert compiled.gettext(msgid) == entry.msgstr, f"{lang}: {entry.msgid!r} is stale"
            continue
        # Each form as the compiled catalogue picks it for some count.
        seen = {}
        for n in range(1001):
            seen.setdefault(compiled.plural(n), compiled.ngettext(msgid, entry.msgid_plural, n))
            if len(seen) == nplurals:
                break
        for index, text in seen.items():
            assert text == entry.msgstr_plural[index], f"{lang}: {entry.msgid!r}[{index}] is stale"


@needs_gettext
@pytest.mark.parametrize("lang", SHIPPED)
def test_msgfmt_check_is_clean(lang: str):
    po = LOCALE / lang / "LC_MESSAGES" / "django.po"
    result = subprocess.run(
        ["msgfmt", "--check", "-o", "/dev/null", str(po)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@needs_gettext
def test_catalogues_are_in_step_with_the_code(tmp_path, monkeypatch):
    copy = tmp_path / "user_sessions"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["de"], verbosity=0, no_obsolete=True)
    fresh = {key(e) for e in polib.pofile(str(copy / "locale/de/LC_MESSAGES/django.po"))}
    for lang in SHIPPED:
        shipped = {key(e) for e in catalogue(lang) if not e.obsolete}
        assert fresh - shipped == set(), f"{lang} lacks strings: run makemessages"
        assert shipped - fresh == set(), f"{lang} has strings the code no longer uses"


@pytest.mark.django_db
@pytest.mark.parametrize(("lang", "direction"), [("de", "ltr"), ("ar", "rtl"), ("he", "rtl")])
def test_widget_follows_the_active_language(lang: str, direction: str, user):
    request = RequestFactory().get("/")
    request.user = user
    from django.contrib.sessions.backends.base import SessionBase

    request.session = SessionBase()
    with translation.override(lang):
        html = Template('{% include "user_sessions/widget.html" %}').render(
            Context({"request": request, "user": user})
        )
        heading = translation.gettext("Your devices")
    assert heading != "Your devices"
    assert heading in html
    assert f'dir="{direction}"' in html
