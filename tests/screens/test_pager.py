"""The one pager macro (``_pager.html``) of every paged list: nothing on one page, 前へ / 次へ
only where there is a page to go to, where we are, the nav labelled; the address made from a
prefix or from a macro (the broadcast page's filters), escaped once."""

from __future__ import annotations

from admin_api.screens.web import templates

_PREFIX = ('{% from "_pager.html" import pager %}'
           '{{ pager(page, pages, "/staff/reports?" ~ query ~ "&page=") }}')
_MACRO = ('{% from "_pager.html" import pager %}'
          '{% macro to(n) %}{{ "?a=1&b=" ~ n }}{% endmacro %}{{ pager(page, pages, to) }}')


def test_the_pager_links_only_where_there_is_a_page() -> None:
    prefix = templates.env.from_string(_PREFIX)
    assert "<nav" not in prefix.render(page=1, pages=1, query="day=x")
    first = prefix.render(page=1, pages=3, query="day=2025-01-01&kind=")
    assert 'aria-label="ページ"' in first and "1 / 3 ページ" in first
    assert "前へ" not in first
    assert 'href="/staff/reports?day=2025-01-01&amp;kind=&amp;page=2">次へ' in first
    middle = prefix.render(page=2, pages=3, query="q")
    assert 'href="/staff/reports?q&amp;page=1">前へ' in middle and "page=3\">次へ" in middle
    last = prefix.render(page=3, pages=3, query="q")
    assert "次へ" not in last and "3 / 3 ページ" in last
    made = templates.env.from_string(_MACRO).render(page=2, pages=2)
    assert 'href="?a=1&amp;b=1">前へ' in made and "次へ" not in made
