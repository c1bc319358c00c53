"""Passwords never reach a message (issue 20, case 13): flows.core.urls.scrub, the one masking function of error
lines, logs and catalog names, on every form a PostgreSQL catalog (or a URL) is written in, with passwords
hypothesis draws from the characters that broke the earlier pattern (spaces, quotes, '@', ':', backslashes).

Covers: flows.core.urls
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import assume, given
from hypothesis import strategies as st

from flows.core.urls import scrub, secrets_in
from flows.warehouse import lake

PASSWORDS = st.text(st.sampled_from("aZ9 '\"@:\\/=;#%&?!é"), min_size=3, max_size=16).filter(lambda p: p.strip())
# Some text around the connection string, as a DuckDB error quotes it.
ERROR = 'IO Error: Failed to attach DuckLake MetaData at path + "{}": connection to server refused'


def _libpq_quoted(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _assert_hidden(text: str, pw: str) -> None:
    masked = scrub(text)
    rest = text.replace(pw, "")
    assume(pw not in rest and pw not in "***")  # a password that is also a word of the text proves nothing
    assert pw not in masked, masked
    assert pw not in lake.display_name(text)


@given(PASSWORDS)
def test_a_quoted_libpq_password_is_masked_whole(pw: str) -> None:
    catalog = f"postgres:host=127.0.0.1 port=1 user=u password={_libpq_quoted(pw)} dbname=db"
    _assert_hidden(catalog, pw)
    _assert_hidden(ERROR.format(catalog), pw)
    assert "dbname=db" in scrub(catalog)  # only the password goes


@given(PASSWORDS.filter(lambda p: not any(c.isspace() or c in "'\"" for c in p)))
def test_an_unquoted_libpq_password_is_masked(pw: str) -> None:
    _assert_hidden(f"postgres:password={pw} host=127.0.0.1 dbname=db", pw)
    _assert_hidden(f"postgres:host=127.0.0.1 password = {pw}", pw)


@given(PASSWORDS.filter(lambda p: "/" not in p), st.sampled_from(["postgres://", "postgresql://", "https://"]))
def test_a_uri_password_is_masked_raw_or_percent_encoded(pw: str, scheme: str) -> None:
    for form in (pw, quote(pw, safe="")):
        assume(len(form) >= 3)
        uri = f"{scheme}user:{form}@127.0.0.1:1/db"
        _assert_hidden(uri, form)
        _assert_hidden(ERROR.format(uri), form)
        assert scrub(uri).endswith("@127.0.0.1:1/db")  # the host stays, to say where it failed


@given(PASSWORDS)
def test_a_password_in_a_uri_query_is_masked(pw: str) -> None:
    assume(not any(c.isspace() for c in pw))
    _assert_hidden(f"postgresql://127.0.0.1:1/db?password={quote(pw, safe='')}&sslmode=disable",
                   quote(pw, safe=""))


def test_a_postgres_uri_is_a_postgres_catalog_not_a_file() -> None:
    for catalog in ("postgres://u:pw@127.0.0.1:1/db", "postgresql://u:pw@127.0.0.1:1/db",
                    "postgresql:host=127.0.0.1 port=1"):
        assert lake.catalog_kind(catalog) == "postgres"
        assert lake.attach_target(catalog).startswith("postgres:")
        assert not lake.attach_target(catalog).startswith("postgres:postgresql:host")
    assert lake.attach_target("postgres://u@h/db") == "postgres:postgres://u@h/db"
    assert lake.attach_target("postgresql:host=h") == "postgres:host=h"
    assert lake.attach_target("sqlite:/tmp/x.sqlite") == "sqlite:/tmp/x.sqlite"


@given(PASSWORDS, st.sampled_from(["uri", "libpq"]))
def test_a_password_quoted_bare_by_libpq_is_masked_given_its_catalog(pw: str, form: str) -> None:
    """libpq's errors may quote the password alone (`unexpected spaces found in "..."`); connect masks the
    passwords of the catalog it attached wherever they appear."""
    catalog = (f"postgres://u:{quote(pw, safe='')}@127.0.0.1:1/db" if form == "uri"
               else f"postgres:host=127.0.0.1 password={_libpq_quoted(pw)}")
    for shown in {pw, quote(pw, safe="")} if form == "uri" else {pw}:
        text = f'Unable to connect to Postgres: unexpected spaces found in "{shown}", use %20 instead'
        assume(len(shown) >= 3 and shown not in text.replace(shown, ""))
        assert shown not in scrub(text, secrets_in(catalog))
