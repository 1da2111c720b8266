"""The app's page (templates/php/index.php.j2) read back, pure.

The page gives the same facts in two forms: "key: value" lines (text/plain, for curl and the
probes) or a small HTML page (for a browser) where each value is the text of
``<dd id="key">``. Both parse to the same dict, so a check judges either the same way.
"""

from __future__ import annotations

from html.parser import HTMLParser

FACT_KEYS = ("app", "served-by", "session", "db", "db-replica")


def parse_text(body: str) -> dict[str, str]:
    """The facts of a plain-text answer: the first "key: value" line of each known key."""
    facts: dict[str, str] = {}
    for line in body.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in FACT_KEYS and key not in facts:
            facts[key] = value
    return facts


class _FactsParser(HTMLParser):
    """Collects the text of every ``<dd id="<known key>">``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.facts: dict[str, str] = {}
        self._key: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        key = dict(attrs).get("id")
        if tag == "dd" and key in FACT_KEYS and key not in self.facts:
            self._key, self._text = key, []

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "dd" and self._key is not None:
            self.facts[self._key] = "".join(self._text).strip()
            self._key = None


def parse_html(dom: str) -> dict[str, str]:
    """The facts of the HTML answer (or of a browser's DOM of it); {} for any other page."""
    parser = _FactsParser()
    parser.feed(dom)
    parser.close()
    return parser.facts


def served_by_node(facts: dict[str, str]) -> str | None:
    """The answering web server's name (the fqdn of the served-by fact), or None."""
    words = facts.get("served-by", "").split()
    return words[0] if words else None
