"""A fault-injection HTTP server on 127.0.0.1: good feeds and pages, plus one endpoint per way a server can fail.

Everything served is generated here (our own text). `FAULTS` maps each failing feed path to the error code the
fetcher must record for it; `GOOD_FEEDS` are feeds whose every article must land in the warehouse.
"""

from __future__ import annotations

import gzip
import json
import random
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from flows.ops.localserver import LocalServer

Handler = BaseHTTPRequestHandler
DRIP_INTERVAL = 0.2  # seconds between two dripped bytes: under any read timeout, so only the total limit cuts it

_WORDS = ("harbour council budget river bridge ferry school clinic museum library orchard vineyard railway "
          "festival election survey drought harvest tram tunnel bakery quarry lighthouse archive theatre "
          "observatory glacier reservoir market cooperative foundry shipyard").split()
_PLACES = "Aldmoor Brennick Calderport Dunmere Eastwick Farrowdale Glenhollow Harwick Ironsby Juniper".split()
_VERBS = "approved delayed expanded reopened funded inspected renamed rebuilt surveyed celebrated".split()


def article_text(seed: int, paragraphs: int = 4) -> list[str]:
    """Distinct, deterministic prose for one article (no two seeds share many 5-word shingles)."""
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(4):
            w = rng.sample(_WORDS, 4)
            sentences.append(
                f"In {rng.choice(_PLACES)} the {w[0]} {rng.choice(_VERBS)} a plan for the {w[1]} after "
                f"{rng.randint(2, 990)} residents asked about the {w[2]} and the old {w[3]} near the water."
            )
        out.append(" ".join(sentences))
    return out


def article_html(title: str, seed: int) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in article_text(seed))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<header><nav><a href='/'>Home</a></nav></header><main><article><h1>{title}</h1>{body}"
            f"</article></main><footer>Fault server</footer></body></html>").encode()


def rss(title: str, items: list[tuple[str, str, str]], *, encoding: str = "utf-8", ttl: int | None = None) -> str:
    """An RSS 2.0 document; items are (title, link, summary)."""
    entries = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid><description>{s}</description>"
        f"<pubDate>Mon, 02 Mar 2026 10:0{i}:00 GMT</pubDate></item>"
        for i, (t, link, s) in enumerate(items)
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel><title>{title}</title>'
            f"<link>{{BASE}}/</link>{ttl_tag}{entries}</channel></rss>")


# Articles: slug -> (title, seed). Every one is linked from a feed that must keep all its articles.
ARTICLES = {f"story-{i}": (f"Story {i} from the fault server", 1000 + i) for i in range(1, 9)}
GOOD_FEEDS = {
    "/feeds/good-a.xml": ["story-1", "story-2", "story-3"],
    "/feeds/good-b.atom": ["story-4", "story-5"],
    "/feeds/good-c.xml": ["story-6"],  # also the end of the permanent and temporary redirect chains
    "/feeds/etag.xml": ["story-7"],
    "/feeds/json": ["story-8"],
}


def _send(h: Handler, status: int, body: bytes = b"", ctype: str = "text/plain",
          headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


class FaultServer(LocalServer):
    """LocalServer whose routes are the good feeds, the articles and the faults."""

    def __init__(self, *, port: int = 0, bomb_bytes: int = 100_000_000, huge_bytes: int = 50_000_000) -> None:
        self.stop = threading.Event()
        self.bomb_bytes, self.huge_bytes = bomb_bytes, huge_bytes
        self._bomb: bytes | None = None
        self.bomb()  # built before serving, so the first request does not wait on it
        super().__init__(Path(__file__).parent / "data" / "faults", port=port, routes=self._routes())

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        super().__exit__(*exc)

    def text(self, body: str) -> bytes:
        return body.replace("{{BASE}}", self.base).encode()

    # ------------------------------------------------------------------ content

    def _items(self, slugs: list[str]) -> list[tuple[str, str, str]]:
        return [(ARTICLES[s][0], f"{{{{BASE}}}}/articles/{s}.html", article_text(ARTICLES[s][1], 1)[0][:160])
                for s in slugs]

    def _routes(self) -> dict[str, Callable[[Handler], None]]:
        r: dict[str, Callable[[Handler], None]] = {}
        xml = "application/rss+xml; charset=utf-8"
        for slug, (title, seed) in ARTICLES.items():
            r[f"/articles/{slug}.html"] = lambda h, t=title, s=seed: _send(h, 200, article_html(t, s),
                                                                           "text/html; charset=utf-8")
        extra = [("Photo", "{{BASE}}/articles/photo.jpg", "A photo only"),
                 ("Private", "{{BASE}}/private/secret.html", "Robots say no")]
        good_a = rss("Good A", self._items(GOOD_FEEDS["/feeds/good-a.xml"]) + extra)
        r["/feeds/good-a.xml"] = lambda h: _send(h, 200, self.text(good_a), xml)
        r["/feeds/good-b.atom"] = lambda h: _send(h, 200, self.text(self._atom()), "application/atom+xml")
        r["/feeds/good-c.xml"] = lambda h: _send(h, 200, self.text(rss("Good C", self._items(["story-6"]))), xml)
        r["/feeds/etag.xml"] = self._etag
        r["/feeds/json"] = lambda h: _send(h, 200, self.text(json.dumps({
            "version": "https://jsonfeed.org/version/1.1", "title": "JSON", "items": [
                {"id": "j1", "url": "{{BASE}}/articles/story-8.html", "title": ARTICLES["story-8"][0],
                 "summary": "A JSON Feed item", "date_published": "2026-03-02T10:00:00Z"}]})), "application/json")
        r["/articles/photo.jpg"] = lambda h: _send(h, 200, b"\xff\xd8\xff\xe0" + b"\0" * 2000, "image/jpeg")
        r["/private/secret.html"] = lambda h: _send(h, 200, article_html("Secret", 7), "text/html")
        r["/robots.txt"] = lambda h: _send(h, 200, b"User-agent: *\nDisallow: /private/\n")

        # Faults: each maps to the error code in FAULTS below.
        r["/feeds/timeout"] = lambda h: self.stop.wait(60)
        r["/feeds/drip"] = self._drip
        r["/feeds/drip-headers"] = self._drip_headers
        r["/feeds/500"] = lambda h: _send(h, 500, b"internal error")
        r["/feeds/404"] = lambda h: _send(h, 404, b"not here")
        r["/feeds/410"] = lambda h: _send(h, 410, b"gone for good")
        r["/feeds/429"] = lambda h: _send(h, 429, b"slow down", headers={"Retry-After": "7200"})
        r["/feeds/503"] = lambda h: _send(h, 503, b"maintenance",
                                          headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
        r["/feeds/moved"] = lambda h: _send(h, 301, headers={"Location": "/feeds/moved-2"})
        r["/feeds/moved-2"] = lambda h: _send(h, 308, headers={"Location": self.url("/feeds/good-c.xml")})
        r["/feeds/temp"] = lambda h: _send(h, 301, headers={"Location": "/feeds/temp-2"})
        r["/feeds/temp-2"] = lambda h: _send(h, 302, headers={"Location": "/feeds/good-c.xml"})
        r["/feeds/loop-a"] = lambda h: _send(h, 302, headers={"Location": "/feeds/loop-b"})
        r["/feeds/loop-b"] = lambda h: _send(h, 307, headers={"Location": "/feeds/loop-a"})
        for i in range(12):
            r[f"/feeds/chain-{i}"] = lambda h, i=i: _send(h, 302, headers={"Location": f"/feeds/chain-{i + 1}"})
        r["/feeds/to-file"] = lambda h: _send(h, 302, headers={"Location": "file:///etc/passwd"})
        r["/feeds/to-refused"] = lambda h: _send(
            h, 302, headers={"Location": self.url("/feeds/good-a.xml").replace("127.0.0.1", "127.0.0.2")})
        r["/feeds/bomb"] = self._gzip_bomb
        r["/feeds/huge"] = self._huge
        r["/feeds/huge-declared"] = lambda h: self._huge(h, declared=True)
        r["/feeds/image"] = lambda h: _send(h, 200, b"\x89PNG\r\n\x1a\n" + b"\0" * 500, "image/png")
        r["/feeds/pdf"] = lambda h: _send(h, 200, b"%PDF-1.4\n" + b"\0" * 500, "application/pdf")
        r["/feeds/bad-gzip"] = lambda h: _send(h, 200, b"\x1f\x8b\x08\x00 this is not gzip at all", xml,
                                               headers={"Content-Encoding": "gzip"})
        r["/feeds/html"] = lambda h: _send(h, 200, self.text(
            "<!DOCTYPE html><html><head><title>Home</title><link rel='alternate' type='application/rss+xml' "
            "href='/feeds/good-a.xml'></head><body><p>Welcome</p></body></html>"), "text/html")
        r["/feeds/empty"] = lambda h: _send(h, 200, b"", xml)
        r["/feeds/garbage"] = lambda h: _send(h, 200, bytes(random.Random(5).randrange(256) for _ in range(3000)),
                                              "application/octet-stream")
        r["/feeds/not-json-feed"] = lambda h: _send(h, 200, b'{"status": "ok", "data": []}', "application/json")

        # Oddities that still parse: their entries (none linking to articles) must be read, with a warning.
        r["/feeds/bad-encoding"] = lambda h: _send(h, 200, self.text(rss(
            "Новости", [("Президент встретился с министрами", "{{BASE}}/odd/koi8", "Сводка новостей дня")]
        )).decode().encode("koi8-r"), xml)
        r["/feeds/utf16"] = lambda h: _send(h, 200, ("\ufeff  \n" + self.text(rss(
            "Ünïcode", [("Grüße aus Köln", "{{BASE}}/odd/utf16", "Straße")], encoding="utf-16")).decode()
        ).encode("utf-16-le"), "text/xml")
        r["/feeds/truncated"] = lambda h: _send(h, 200, self.text(rss(
            "Cut", [("First", "{{BASE}}/odd/first", "one"), ("Second", "{{BASE}}/odd/second", "two")]))[:-60], xml)
        r["/feeds/billion-laughs"] = lambda h: _send(h, 200, self.text(_BILLION_LAUGHS), xml)
        r["/feeds/xxe"] = lambda h: _send(h, 200, self.text(_XXE), xml)
        return r

    def _atom(self) -> str:
        entries = "".join(
            f"<entry><title type='html'>{t} &lt;b&gt;bold&lt;/b&gt;</title>"
            f"<link href='{link.replace('{{BASE}}', '')}'/><id>urn:fault:{i}</id>"
            f"<updated>2026-03-02T10:0{i}:00Z</updated><summary>{s}</summary></entry>"
            for i, (t, link, s) in enumerate(self._items(GOOD_FEEDS["/feeds/good-b.atom"]))
        )
        # Relative links against xml:base, whitespace before the declaration.
        return ("\n  <?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom' "
                "xml:base='{{BASE}}/'><title>Good B</title><id>urn:fault:b</id>"
                f"<updated>2026-03-02T10:00:00Z</updated>{entries}</feed>")

    # ------------------------------------------------------------------ behaviours

    def _etag(self, h: Handler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            _send(h, 304, headers={"ETag": '"v1"'})
            return
        _send(h, 200, self.text(rss("ETag", self._items(["story-7"]))), "application/rss+xml",
              headers={"ETag": '"v1"', "Last-Modified": "Mon, 02 Mar 2026 10:00:00 GMT"})

    def _drip(self, h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            while not self.stop.wait(DRIP_INTERVAL):
                h.wfile.write(b" ")
                h.wfile.flush()
        except OSError:
            return  # the client gave up, as it should

    def _drip_headers(self, h: Handler) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Padding: " + b"a" * 1000:
                if self.stop.wait(DRIP_INTERVAL):
                    return
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
        except OSError:
            return
        h.close_connection = True

    def bomb(self) -> bytes:
        """A gzip body of `bomb_bytes` zeros (about a thousandth of that on the wire), built once.

        One 10 MB member repeated: a multi-member gzip stream is valid and is built in a blink.
        """
        if self._bomb is None:
            size = min(10_000_000, self.bomb_bytes)
            self._bomb = gzip.compress(b"\0" * size, 6) * max(1, self.bomb_bytes // size)
        return self._bomb

    def _gzip_bomb(self, h: Handler) -> None:
        _send(h, 200, self.bomb(), "application/rss+xml", headers={"Content-Encoding": "gzip"})

    def _huge(self, h: Handler, declared: bool = False) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        if declared:
            h.send_header("Content-Length", str(self.huge_bytes))
        else:
            h.send_header("Connection", "close")  # no length: the body runs until the socket closes
        h.end_headers()
        chunk = b"<!-- padding -->" * 4096
        try:
            h.wfile.write(self.text(rss("Huge", [])).replace(b"</channel></rss>", b""))
            for _ in range(self.huge_bytes // len(chunk)):
                h.wfile.write(chunk)
        except OSError:
            return
        h.close_connection = True


_BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Laughs &lol9;</title>
<item><title>Laugh &lol9;</title><link>{{BASE}}/odd/laugh</link><description>&lol9;</description></item>
</channel></rss>"""

_XXE = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY % remote SYSTEM "{{BASE}}/evil.dtd"> %remote;]>
<rss version="2.0"><channel><title>XXE</title>
<item><title>Secret &xxe;</title><link>{{BASE}}/odd/xxe</link><description>&xxe;</description></item>
</channel></rss>"""

# Each failing feed path -> the error code its fetch_feeds row must carry.
FAULTS = {
    "/feeds/timeout": "timeout",
    "/feeds/drip": "timeout",
    "/feeds/drip-headers": "timeout",
    "/feeds/500": "http_500",
    "/feeds/404": "http_404",
    "/feeds/410": "http_410",
    "/feeds/429": "http_429",
    "/feeds/503": "http_503",
    "/feeds/loop-a": "redirect_loop",
    "/feeds/chain-0": "too_many_redirects",
    "/feeds/to-file": "bad_scheme",
    "/feeds/to-refused": "blocked_address",
    "/feeds/bomb": "too_large",
    "/feeds/huge": "too_large",
    "/feeds/huge-declared": "too_large",
    "/feeds/image": "wrong_content_type",
    "/feeds/pdf": "wrong_content_type",
    "/feeds/bad-gzip": "bad_encoding",
    "/feeds/html": "not_a_feed",
    "/feeds/empty": "not_a_feed",
    "/feeds/garbage": "not_a_feed",
    "/feeds/not-json-feed": "not_a_feed",
}
# Odd but readable feeds: path -> the entry link that must be read from it.
ODD_FEEDS = {
    "/feeds/bad-encoding": "/odd/koi8",
    "/feeds/utf16": "/odd/utf16",
    "/feeds/truncated": "/odd/first",
    "/feeds/billion-laughs": "/odd/laugh",
    "/feeds/xxe": "/odd/xxe",
}
